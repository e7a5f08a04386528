/**
 * The server-sent-event streams (a run's engine events, a tenant's onboarding progress, a fleet run's progress): the loop
 * that polls what each follows and sends its events, the streams' leases and token re-check, how long one connection may
 * last, and how the OpenAPI document describes their events.
 *
 * A stream ends after at most `maxSeconds` (EVENT_STREAM_MAX_SECONDS), whatever it follows: a client reconnects, as
 * EventSource does by itself and the console's followEvents does, sending `Last-Event-ID` where the stream numbers
 * its events (a run's events are replayed from there). So no connection is held for ever (a run queued behind a
 * stopped worker, a progress nobody changes), every reconnect is authenticated again, and a client, a proxy or a
 * fuzzer always sees each response end.
 *
 * Leases: at most `maxPerSubject` streams open at once per tenant (tenant tokens) or per platform-admin token (an admin
 * watching a tenant does not use up the tenant's share), one more answers 429 with Retry-After (code
 * event_stream_limit). An open stream asks about its token about once a second and ends, with an event `revoked`
 * (`{"code": "token_revoked" | "token_expired"}`), when the token was revoked or has expired.
 *
 * The count is in-process, per replica (streams are connections to this process; a replica that dies takes its count
 * with it, so nothing leaks): behind N replicas a tenant has at most N times the cap. The revocation check reads the
 * database, so a token revoked through any replica ends its streams on every replica.
 *
 * The document gives each event's shape as OpenAPI 3.2 does (`itemSchema` of text/event-stream): an object of the
 * SSE fields, `data` a JSON text whose parsed shape is `contentSchema`.
 */
import type { Context } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import { RateLimitedError } from "../lib/errors";
import type { Principal } from "../services/core/principal";
import type { IdentityService } from "../services/identity/identity-service";
import type { TenantService } from "../services/tenant/tenant-service";

export const DEFAULT_EVENT_STREAM_MAX_SECONDS = 300;

type JsonSchema = Record<string, unknown>;

export interface StreamEvent {
  /** The SSE `event` field. */
  event: string;
  /** The shape of the JSON in `data`. */
  data: JsonSchema;
  /** Whether the event carries an `id` (a client sends the last one back as Last-Event-ID). */
  id: boolean;
}

/** A schema the document has as a component (a zod schema named with .openapi(name) and used by some route). */
export const componentRef = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

/**
 * A route's 200 answer that is an event stream. Its content type is text/event-stream, so @hono/zod-openapi lets the
 * route's handler answer a plain Response (what EventStreams.stream returns).
 */
export interface EventStreamResponseConfig {
  description: string;
  content: { "text/event-stream": { itemSchema: { oneOf: JsonSchema[] } } };
}

/** The 200 answer of a stream that sends `events` (each by its `event` name). */
export function eventStreamResponse(description: string, events: StreamEvent[]): EventStreamResponseConfig {
  const itemSchema = {
    oneOf: events.map((event) => ({
      type: "object",
      properties: {
        event: { const: event.event },
        data: { type: "string", contentMediaType: "application/json", contentSchema: event.data },
        ...(event.id ? { id: { type: "string", pattern: "^[0-9]+$" } } : {}),
        retry: { type: "integer", minimum: 0 },
      },
      required: ["event", "data", ...(event.id ? ["id"] : [])],
    })),
  };
  return {
    description: `${description}. The stream ends after at most EVENT_STREAM_MAX_SECONDS (default ${DEFAULT_EVENT_STREAM_MAX_SECONDS} s): reconnect, with Last-Event-ID where events carry an id`,
    content: { "text/event-stream": { itemSchema } },
  };
}

/** One event to send. */
export interface SseEvent {
  event: string;
  /** A JSON text. */
  data: string;
  id?: number;
}

/** What one poll found. */
export interface PollResult {
  /** Sent in this order. */
  events: SseEvent[];
  /** Poll again at once, not after pollMs: more are waiting (a full batch). */
  more?: boolean;
  /** What the stream follows has finished: this event is sent after `events`, then the stream ends. */
  end?: SseEvent;
}

export interface PollingStream {
  /** How long between two polls (ms). */
  pollMs: number;
  /** When nothing was sent for this long, a comment line keeps proxies from closing the idle stream (ms); unset: none. */
  keepAliveMs?: number;
  /** Whether the client's Last-Event-ID resumes the stream after that event (its ids number what it follows). */
  resumable?: boolean;
  /** Reads what the stream follows; `lastEventId`: the last id sent, or before that the client's Last-Event-ID on a resumable stream. */
  poll(lastEventId: number | undefined): Promise<PollResult>;
}

