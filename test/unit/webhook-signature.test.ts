import { describe, expect, it } from "vitest";
import { retryDelaySeconds, signatureHeader, verifySignature } from "../../services/notification/webhook-signature-fns";

const secret = "whsec_test-secret";
const body = JSON.stringify({ type: "run.succeeded", data: { run_id: "r1" } });

describe("webhook signatures", () => {
  it("verifies its own signature and rejects a changed body, a wrong secret, replays and malformed headers", () => {
    const header = signatureHeader(secret, 1_800_000_000, body);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifySignature(header, body, secret, 1_800_000_010)).toEqual({ valid: true, timestamp: 1_800_000_000 });
    expect(verifySignature(header, `${body} `, secret, 1_800_000_010)).toEqual({ valid: false, reason: "mismatch" });
    expect(verifySignature(header, body, "whsec_other", 1_800_000_010)).toEqual({ valid: false, reason: "mismatch" });
    expect(verifySignature(header, body, secret, 1_800_000_000 + 301)).toEqual({ valid: false, reason: "too_old" });
    // A replayed body under a fresh timestamp does not match: the timestamp is signed.
    expect(verifySignature(header.replace("t=1800000000", "t=1800000400"), body, secret, 1_800_000_400)).toEqual({
      valid: false,
      reason: "mismatch",
    });
    expect(verifySignature("v1=abc", body, secret, 1_800_000_000)).toEqual({ valid: false, reason: "malformed" });
    expect(verifySignature(undefined, body, secret, 1_800_000_000)).toEqual({ valid: false, reason: "malformed" });
  });

  it("backs off 1, 2, 4, ... seconds up to the maximum", () => {
    expect([1, 2, 3, 4, 10].map((attempt) => retryDelaySeconds(attempt, 1, 60))).toEqual([1, 2, 4, 8, 60]);
  });
});
