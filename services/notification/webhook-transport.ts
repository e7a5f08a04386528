/**
 * A webhook POST that cannot be steered into the platform's network: the host is resolved and every address checked
 * (webhook-address-fns.ts) on every attempt, and the connection is pinned to the checked addresses (the socket's
 * `lookup` answers them, so no second DNS answer, say a rebinding to 127.0.0.1, is ever used), with the original
 * Host header and TLS server name. Redirects are not followed.
 */
import { Resolver } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { rootCertificates } from "node:tls";
import {
  chooseAddresses,
  classifyAddress,
  type ClassifiedAddress,
  type TargetPolicy,
  type WebhookErrorClass,
  type WebhookTarget,
} from "./webhook-address-fns";

/** Resolves a host name to every address it has. */
export type HostLookup = (hostname: string) => Promise<string[]>;
export type AddressClassifier = (address: string) => ClassifiedAddress | undefined;

/**
 * The system's DNS servers through c-ares (resolve4 and resolve6, bounded by `timeoutMs`), not getaddrinfo: a lookup
 * a tenant's name keeps hanging must not hold one of libuv's four threadpool threads, which the service's file and
 * crypto work shares. `localhost` and `*.localhost` are loopback without asking anyone (RFC 6761).
 */
export function systemLookup(timeoutMs = 5_000): HostLookup {
  const resolver = new Resolver({ timeout: Math.max(1, Math.ceil(timeoutMs / 2)), tries: 2 });
  return async (hostname) => {
    const name = hostname.toLowerCase().replace(/\.$/, "");
    if (name === "localhost" || name.endsWith(".localhost")) return ["127.0.0.1", "::1"];
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
    const addresses = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])];
    if (addresses.length > 0) return addresses;
    throw v4.status === "rejected" ? v4.reason : Object.assign(new Error(`${name} has no address`), { code: "ENODATA" });
  };
}

/** An attempt that failed for a reason of ours (a refused address, a timeout): the class travels with it. */
export class DeliveryFailure extends Error {
  override readonly name = "DeliveryFailure";
  constructor(
    readonly errorClass: WebhookErrorClass,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type ResolvedTarget =
  | { ok: true; addresses: ClassifiedAddress[] }
  | { ok: false; reason: "scheme" | "address" | "dns"; message: string; detail: string };

/** Resolves the target (unless it is an IP literal) and checks every address it can reach. */
export async function resolveTarget(
  target: WebhookTarget,
  policy: TargetPolicy,
  lookup: HostLookup,
  classify: AddressClassifier = classifyAddress,
): Promise<ResolvedTarget> {
  let addresses: string[];
  if (target.literal !== undefined) {
    addresses = [target.literal];
  } else {
    try {
      addresses = await lookup(target.hostname);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "error";
      return { ok: false, reason: "dns", message: "its host does not resolve to a public address", detail: `lookup failed (${code})` };
    }
  }
  const verdict = chooseAddresses(target, addresses, policy, classify);
  if (verdict.ok) return verdict;
  const detail = verdict.refused.map((entry) => `${entry.address}=${entry.range}${entry.embeds ? `(${entry.embeds})` : ""}`).join(", ");
  return { ok: false, reason: verdict.reason, message: verdict.message, detail: detail || verdict.message };
}

/** A socket lookup that answers only the checked addresses, whatever DNS would say now. */
export function pinnedLookup(addresses: readonly ClassifiedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const wanted = options.family === 4 || options.family === 6 ? addresses.filter((entry) => entry.family === options.family) : addresses;
    if (wanted.length === 0) {
      callback(Object.assign(new Error("no checked address of the requested family"), { code: "ENOTFOUND" }), "", 0);
      return;
    }
    if (options.all)
      callback(
        null,
        wanted.map((entry) => ({ address: entry.address, family: entry.family })),
      );
    else callback(null, wanted[0]!.address, wanted[0]!.family);
  };
}

export interface PostOptions {
  headers: Record<string, string>;
  body: string;
  /** The whole attempt: connect, TLS, request and the response's status line. */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Extra trusted CAs (PEM), besides the system's. */
  ca?: string[];
}

/** POSTs to the target over a connection pinned to `addresses`; resolves to the status code. */
export function postPinned(target: WebhookTarget, addresses: readonly ClassifiedAddress[], options: PostOptions): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const isHttps = target.scheme === "https";
    const request = (isHttps ? https : http).request({
      method: "POST",
      host: target.hostname,
      port: target.port,
      path: `${target.url.pathname}${target.url.search}`,
      headers: { ...options.headers, host: target.url.host, "content-length": Buffer.byteLength(options.body).toString() },
      lookup: pinnedLookup(addresses),
      agent: false,
      // `ca` replaces the default roots: keep them when extra CAs are trusted.
      ...(isHttps
        ? {
            servername: target.literal === undefined ? target.hostname : undefined,
            ca: options.ca ? [...rootCertificates, ...options.ca] : undefined,
          }
        : {}),
    });
    const overall = setTimeout(() => request.destroy(new DeliveryFailure("timeout", `no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    const finish = () => clearTimeout(overall);
    request.on("socket", (socket) => {
      if (!socket.connecting) return;
      const connectTimer = setTimeout(
        () => request.destroy(new DeliveryFailure("connect_timeout", `no connection within ${options.connectTimeoutMs} ms`)),
        options.connectTimeoutMs,
      );
      socket.once("connect", () => clearTimeout(connectTimer));
      socket.once("close", () => clearTimeout(connectTimer));
    });
    request.on("response", (response) => {
      finish();
      resolve(response.statusCode ?? 0);
      response.resume();
      response.destroy();
    });
    request.on("error", (error) => {
      finish();
      reject(error);
    });
    request.end(options.body);
  });
}
