import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

// Pins that the vitest global setup's process.env reaches the forked test workers (and their child processes).
describe("test harness environment", () => {
  it("workers see the moto endpoint and the offline Pulumi settings", async () => {
    expect(process.env.AWS_ENDPOINT_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(process.env.AWS_REGION).toBe("us-east-1");
    expect(process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION).toBe("true");
    expect(process.env.STANDIN_AWS_STATE_DIR).toBeTruthy();
    const response = await fetch(new URL("/moto-api/", process.env.AWS_ENDPOINT_URL));
    expect(response.ok).toBe(true);
  });

  it("child processes find the stand-in provider on PATH", () => {
    const found = execFileSync("sh", ["-c", "command -v pulumi-resource-aws"], { encoding: "utf8" }).trim();
    expect(found).toMatch(/test\/harness\/bin\/pulumi-resource-aws$/);
  });
});
