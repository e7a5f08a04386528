import { describe, expect, it } from "vitest";
import { sameOrigin, sessionVerdict } from "../../services/identity/session-fns";

const policy = { idleSeconds: 1800, absoluteSeconds: 43_200 };
const at = (iso: string) => new Date(iso);

describe("a browser session's end", () => {
  const session = { lastSeenAt: at("2026-12-05T10:00:00Z"), expiresAt: at("2026-12-05T22:00:00Z"), revokedAt: null };

  it("is live until its idle timeout, refreshing last_seen_at at most once a minute", () => {
    expect(sessionVerdict(session, policy, at("2026-12-05T10:00:30Z"))).toEqual({ live: true, touch: false });
    expect(sessionVerdict(session, policy, at("2026-12-05T10:29:59Z"))).toEqual({ live: true, touch: true });
    expect(sessionVerdict(session, policy, at("2026-12-05T10:30:00Z"))).toEqual({ live: false, why: "idle" });
  });

  it("ends at its absolute end whatever its activity, and at once when revoked", () => {
    const active = { ...session, lastSeenAt: at("2026-12-05T21:59:00Z") };
    expect(sessionVerdict(active, policy, at("2026-12-05T22:00:00Z"))).toEqual({ live: false, why: "expired" });
    expect(sessionVerdict({ ...active, revokedAt: at("2026-12-05T21:59:30Z") }, policy, at("2026-12-05T21:59:31Z"))).toEqual({
      live: false,
      why: "revoked",
    });
  });
});

describe("a state-changing request's origin", () => {
  const service = ["https://xdr.example.com"];

  it("is the service's own by its Origin, or without one by its Referer", () => {
    expect(sameOrigin({ origin: "https://xdr.example.com" }, service)).toBe(true);
    expect(sameOrigin({ referer: "https://xdr.example.com/console/?view=accounts" }, service)).toBe(true);
  });

  it("refuses another site, an opaque origin, a malformed referer, and a request that names none", () => {
    expect(sameOrigin({ origin: "https://evil.example" }, service)).toBe(false);
    expect(sameOrigin({ origin: "https://xdr.example.com.evil.example" }, service)).toBe(false);
    expect(sameOrigin({ origin: "null" }, service)).toBe(false);
    expect(sameOrigin({ referer: "not a url" }, service)).toBe(false);
    expect(sameOrigin({}, service)).toBe(false);
  });
});
