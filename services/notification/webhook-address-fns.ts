/**
 * Where a webhook may connect, as pure functions: parsing a webhook URL (WHATWG normalisation turns 0x7f000001,
 * 2130706433, 0177.0.0.1, 127.1 and %31%32%37.0.0.1 into 127.0.0.1, and [::ffff:127.0.0.1] into [::ffff:7f00:1]),
 * classifying an address (net.BlockList per range; IPv4 embedded in IPv6 by mapping, NAT64 or 6to4 is classified as
 * the IPv4 address it reaches), choosing the addresses a delivery may connect to, and naming an error class for a
 * failed delivery (tenants see the class, never the error's text).
 */
import { BlockList, isIP, isIPv4, isIPv6 } from "node:net";

export const ADDRESS_RANGES = [
  "public",
  "loopback",
  "private",
  "link_local",
  "cgnat",
  "unique_local",
  "multicast",
  "unspecified",
  "broadcast",
  "documentation",
  "benchmarking",
  "reserved",
] as const;
export type AddressRange = (typeof ADDRESS_RANGES)[number];

export interface ClassifiedAddress {
  /** As given (zone id dropped); the address a connection is pinned to. */
  address: string;
  family: 4 | 6;
  range: AddressRange;
  /** How an IPv6 address carries the IPv4 address it was classified by. */
  embeds?: "ipv4_mapped" | "nat64" | "6to4";
}

const V4: [AddressRange, string, number][] = [
  ["broadcast", "255.255.255.255", 32],
  ["unspecified", "0.0.0.0", 8],
  ["private", "10.0.0.0", 8],
  ["cgnat", "100.64.0.0", 10],
  ["loopback", "127.0.0.0", 8],
  ["link_local", "169.254.0.0", 16],
  ["private", "172.16.0.0", 12],
  ["reserved", "192.0.0.0", 24],
  ["documentation", "192.0.2.0", 24],
  ["reserved", "192.88.99.0", 24],
  ["private", "192.168.0.0", 16],
  ["benchmarking", "198.18.0.0", 15],
  ["documentation", "198.51.100.0", 24],
  ["documentation", "203.0.113.0", 24],
  ["multicast", "224.0.0.0", 4],
  ["reserved", "240.0.0.0", 4],
];

/** IPv6 outside 2000::/3 is refused as reserved unless named here; these are checked first. */
const V6: [AddressRange, string, number][] = [
  ["unspecified", "::", 128],
  ["loopback", "::1", 128],
  ["unique_local", "fc00::", 7],
  ["link_local", "fe80::", 10],
  ["private", "fec0::", 10], // site-local, deprecated
  ["multicast", "ff00::", 8],
  ["private", "64:ff9b:1::", 48], // local-use NAT64
  ["reserved", "2001::", 23], // IETF protocol assignments: Teredo, ORCHID, ...
  ["benchmarking", "2001:2::", 48],
  ["documentation", "2001:db8::", 32],
  ["documentation", "3fff::", 20],
];

function blockLists(rules: [AddressRange, string, number][], type: "ipv4" | "ipv6"): [AddressRange, BlockList][] {
  return rules.map(([range, network, prefix]) => {
    const list = new BlockList();
    list.addSubnet(network, prefix, type);
    return [range, list];
  });
}
const V4_LISTS = blockLists(V4, "ipv4");
// Benchmarking and documentation sit inside 2001::/23; the more specific names win.
const V6_LISTS = blockLists(
  [...V6].sort((a, b) => b[2] - a[2]),
  "ipv6",
);
const GLOBAL_UNICAST = new BlockList();
GLOBAL_UNICAST.addSubnet("2000::", 3, "ipv6");

