/**
 * Failed authentications per client address, as middleware: after `limit` failures (401 answers) within `windowMs`, every
 * authentication from that address answers 429 with Retry-After (code too_many_auth_failures) until the oldest of those
 * failures leaves the window. A refused attempt is not looked at, so a correct token does not get through from a
 * limited address either (else the limit would not slow a guesser down); an address that is not limited is never
 * slowed, whatever other addresses do. Bearer tokens and agent enrollment tokens each have their own limiter.
 *
 * In-process, per replica: a sliding-window log in memory, nothing written per failure (a limiter that wrote to the
 * database would hand a guesser a way to load it). Behind N replicas a client gets at most N times the limit, still
 * bounded; the window survives no restart. Memory is bounded: at most `limit` times per address and `maxClients`
 * addresses (the least recently failing are forgotten first); IPv6 clients count per /64, which one host usually has.
 */
import type { IncomingMessage } from "node:http";
import { isIPv4, isIPv6 } from "node:net";
import type { Context, MiddlewareHandler } from "hono";
import { RateLimitedError } from "../lib/errors";

export interface AuthFailureLimiterOptions {
  limit: number;
  windowMs: number;
  /** Addresses remembered at most (default 100,000). */
  maxClients?: number;
}

export interface AuthFailureLimiter {
  /** Seconds until `client` may authenticate again; 0 when it may now. */
  retryAfterSeconds(client: string, now?: number): number;
  recordFailure(client: string, now?: number): void;
}

export function createAuthFailureLimiter({ limit, windowMs, maxClients = 100_000 }: AuthFailureLimiterOptions): AuthFailureLimiter {
  // Failure times per client, oldest first, at most `limit`; Map order is least recently failing first.
  const failures = new Map<string, number[]>();
  const inWindow = (times: number[], now: number) => {
    while (times.length > 0 && times[0]! <= now - windowMs) times.shift();
    return times;
  };
  return {
    retryAfterSeconds(client, now = Date.now()) {
      const times = failures.get(client);
      if (!times) return 0;
      if (inWindow(times, now).length === 0) failures.delete(client);
      return times.length < limit ? 0 : (times[0]! + windowMs - now) / 1000;
    },
    recordFailure(client, now = Date.now()) {
      const times = inWindow(failures.get(client) ?? [], now);
      failures.delete(client);
      times.push(now);
      if (times.length > limit) times.splice(0, times.length - limit);
      failures.set(client, times);
      if (failures.size > maxClients) failures.delete(failures.keys().next().value!);
    },
  };
}

/** The client's address: the socket's, or with trusted proxies the one they saw (X-Forwarded-For, from the right). */
export function clientAddressOf(c: Context, trustedProxyHops: number): string {
  const socketAddress = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket?.remoteAddress;
  if (trustedProxyHops > 0) {
    const forwarded = (c.req.header("x-forwarded-for") ?? "")
      .split(",")
      .map((part) => part.trim())
      .filter(Boolean);
    const seen = forwarded[forwarded.length - trustedProxyHops];
    if (seen) return clientKey(seen);
  }
  return socketAddress ? clientKey(socketAddress) : "unknown";
}

/** IPv4 as is (also when IPv4-mapped), IPv6 by its /64. */
export function clientKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = "", tail] = address.toLowerCase().split("%")[0]!.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(":")}::/64`;
}

/**
 * Refuses a limited client before anything else runs, and counts the 401s of what follows. `what` names the secret
 * in the message ("bearer token", "enrollment token").
 */
export function limitAuthFailures(limiter: AuthFailureLimiter, clientOf: (c: Context) => string, what: string): MiddlewareHandler {
  return async (c, next) => {
    const client = clientOf(c);
    const wait = limiter.retryAfterSeconds(client);
    if (wait > 0) {
      throw new RateLimitedError(`too many failed ${what} authentications from this address; try again in ${Math.ceil(wait)} s`, {
        code: "too_many_auth_failures",
        retryAfterSeconds: wait,
      });
    }
    await next();
    if (c.res.status === 401) limiter.recordFailure(client);
  };
}
