/** The failed-authentication limiter's sliding window and client keys (pure logic; through the service: hostile-tenant e2e). */
import { describe, expect, it } from "vitest";
import { clientKey, createAuthFailureLimiter } from "../../api/auth-limit";

describe("the failed-authentication limiter", () => {
  it("limits a client after `limit` failures within the window, until the oldest of them leaves it", () => {
    const limiter = createAuthFailureLimiter({ limit: 3, windowMs: 60_000 });
    for (const at of [0, 10_000, 20_000]) {
      expect(limiter.retryAfterSeconds("a", at)).toBe(0);
      limiter.recordFailure("a", at);
    }
    expect(limiter.retryAfterSeconds("a", 30_000)).toBe(30);
    expect(limiter.retryAfterSeconds("a", 59_999)).toBeCloseTo(0.001);
    // The first failure left the window: room for one more.
    expect(limiter.retryAfterSeconds("a", 60_000)).toBe(0);
    limiter.recordFailure("a", 60_000);
    expect(limiter.retryAfterSeconds("a", 60_001)).toBeCloseTo(9.999);
  });

  it("counts clients apart", () => {
    const limiter = createAuthFailureLimiter({ limit: 1, windowMs: 1000 });
    limiter.recordFailure("a", 0);
    expect(limiter.retryAfterSeconds("a", 1)).toBeGreaterThan(0);
    expect(limiter.retryAfterSeconds("b", 1)).toBe(0);
  });

  it("forgets the least recently failing clients past maxClients", () => {
    const limiter = createAuthFailureLimiter({ limit: 1, windowMs: 1000, maxClients: 2 });
    limiter.recordFailure("a", 0);
    limiter.recordFailure("b", 1);
    limiter.recordFailure("a", 2);
    limiter.recordFailure("c", 3);
    expect(limiter.retryAfterSeconds("a", 4)).toBeGreaterThan(0);
    expect(limiter.retryAfterSeconds("b", 4)).toBe(0);
    expect(limiter.retryAfterSeconds("c", 4)).toBeGreaterThan(0);
  });
});

describe("client keys", () => {
  it.each([
    ["127.0.0.2", "127.0.0.2"],
    ["::ffff:127.0.0.2", "127.0.0.2"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::9", "2001:db8:1:2::/64"],
    ["2001:DB8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
  ])("%s counts as %s", (address, key) => {
    expect(clientKey(address)).toBe(key);
  });
});
