import { describe, expect, it } from "vitest";
import {
  chooseAddresses,
  classifyAddress,
  deliveryErrorClass,
  httpStatusClass,
  ipv6Groups,
  parseWebhookUrl,
  presentableErrorClass,
  type TargetPolicy,
  type WebhookTarget,
} from "../../services/notification/webhook-address-fns";
import { DeliveryFailure, pinnedLookup, systemLookup } from "../../services/notification/webhook-transport";

const target = (raw: string): WebhookTarget => {
  const parsed = parseWebhookUrl(raw);
  if (!("target" in parsed)) throw new Error(`${raw}: ${parsed.problem}`);
  return parsed.target;
};
const tenant: TargetPolicy = { platform: false, platformLoopback: true };
const platform: TargetPolicy = { platform: true, platformLoopback: true };
const platformWithoutSetting: TargetPolicy = { platform: true, platformLoopback: false };

/** What a literal URL's host is classified as, after WHATWG normalisation. */
const rangeOfUrl = (raw: string) => classifyAddress(target(raw).literal!)?.range;

describe("webhook URLs are normalised as WHATWG URL does, so every spelling of an address is one address", () => {
  it.each([
    ["https://0x7f000001/", "127.0.0.1"],
    ["https://2130706433/", "127.0.0.1"],
    ["https://0177.0.0.1/", "127.0.0.1"],
    ["https://017700000001/", "127.0.0.1"],
    ["https://127.1/", "127.0.0.1"],
    ["https://127.0.1/", "127.0.0.1"],
    ["https://0x7f.0.0.1/", "127.0.0.1"],
    ["https://127.0.0.1./", "127.0.0.1"],
    ["https://%31%32%37.0.0.1/", "127.0.0.1"],
    ["https://１２７.０.０.１/", "127.0.0.1"],
    ["https://0/", "0.0.0.0"],
    ["https://0xa9fea9fe/", "169.254.169.254"],
    ["https://[::ffff:127.0.0.1]/", "::ffff:7f00:1"],
    ["https://[0:0:0:0:0:ffff:7f00:0001]/", "::ffff:7f00:1"],
    ["https://[FD00::1]/", "fd00::1"],
  ])("%s is the address %s", (raw, address) => {
    expect(target(raw).literal).toBe(address);
  });

  it("keeps the host name, port and the host:port key deliveries are limited by", () => {
    expect(target("https://Hooks.Example.com/x?y=1")).toMatchObject({
      hostname: "hooks.example.com",
      port: 443,
      literal: undefined,
      hostKey: "hooks.example.com:443",
      scheme: "https",
    });
    expect(target("http://localhost:5432/")).toMatchObject({ hostname: "localhost", port: 5432, hostKey: "localhost:5432", scheme: "http" });
    expect(target("https://[::1]:8443/")).toMatchObject({ hostname: "::1", literal: "::1", hostKey: "[::1]:8443" });
  });

  it("refuses what is not an https/http URL, or carries credentials", () => {
    expect(parseWebhookUrl("not a url")).toEqual({ problem: "must be an absolute URL" });
    expect(parseWebhookUrl("ftp://hooks.example.com/")).toEqual({ problem: "must be https" });
    expect(parseWebhookUrl("file:///etc/passwd")).toEqual({ problem: "must be https" });
    expect(parseWebhookUrl("gopher://127.0.0.1:6379/_")).toEqual({ problem: "must be https" });
    expect(parseWebhookUrl("https://user:pw@hooks.example.com/")).toEqual({ problem: "must not carry credentials" });
    expect(parseWebhookUrl("https://0x1.2.3.4.5/")).toEqual({ problem: "must be an absolute URL" });
  });
});