/** The eight 16-bit groups of an IPv6 address (a trailing dotted quad and a zone id allowed), or undefined. */
export function ipv6Groups(text: string): number[] | undefined {
  const address = text.replace(/%.*$/, "");
  if (!isIPv6(address)) return undefined;
  let hex = address;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    hex = `${address.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = hex.split("::") as [string, string | undefined];
  const words = (part: string | undefined) => (part ? part.split(":").map((word) => parseInt(word, 16)) : []);
  const left = words(head);
  const right = words(tail);
  const zeros = tail === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0);
  return [...left, ...zeros, ...right];
}

function v4Of(high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

function classifyV4(address: string): AddressRange {
  return V4_LISTS.find(([, list]) => list.check(address, "ipv4"))?.[0] ?? "public";
}

/** The range of an IP address (v4 or v6, any textual form Node's net accepts); undefined when it is not an address. */
export function classifyAddress(text: string): ClassifiedAddress | undefined {
  const address = text.replace(/%.*$/, "");
  if (isIPv4(address)) return { address, family: 4, range: classifyV4(address) };
  const groups = ipv6Groups(address);
  if (!groups) return undefined;
  const zeroUpTo = (n: number) => groups.slice(0, n).every((group) => group === 0);
  const embedded = (embeds: ClassifiedAddress["embeds"], v4: string): ClassifiedAddress => ({ address, family: 6, range: classifyV4(v4), embeds });
  if (zeroUpTo(5) && groups[5] === 0xffff) return embedded("ipv4_mapped", v4Of(groups[6]!, groups[7]!));
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((group) => group === 0))
    return embedded("nat64", v4Of(groups[6]!, groups[7]!));
  if (groups[0] === 0x2002) return embedded("6to4", v4Of(groups[1]!, groups[2]!));
  const canonical = groups.map((group) => group.toString(16)).join(":");
  const named = V6_LISTS.find(([, list]) => list.check(canonical, "ipv6"))?.[0];
  if (named) return { address, family: 6, range: named };
  // Everything else outside global unicast (IPv4-compatible ::a.b.c.d, ::ffff:0:a.b.c.d, 100::/64, ...) is reserved.
  return { address, family: 6, range: GLOBAL_UNICAST.check(canonical, "ipv6") ? "public" : "reserved" };
}

export interface WebhookTarget {
  url: URL;
  scheme: "https" | "http";
  /** Without brackets: what DNS is asked for, and the TLS server name when it is not an address. */
  hostname: string;
  port: number;
  /** The address itself when the host is an IP literal (no DNS then). */
  literal?: string;
  /** host:port, the key deliveries are limited by. */
  hostKey: string;
}

/** Parses a webhook URL after WHATWG normalisation, or says what is wrong with it (for the `url` field). */
export function parseWebhookUrl(raw: string): { target: WebhookTarget } | { problem: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: "must be an absolute URL" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return { problem: "must be https" };
  if (url.username || url.password) return { problem: "must not carry credentials" };
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  if (hostname === "") return { problem: "must name a host" };
  const scheme = url.protocol === "https:" ? "https" : "http";
  const port = url.port === "" ? (scheme === "https" ? 443 : 80) : Number(url.port);
  return {
    target: { url, scheme, hostname, port, literal: isIP(hostname) ? hostname : undefined, hostKey: `${url.hostname}:${port}`.toLowerCase() },
  };
}

export interface TargetPolicy {
  /** A platform webhook (no tenant): the only kind that may ever reach loopback. */
  platform: boolean;
  /** The operator's WEBHOOK_PLATFORM_ALLOW_LOOPBACK. */
  platformLoopback: boolean;
}

export type TargetVerdict =
  | { ok: true; addresses: ClassifiedAddress[] }
  | { ok: false; reason: "scheme" | "address"; message: string; refused: ClassifiedAddress[] };

const loopbackAllowed = (policy: TargetPolicy) => policy.platform && policy.platformLoopback;

/**
 * Which of the addresses a host resolved to a delivery may connect to: public ones over https; loopback ones only for a
 * platform webhook with WEBHOOK_PLATFORM_ALLOW_LOOPBACK (then plain http too). Refused ones are never connected to.
 */
export function chooseAddresses(
  target: Pick<WebhookTarget, "scheme" | "literal">,
  addresses: readonly string[],
  policy: TargetPolicy,
  classify: (address: string) => ClassifiedAddress | undefined = classifyAddress,
): TargetVerdict {
  const classified = addresses.map((address) => classify(address) ?? { address, family: 4 as const, range: "reserved" as const });
  if (target.scheme === "http" && !loopbackAllowed(policy)) {
    return { ok: false, reason: "scheme", message: "must be https", refused: [] };
  }
  const usable = classified.filter((entry) =>
    target.scheme === "http" ? entry.range === "loopback" : entry.range === "public" || (entry.range === "loopback" && loopbackAllowed(policy)),
  );
  if (usable.length > 0) return { ok: true, addresses: usable };
  const refused = classified;
  if (target.scheme === "http" && classified.some((entry) => entry.range === "public")) {
    return { ok: false, reason: "scheme", message: "must be https (plain http only to loopback)", refused };
  }
  const first = classified[0];
  const message =
    target.literal !== undefined && first
      ? `must not point at a ${first.range.replace("_", "-")} address${first.embeds ? ` (IPv4 embedded as ${first.embeds.replace("_", "-")})` : ""}`
      : "its host does not resolve to a public address";
  return { ok: false, reason: "address", message, refused };
}

/** What a tenant sees of a failed attempt; the error's text stays in the server log. */
export const WEBHOOK_ERROR_CLASSES = [
  "address_refused",
  "dns_error",
  "connect_refused",
  "connect_timeout",
  "timeout",
  "connection_reset",
  "unreachable",
  "tls_error",
  "protocol_error",
  "http_3xx",
  "http_4xx",
  "http_5xx",
  "webhook_deleted",
  "delivery_failed",
] as const;
export type WebhookErrorClass = (typeof WEBHOOK_ERROR_CLASSES)[number];

const ERROR_CODE_CLASSES: [RegExp, WebhookErrorClass][] = [
  [/^ECONNREFUSED$/, "connect_refused"],
  [/^(ETIMEDOUT|ABORT_ERR|UND_ERR_.*TIMEOUT)$/, "timeout"],
  [/^(ECONNRESET|EPIPE|ECONNABORTED|UND_ERR_SOCKET)$/, "connection_reset"],
  [/^(EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|ENETDOWN|EADDRNOTAVAIL)$/, "unreachable"],
  [/^(ENOTFOUND|EAI_.*|ENODATA|ESERVFAIL|ENOTIMP|EREFUSED)$/, "dns_error"],
  [
    /^(ERR_TLS_.*|ERR_SSL_.*|EPROTO|CERT_.*|UNABLE_TO_.*|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_OSSL_.*|HOSTNAME_MISMATCH)$/,
    "tls_error",
  ],
  [/^HPE_.*$/, "protocol_error"],
];

/** The class of an error a delivery failed with: by its `code` (or its cause's), else delivery_failed. */
export function deliveryErrorClass(error: unknown): WebhookErrorClass {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 4; current = current.cause, depth++) {
    const tagged = (current as { errorClass?: unknown }).errorClass;
    if (typeof tagged === "string" && (WEBHOOK_ERROR_CLASSES as readonly string[]).includes(tagged)) return tagged as WebhookErrorClass;
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === "string") {
      const match = ERROR_CODE_CLASSES.find(([pattern]) => pattern.test(code));
      if (match) return match[1];
    }
    if (current.name === "TimeoutError" || current.name === "AbortError") return "timeout";
  }
  return "delivery_failed";
}

/** The class of a receiver's non-2xx answer; undefined for 2xx (delivered). */
export function httpStatusClass(status: number): WebhookErrorClass | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status >= 300 && status < 400) return "http_3xx";
  if (status >= 400 && status < 500) return "http_4xx";
  if (status >= 500 && status < 600) return "http_5xx";
  return "protocol_error";
}

/** A stored attempt error as a tenant may see it: attempts recorded before error classes existed held raw text. */
export function presentableErrorClass(stored: string | null): WebhookErrorClass | null {
  if (stored === null) return null;
  return (WEBHOOK_ERROR_CLASSES as readonly string[]).includes(stored) ? (stored as WebhookErrorClass) : "delivery_failed";
}