/** `event` each time its data differs from the last one sent, numbered 0, 1, ... on each connection. */
export function eventOnChange(event: string): (data: string) => SseEvent[] {
  let last = "";
  let id = 0;
  return (data) => {
    if (data === last) return [];
    last = data;
    return [{ id: id++, event, data }];
  };
}

export interface EventStreamOptions {
  maxPerSubject: number;
  /** How often an open stream re-checks its token in the database (ms, default 1000). */
  recheckMs?: number;
  /** How long one connection of a stream lasts at most (s; EVENT_STREAM_MAX_SECONDS). */
  maxSeconds?: number;
}

/** A stream refused for the cap is told to try again after this; streams are long-lived, so a guess. */
export const EVENT_STREAM_RETRY_AFTER_SECONDS = 30;

export type StreamEndReason = "token_revoked" | "token_expired" | "session_ended";

export interface EventStreams {
  /**
   * Takes a lease for the principal (RateLimitedError past the cap) and polls and sends until what the stream follows
   * ends, the client goes away, the token is gone (the `revoked` event was sent) or the connection's time is up. The
   * lease is given back when the stream ends, however it ends.
   */
  stream(c: Context, principal: Principal, polling: PollingStream): Response;
}

const lastEventIdOf = (c: Context): number | undefined => {
  const id = Number.parseInt(c.req.header("last-event-id") ?? "", 10);
  return Number.isInteger(id) ? id : undefined;
};

const sseMessage = ({ event, data, id }: SseEvent) => ({ ...(id === undefined ? {} : { id: String(id) }), event, data });

export function createEventStreams(
  tenants: Pick<TenantService, "tokenIsLive">,
  sessions: Pick<IdentityService, "sessionIsLive">,
  { maxPerSubject, recheckMs = 1000, maxSeconds = DEFAULT_EVENT_STREAM_MAX_SECONDS }: EventStreamOptions,
): EventStreams {
  const open = new Map<string, number>();
  const subjectOf = (principal: Principal) => (principal.scope === "tenant" ? `tenant:${principal.organizationId}` : `token:${principal.tokenId}`);

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
    if (!checkDatabase) return undefined;
    // Signed out, signed out everywhere, removed from the tenant, or past the session's end.
    if (principal.person) return (await sessions.sessionIsLive(principal.person.sessionId)) ? undefined : "session_ended";
    if (principal.tokenId <= 0) return undefined;
    // Revoked, or expired by the database's clock.
    return (await tenants.tokenIsLive(principal.tokenId)) ? undefined : "token_revoked";
  }

  /** Whether the stream may go on: false past the deadline, or once the token is gone (after sending `revoked`). */
  function liveness(stream: SSEStreamingApi, principal: Principal): () => Promise<boolean> {
    let checkedAt = Date.now();
    const deadline = Date.now() + maxSeconds * 1000;
    return async () => {
      if (Date.now() >= deadline) return false;
      const due = Date.now() - checkedAt >= recheckMs;
      if (due) checkedAt = Date.now();
      const reason = await endReason(principal, due);
      if (!reason) return true;
      await stream.writeSSE({ event: "revoked", data: JSON.stringify({ code: reason }) });
      return false;
    };
  }

  return {
    stream(c, principal, { pollMs, keepAliveMs, resumable = false, poll }) {
      const release = lease(principal);
      const resumeAfter = resumable ? lastEventIdOf(c) : undefined;
      return streamSSE(c, async (stream) => {
        try {
          const live = liveness(stream, principal);
          let aborted = false;
          stream.onAbort(() => {
            aborted = true;
          });
          let lastEventId = resumeAfter;
          let lastWriteAt = Date.now();
          while (!aborted && (await live())) {
            const { events, more = false, end } = await poll(lastEventId);
            for (const event of events) {
              await stream.writeSSE(sseMessage(event));
              if (event.id !== undefined) lastEventId = event.id;
              lastWriteAt = Date.now();
            }
            if (end) {
              await stream.writeSSE(sseMessage(end));
              return;
            }
            if (more) continue;
            if (keepAliveMs !== undefined && events.length === 0 && Date.now() - lastWriteAt >= keepAliveMs) {
              await stream.write(": keep-alive\n\n");
              lastWriteAt = Date.now();
            }
            await stream.sleep(pollMs);
          }
        } finally {
          release();
        }
      });
    },
  };
}
