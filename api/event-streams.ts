/**
 * The server-sent event streams' leases: at most `maxPerSubject` open at once per tenant (tenant tokens) or per
 * platform-admin token (an admin watching a tenant does not use up the tenant's share), one more answers 429 with
 * Retry-After (code event_stream_limit). An open stream asks about its token about once a second and ends, with an event
 * `revoked` (`{"code": "token_revoked" | "token_expired"}`), when the token was revoked or has expired.
 *
 * The count is in-process, per replica (streams are connections to this process; a replica that dies takes its count
 * with it, so nothing leaks): behind N replicas a tenant has at most N times the cap. The revocation check reads the
 * database, so a token revoked through any replica ends its streams on every replica.
 */
import type { Context } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import { RateLimitedError } from "../lib/errors";
import { DEFAULT_EVENT_STREAM_MAX_SECONDS } from "./event-stream";
import type { Principal } from "../services/core/principal";
import type { TenantService } from "../services/tenant/tenant-service";

export interface EventStreamOptions {
  maxPerSubject: number;
  /** How often an open stream re-checks its token in the database (ms, default 1000). */
  recheckMs?: number;
  /** How long one connection of a stream lasts at most (s; EVENT_STREAM_MAX_SECONDS, see api/event-stream.ts). */
  maxSeconds?: number;
}

/** A stream refused for the cap is told to try again after this; streams are long-lived, so a guess. */
export const EVENT_STREAM_RETRY_AFTER_SECONDS = 30;

export type StreamEndReason = "token_revoked" | "token_expired";

export interface EventStreams {
  /**
   * Takes a lease for the principal (RateLimitedError past the cap) and streams `body`, which calls `live()` before each
   * poll and stops when it answers false (the token is gone: the `revoked` event was sent). The lease is given back when
   * the stream ends, however it ends.
   */
  stream(c: Context, principal: Principal, body: (stream: SSEStreamingApi, live: () => Promise<boolean>) => Promise<void>): Response;
}

export function createEventStreams(tenants: Pick<TenantService, "tokenIsLive">, { maxPerSubject, recheckMs = 1000, maxSeconds = DEFAULT_EVENT_STREAM_MAX_SECONDS }: EventStreamOptions): EventStreams {
  const open = new Map<string, number>();
  const subjectOf = (principal: Principal) =>
    principal.scope === "tenant" ? `tenant:${principal.organizationId}` : `token:${principal.tokenId}`;

  function lease(principal: Principal): () => void {
    const subject = subjectOf(principal);
    const current = open.get(subject) ?? 0;
    if (current >= maxPerSubject) {
      throw new RateLimitedError(
        `at most ${maxPerSubject} event streams may be open at once ${principal.scope === "tenant" ? "per tenant" : "per token"}; close one first`,
        { code: "event_stream_limit", retryAfterSeconds: EVENT_STREAM_RETRY_AFTER_SECONDS, details: { max_event_streams: maxPerSubject } },
      );
    }
    open.set(subject, current + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (open.get(subject) ?? 1) - 1;
      if (left > 0) open.set(subject, left);
      else open.delete(subject);
    };
  }

  async function endReason(principal: Principal, checkDatabase: boolean): Promise<StreamEndReason | undefined> {
    if (principal.expiresAt && principal.expiresAt.getTime() <= Date.now()) return "token_expired";
    if (!checkDatabase || principal.tokenId <= 0) return undefined;
    // Revoked, or expired by the database's clock.
    return (await tenants.tokenIsLive(principal.tokenId)) ? undefined : "token_revoked";
  }

  return {
    stream(c, principal, body) {
      const release = lease(principal);
      return streamSSE(c, async (stream) => {
        let checkedAt = Date.now();
        // No connection is held for ever: the client reconnects (api/event-stream.ts).
        const deadline = Date.now() + maxSeconds * 1000;
        const live = async () => {
          if (Date.now() >= deadline) return false;
          const due = Date.now() - checkedAt >= recheckMs;
          if (due) checkedAt = Date.now();
          const reason = await endReason(principal, due);
          if (!reason) return true;
          await stream.writeSSE({ event: "revoked", data: JSON.stringify({ code: reason }) });
          return false;
        };
        try {
          await body(stream, live);
        } finally {
          release();
        }
      });
    },
  };
}
