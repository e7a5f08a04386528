/** When a browser session ends (pure): its idle timeout since it was last seen, its absolute end, or its revocation. */
export interface SessionTimes {
  lastSeenAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
}

export interface SessionPolicy {
  idleSeconds: number;
  absoluteSeconds: number;
}

export type SessionVerdict = { live: true; touch: boolean } | { live: false; why: "revoked" | "idle" | "expired" };

/** `touch`: last_seen_at is refreshed at most once a minute. */
export function sessionVerdict(session: SessionTimes, policy: SessionPolicy, now: Date): SessionVerdict {
  if (session.revokedAt) return { live: false, why: "revoked" };
  if (now >= session.expiresAt) return { live: false, why: "expired" };
  if (now.getTime() - session.lastSeenAt.getTime() >= policy.idleSeconds * 1000) return { live: false, why: "idle" };
  return { live: true, touch: now.getTime() - session.lastSeenAt.getTime() >= 60_000 };
}

/**
 * A state-changing request with a session cookie comes from this service's own pages: its Origin (or, without one,
 * its Referer's origin) is the service's, and it carries the session's CSRF token.
 */
export function sameOrigin(request: { origin?: string; referer?: string }, serviceOrigins: readonly string[]): boolean {
  const claimed = request.origin ?? (request.referer ? safeOrigin(request.referer) : undefined);
  return claimed !== undefined && claimed !== "null" && serviceOrigins.includes(claimed);
}

function safeOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}
