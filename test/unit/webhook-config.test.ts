import { describe, expect, it } from "vitest";
import { loadServiceConfig } from "../../platform/config";
import { configProblems } from "../harness/config-problems";

const problems = configProblems;

describe("webhook settings", () => {
  it("default to no loopback, 10 webhooks per tenant, 8 attempts at once, 2 per host, 2 per tenant, 5 s to connect and 10 s per attempt", () => {
    expect(loadServiceConfig({})).toMatchObject({
      WEBHOOK_PLATFORM_ALLOW_LOOPBACK: false,
      WEBHOOK_MAX_PER_TENANT: 10,
      WEBHOOK_MAX_CONCURRENT_DELIVERIES: 8,
      WEBHOOK_MAX_CONCURRENT_PER_HOST: 2,
      WEBHOOK_MAX_CONCURRENT_PER_TENANT: 2,
      WEBHOOK_CONNECT_TIMEOUT_SECONDS: 5,
      WEBHOOK_TIMEOUT_SECONDS: 10,
    });
    expect(loadServiceConfig({ WEBHOOK_PLATFORM_ALLOW_LOOPBACK: "true", WEBHOOK_MAX_PER_TENANT: "3" })).toMatchObject({
      WEBHOOK_PLATFORM_ALLOW_LOOPBACK: true,
      WEBHOOK_MAX_PER_TENANT: 3,
    });
  });

  it("refuse the old WEBHOOK_ALLOW_HTTP_LOOPBACK, which opened loopback to tenants too, naming its replacement", () => {
    expect(problems({ WEBHOOK_ALLOW_HTTP_LOOPBACK: "true" })).toEqual([
      { variable: "WEBHOOK_ALLOW_HTTP_LOOPBACK", message: expect.stringContaining("renamed to WEBHOOK_PLATFORM_ALLOW_LOOPBACK") },
    ]);
  });

  it("refuse caps and limits that are not positive integers, naming each variable", () => {
    const named = problems({
      WEBHOOK_MAX_PER_TENANT: "0",
      WEBHOOK_MAX_CONCURRENT_DELIVERIES: "many",
      WEBHOOK_MAX_CONCURRENT_PER_HOST: "1.5",
      WEBHOOK_MAX_CONCURRENT_PER_TENANT: "0",
      WEBHOOK_TIMEOUT_SECONDS: "0",
      WEBHOOK_PLATFORM_ALLOW_LOOPBACK: "yes",
    }).map((problem) => problem.variable);
    expect(named.sort()).toEqual(
      [
        "WEBHOOK_MAX_CONCURRENT_DELIVERIES",
        "WEBHOOK_MAX_CONCURRENT_PER_HOST",
        "WEBHOOK_MAX_CONCURRENT_PER_TENANT",
        "WEBHOOK_MAX_PER_TENANT",
        "WEBHOOK_PLATFORM_ALLOW_LOOPBACK",
        "WEBHOOK_TIMEOUT_SECONDS",
      ].sort(),
    );
  });
});