describe("address classification", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "link_local"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.255", "cgnat"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["255.255.255.255", "broadcast"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["240.0.0.1", "reserved"],
    ["192.0.0.170", "reserved"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["198.18.0.1", "benchmarking"],
    ["8.8.8.8", "public"],
    ["93.184.215.14", "public"],
    ["172.32.0.1", "public"],
    ["100.128.0.1", "public"],
  ])("IPv4 %s is %s", (address, range) => {
    expect(classifyAddress(address)?.range).toBe(range);
  });

  it.each([
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["::", "unspecified"],
    ["fd00::1", "unique_local"],
    ["fc00::1", "unique_local"],
    ["fe80::1", "link_local"],
    ["fe80::1%eth0", "link_local"],
    ["fec0::1", "private"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["3fff::1", "documentation"],
    ["2001:2::1", "benchmarking"],
    ["2001::1", "reserved"],
    ["100::1", "reserved"],
    ["::127.0.0.1", "reserved"],
    ["::ffff:0:7f00:1", "reserved"],
    ["64:ff9b:1::a00:1", "private"],
    ["2606:4700:4700::1111", "public"],
    ["2a00:1450:4001:80b::200e", "public"],
  ])("IPv6 %s is %s", (address, range) => {
    expect(classifyAddress(address)?.range).toBe(range);
  });

  it.each([
    ["::ffff:127.0.0.1", "loopback", "ipv4_mapped"],
    ["::ffff:7f00:1", "loopback", "ipv4_mapped"],
    ["0:0:0:0:0:ffff:7f00:0001", "loopback", "ipv4_mapped"],
    ["::ffff:10.0.0.1", "private", "ipv4_mapped"],
    ["::ffff:a9fe:a9fe", "link_local", "ipv4_mapped"],
    ["::ffff:8.8.8.8", "public", "ipv4_mapped"],
    ["64:ff9b::127.0.0.1", "loopback", "nat64"],
    ["64:ff9b::a9fe:a9fe", "link_local", "nat64"],
    ["64:ff9b::c0a8:101", "private", "nat64"],
    ["64:ff9b::808:808", "public", "nat64"],
    ["2002:7f00:1::1", "loopback", "6to4"],
    ["2002:a00:1::", "private", "6to4"],
    ["2002:808:808::1", "public", "6to4"],
  ])("IPv4 embedded in IPv6 is judged by the IPv4 address: %s is %s (%s)", (address, range, embeds) => {
    expect(classifyAddress(address)).toMatchObject({ range, embeds, family: 6 });
  });

  it("every probe address of issue 17 is refused, in the spelling the probe used", () => {
    const probes = [
      "https://169.254.169.254/latest/meta-data/",
      "https://10.0.0.1/",
      "https://192.168.1.1/",
      "https://[fd00::1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://0x7f000001/",
      "https://2130706433/",
      "https://127.1:18499/",
      "https://[::]/",
      "https://[64:ff9b::7f00:1]/",
      "https://100.64.0.1/",
    ];
    for (const probe of probes) expect(rangeOfUrl(probe), probe).not.toBe("public");
  });

  it("is undefined for what is not an address", () => {
    expect(classifyAddress("localhost")).toBeUndefined();
    expect(classifyAddress("1.2.3")).toBeUndefined();
    expect(ipv6Groups("::ffff:1.2.3.4")).toEqual([0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]);
    expect(ipv6Groups("1::")).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe("choosing the addresses a delivery connects to", () => {
  const https = target("https://hooks.example.com/");
  const http = target("http://receiver.example.com/");

  it("a tenant's webhook reaches public addresses only, never loopback, whatever the setting", () => {
    expect(chooseAddresses(https, ["93.184.215.14"], tenant)).toMatchObject({ ok: true, addresses: [{ address: "93.184.215.14" }] });
    expect(chooseAddresses(https, ["127.0.0.1"], tenant)).toMatchObject({
      ok: false,
      reason: "address",
      message: "its host does not resolve to a public address",
    });
    expect(chooseAddresses(https, ["::1", "127.0.0.1"], tenant)).toMatchObject({ ok: false, reason: "address" });
    expect(chooseAddresses(http, ["127.0.0.1"], tenant)).toMatchObject({ ok: false, reason: "scheme", message: "must be https" });
    expect(chooseAddresses(http, ["93.184.215.14"], tenant)).toMatchObject({ ok: false, reason: "scheme" });
  });

  it("a host with public and refused addresses is connected to on its public ones only", () => {
    const verdict = chooseAddresses(https, ["10.0.0.5", "93.184.215.14", "::ffff:127.0.0.1", "2606:4700:4700::1111"], tenant);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.ok && verdict.addresses.map((entry) => entry.address)).toEqual(["93.184.215.14", "2606:4700:4700::1111"]);
  });

  it("a literal refused address is named by its range", () => {
    expect(chooseAddresses(target("https://169.254.169.254/"), ["169.254.169.254"], tenant)).toMatchObject({
      message: "must not point at a link-local address",
    });
    expect(chooseAddresses(target("https://[::ffff:127.0.0.1]/"), ["::ffff:7f00:1"], tenant)).toMatchObject({
      message: "must not point at a loopback address (IPv4 embedded as ipv4-mapped)",
    });
  });

  it("a platform webhook reaches loopback, also over http, only with the setting; never private or link-local", () => {
    expect(chooseAddresses(http, ["127.0.0.1"], platform)).toMatchObject({ ok: true });
    expect(chooseAddresses(https, ["::1"], platform)).toMatchObject({ ok: true });
    expect(chooseAddresses(http, ["127.0.0.1"], platformWithoutSetting)).toMatchObject({ ok: false, reason: "scheme" });
    expect(chooseAddresses(https, ["127.0.0.1"], platformWithoutSetting)).toMatchObject({ ok: false, reason: "address" });
    expect(chooseAddresses(https, ["10.0.0.1"], platform)).toMatchObject({ ok: false, reason: "address" });
    expect(chooseAddresses(http, ["169.254.169.254"], platform)).toMatchObject({ ok: false });
    expect(chooseAddresses(http, ["93.184.215.14"], platform)).toMatchObject({ ok: false, message: "must be https (plain http only to loopback)" });
  });

  it("an answer that is not an address is refused", () => {
    expect(chooseAddresses(https, ["not-an-ip"], tenant)).toMatchObject({ ok: false, reason: "address" });
    expect(chooseAddresses(https, [], tenant)).toMatchObject({ ok: false, reason: "address" });
  });
});

describe("the pinned socket lookup answers only the checked addresses", () => {
  const checked = [classifyAddress("93.184.215.14")!, classifyAddress("2606:4700:4700::1111")!];
  const ask = (options: { all?: boolean; family?: number }) =>
    new Promise<unknown>((resolve, reject) =>
      pinnedLookup(checked)("rebinding.example", options as never, (error, address, family) =>
        error ? reject(error) : resolve(family === undefined ? address : { address, family }),
      ),
    );

  it("whatever name it is asked for, with or without all, per family", async () => {
    expect(await ask({ all: true })).toEqual([
      { address: "93.184.215.14", family: 4 },
      { address: "2606:4700:4700::1111", family: 6 },
    ]);
    expect(await ask({})).toEqual({ address: "93.184.215.14", family: 4 });
    expect(await ask({ family: 6 })).toEqual({ address: "2606:4700:4700::1111", family: 6 });
  });
});

describe("error classes shown instead of error texts", () => {
  const coded = (code: string, message = "x") => Object.assign(new Error(message), { code });

  it.each([
    [coded("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:18499"), "connect_refused"],
    [coded("ECONNRESET"), "connection_reset"],
    [coded("ETIMEDOUT"), "timeout"],
    [coded("EHOSTUNREACH"), "unreachable"],
    [coded("ENOTFOUND"), "dns_error"],
    [coded("EAI_AGAIN"), "dns_error"],
    [coded("DEPTH_ZERO_SELF_SIGNED_CERT"), "tls_error"],
    [coded("ERR_TLS_CERT_ALTNAME_INVALID"), "tls_error"],
    [coded("EPROTO", "write EPROTO 40E7:error:0A00010B:SSL routines:ssl3_get_record:wrong version number"), "tls_error"],
    [coded("ERR_SSL_WRONG_VERSION_NUMBER"), "tls_error"],
    [coded("HPE_INVALID_CONSTANT"), "protocol_error"],
    [new TypeError("fetch failed", { cause: coded("ECONNREFUSED") }), "connect_refused"],
    [new DeliveryFailure("address_refused", "127.0.0.1=loopback"), "address_refused"],
    [new DeliveryFailure("connect_timeout", "no connection"), "connect_timeout"],
    [new Error("something else"), "delivery_failed"],
    ["a string", "delivery_failed"],
  ])("%s -> %s", (error, errorClass) => {
    expect(deliveryErrorClass(error)).toBe(errorClass);
  });

  it("statuses other than 2xx are classes too", () => {
    expect([200, 204, 301, 404, 429, 500, 503, 99].map(httpStatusClass)).toEqual([
      undefined,
      undefined,
      "http_3xx",
      "http_4xx",
      "http_4xx",
      "http_5xx",
      "http_5xx",
      "protocol_error",
    ]);
  });

  it("an attempt recorded with raw text before classes existed is shown as delivery_failed", () => {
    expect(presentableErrorClass("TypeError: connect ECONNREFUSED 127.0.0.1:18499")).toBe("delivery_failed");
    expect(presentableErrorClass("tls_error")).toBe("tls_error");
    expect(presentableErrorClass(null)).toBeNull();
  });
});

describe("the system lookup", () => {
  it("answers loopback for localhost and *.localhost without asking a DNS server", async () => {
    const lookup = systemLookup();
    for (const name of ["localhost", "LOCALHOST.", "db.localhost"]) expect(await lookup(name)).toEqual(["127.0.0.1", "::1"]);
  });
});
