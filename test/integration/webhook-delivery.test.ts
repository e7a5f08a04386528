/**
 * Webhook delivery on real PostgreSQL and pg-boss, to real receivers on loopback: the service (registration) and the
 * dispatcher (delivery) run in this process with a stand-in resolver, so names resolve without the network. Tenants'
 * webhooks may reach only public addresses, so a stand-in public internet lives at 127.8.0.0/16: the classifier
 * given to the service and the dispatcher counts those addresses as public, and every other address as the real
 * classifier does (127.0.0.1 stays loopback). Platform webhooks reach 127.0.0.1 as the operator's setting allows.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq, isNull } from "drizzle-orm";
import type { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { createKeyring, encryptJson } from "../../db/crypto";
import { organizations, webhookDeliveries, webhookDeliveryAttempts, webhooks, type Organization } from "../../db/schema";
import { startBoss } from "../../db/boss";
import { ConflictError, UnprocessableError } from "../../lib/errors";
import { emitNotification } from "../../services/core/notification-events";
import { classifyAddress, type ClassifiedAddress } from "../../services/notification/webhook-address-fns";
import { startWebhookDispatcher, type WebhookDispatcher } from "../../services/notification/webhook-delivery";
import { createWebhookService, webhookSecretContext } from "../../services/notification/webhook-service";
import { SIGNATURE_HEADER, verifySignature } from "../../services/notification/webhook-signature-fns";
import type { HostLookup } from "../../services/notification/webhook-transport";
import type { Principal } from "../../services/core/principal";
import { selfSignedCertificate } from "../harness/https-server";
import { waitFor } from "../harness/wait-for";
import { realPostgres } from "../harness/databases";

const keyring = createKeyring({ key: randomBytes(32).toString("base64") });
const admin: Principal = { tokenId: 1, tokenName: "admin", scope: "platform_admin", organizationId: null, actor: "test:admin" };
const tenantPrincipal = (org: Organization): Principal => ({
  tokenId: 2,
  tokenName: org.slug,
  scope: "tenant",
  organizationId: org.id,
  actor: `test:${org.slug}`,
});

/** The stand-in public internet. */
const PUBLIC = "127.8.0.1";
const standInClassify = (address: string): ClassifiedAddress | undefined =>
  address.startsWith("127.8.") ? { address, family: 4, range: "public" } : classifyAddress(address);

/** Each name's answers in turn (the last one repeats); `localhost` as the system has it; anything else does not exist. */
const dnsAnswers = new Map<string, string[][]>();
const lookups: string[] = [];
const lookup: HostLookup = async (hostname) => {
  lookups.push(hostname);
  if (hostname === "localhost") return ["127.0.0.1", "::1"];
  const answers = dnsAnswers.get(hostname);
  if (!answers) throw Object.assign(new Error(`${hostname} does not resolve`), { code: "ENOTFOUND" });
  return answers.length > 1 ? answers.shift()! : answers[0]!;
};

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  port: number;
  received: Received[];
  close(): Promise<void>;
}

/** An http(s) receiver on `host`; answers `status(n)` to its n-th request (0-based), 204 by default. */
async function startReceiver(
  host: string,
  options: { tls?: { key: Buffer; cert: Buffer }; port?: number; status?: (n: number) => number } = {},
): Promise<Receiver> {
  const received: Received[] = [];
  const handler: http.RequestListener = (request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      received.push({ path: request.url ?? "", headers: request.headers, body });
      response.writeHead(options.status?.(received.length - 1) ?? 204).end();
    });
  };
  const server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Accepts connections and never answers. */
async function startBlackHole(host: string) {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

let database: Database;
let cleanup: () => Promise<void>;
let boss: PgBoss;
let dispatcher: WebhookDispatcher;
let certDir: string;
let tls: { key: Buffer; cert: Buffer };
const logLines: string[] = [];
const closers: (() => Promise<void>)[] = [];

const service = (overrides: { platformLoopback?: boolean; maxPerTenant?: number } = {}) =>
  createWebhookService({ db: database.db, keyring, platformLoopback: true, maxPerTenant: 10, lookup, classify: standInClassify, ...overrides });

async function newTenant(): Promise<Organization> {
  const slug = `hooks-${randomBytes(4).toString("hex")}`;
  const [org] = await database.db.insert(organizations).values({ slug, name: slug }).returning();
  return org!;
}

async function attemptsOf(webhookId: string) {
  return database.db
    .select({
      attempt: webhookDeliveryAttempts.attempt,
      error: webhookDeliveryAttempts.error,
      statusCode: webhookDeliveryAttempts.statusCode,
      status: webhookDeliveries.status,
    })
    .from(webhookDeliveryAttempts)
    .innerJoin(webhookDeliveries, eq(webhookDeliveries.id, webhookDeliveryAttempts.deliveryId))
    .where(eq(webhookDeliveries.webhookId, webhookId))
    .orderBy(webhookDeliveryAttempts.attempt);
}

async function refusal(promise: Promise<unknown>): Promise<{ field: string; message: string }[]> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  // Well formed (the API's schema passes it), refused by where it leads: 422, code webhook_url_not_allowed.
  expect(error).toBeInstanceOf(UnprocessableError);
  expect((error as UnprocessableError).code).toBe("webhook_url_not_allowed");
  return (error as UnprocessableError).fields ?? [];
}

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  boss = await startBoss(database.connectionString);
  certDir = await mkdtemp(join(tmpdir(), "mxdr-hooks-"));
  const { keyFile, certFile } = await selfSignedCertificate(certDir, ["rebind.test", "victim.test", "public.test"]);
  tls = { key: await readFile(keyFile), cert: await readFile(certFile) };
  dispatcher = await startWebhookDispatcher(
    boss,
    { db: database.db, keyring, log: (line) => logLines.push(line), lookup, classify: standInClassify, ca: [tls.cert.toString()] },
    {
      work: true,
      platformLoopback: true,
      maxAttempts: 2,
      baseDelaySeconds: 0.2,
      maxDelaySeconds: 0.5,
      sweepMs: 200,
      // Longer than any test waits: a black hole must never time out while the other tenant is being served.
      timeoutMs: 120_000,
      connectTimeoutMs: 5_000,
      concurrency: 8,
      perHostConcurrency: 2,
      perTenantConcurrency: 3,
    },
  );
});

afterAll(async () => {
  for (const close of closers) await close();
  await dispatcher?.stop();
  await boss?.stop({ graceful: false });
  await cleanup?.();
  if (certDir) await rm(certDir, { recursive: true, force: true });
});

describe("webhook delivery: addresses, pinning, error classes, concurrency, the cap", () => {
  it("a platform webhook with WEBHOOK_PLATFORM_ALLOW_LOOPBACK reaches a loopback receiver; a tenant's is refused at registration, and at delivery when stored before the check", async () => {
    const receiver = await startReceiver("127.0.0.1");
    closers.push(receiver.close);
    const tenant = await newTenant();

    const platformHook = await service().create(admin, undefined, {
      url: `http://127.0.0.1:${receiver.port}/platform`,
      events: ["fleet_run.finished"],
    });
    for (const url of [
      `http://127.0.0.1:${receiver.port}/t`,
      `https://127.0.0.1:${receiver.port}/t`,
      `https://localhost:${receiver.port}/t`,
      `https://[::1]:${receiver.port}/t`,
    ]) {
      expect(await refusal(service().create(admin, tenant, { url, events: ["run.failed"] })), url).toEqual([
        { field: "url", message: expect.any(String) },
      ]);
    }
    // Without the setting, not even a platform webhook reaches loopback.
    expect(
      await refusal(
        service({ platformLoopback: false }).create(admin, undefined, { url: `http://127.0.0.1:${receiver.port}/p`, events: ["run.failed"] }),
      ),
    ).toEqual([{ field: "url", message: "must be https" }]);

    // A tenant's webhook stored before registration checked addresses: refused at delivery, the receiver never sees it.
    const sealed = encryptJson("whsec_legacy", webhookSecretContext(tenant.id), keyring);
    const [legacy] = await database.db
      .insert(webhooks)
      .values({
        organizationId: tenant.id,
        url: `http://127.0.0.1:${receiver.port}/legacy`,
        events: ["run.failed"],
        secretSealed: sealed.envelope,
        encryptionKeyId: sealed.keyId,
        actor: "before-the-fix",
      })
      .returning();

    await emitNotification(database.db, { type: "fleet_run.finished", organizationId: null, data: { fleet_run_id: "f1" } });
    await emitNotification(database.db, { type: "run.failed", organizationId: tenant.id, data: { run_id: "r1" } });

    await waitFor("the platform delivery", async () => receiver.received.find((request) => request.path === "/platform"), { timeoutMs: 60_000 });
    const request = receiver.received.find((entry) => entry.path === "/platform")!;
    const signature = verifySignature(
      request.headers[SIGNATURE_HEADER.toLowerCase()] as string,
      request.body,
      platformHook.secret,
      Math.floor(Date.now() / 1000),
    );
    expect(signature.valid).toBe(true);

    const legacyAttempts = await waitFor("the legacy webhook's attempts", async () => {
      const attempts = await attemptsOf(legacy!.id);
      return attempts.length === 2 ? attempts : undefined;
    });
    expect(legacyAttempts.map((attempt) => [attempt.error, attempt.status])).toEqual([
      ["address_refused", "failed"],
      ["address_refused", "failed"],
    ]);
    expect(receiver.received.map((entry) => entry.path)).toEqual(["/platform"]);
    await service().remove(admin, undefined, platformHook.webhook.id);
  });

  it("DNS rebinding: the connection goes to the address that was checked, and the next attempt checks again and refuses 127.0.0.1", async () => {
    const tenant = await newTenant();
    const publicReceiver = await startReceiver(PUBLIC, { tls, status: () => 503 });
    // The platform's own service on the same port of 127.0.0.1: a rebinding attack's target.
    const internal = await startReceiver("127.0.0.1", { tls, port: publicReceiver.port });
    closers.push(publicReceiver.close, internal.close);
    dnsAnswers.set("rebind.test", [[PUBLIC], [PUBLIC], ["127.0.0.1"]]);

    // Registration resolves once (public), the first attempt once (public), the second once (127.0.0.1).
    const hook = await service().create(tenantPrincipal(tenant), tenant, {
      url: `https://rebind.test:${publicReceiver.port}/hook`,
      events: ["run.failed"],
    });
    const before = lookups.filter((name) => name === "rebind.test").length;
    await emitNotification(database.db, { type: "run.failed", organizationId: tenant.id, data: { run_id: "r2" } });

    const attempts = await waitFor("both attempts", async () => {
      const rows = await attemptsOf(hook.webhook.id);
      return rows.length === 2 ? rows : undefined;
    });
    expect(attempts.map((attempt) => [attempt.statusCode, attempt.error])).toEqual([
      [503, "http_5xx"],
      [null, "address_refused"],
    ]);
    expect(publicReceiver.received).toHaveLength(1);
    expect(publicReceiver.received[0]!.headers.host).toBe(`rebind.test:${publicReceiver.port}`);
    expect(internal.received).toHaveLength(0);
    // Exactly one resolution per attempt: the socket never asked DNS again.
    expect(lookups.filter((name) => name === "rebind.test").length - before).toBe(2);
    expect(logLines.join("\n")).toMatch(/address_refused: .*127\.0\.0\.1=loopback/);
  });

  it("five black-hole receivers of one tenant do not delay another tenant's delivery; the tenant holds at most its share of attempts", async () => {
    const mallory = await newTenant();
    const victim = await newTenant();
    const holes = await Promise.all(Array.from({ length: 5 }, () => startBlackHole(PUBLIC)));
    const victimReceiver = await startReceiver(PUBLIC, { tls });
    closers.push(victimReceiver.close);
    const hooks: Awaited<ReturnType<ReturnType<typeof service>["create"]>>[] = [];
    for (const [index, hole] of holes.entries()) {
      dnsAnswers.set(`hole-${index}.test`, [[PUBLIC]]);
      hooks.push(
        await service().create(tenantPrincipal(mallory), mallory, { url: `https://hole-${index}.test:${hole.port}/`, events: ["run.failed"] }),
      );
    }
    dnsAnswers.set("victim.test", [[PUBLIC]]);
    await service().create(tenantPrincipal(victim), victim, { url: `https://victim.test:${victimReceiver.port}/hook`, events: ["run.failed"] });

    await emitNotification(database.db, { type: "run.failed", organizationId: mallory.id, data: { run_id: "m1" } });
    const accepted = () => holes.reduce((sum, hole) => sum + hole.accepted(), 0);
    await waitFor("three black holes (the tenant's share) holding a connection", async () => accepted() === 3, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    await emitNotification(database.db, { type: "run.failed", organizationId: victim.id, data: { run_id: "v1" } });
    await waitFor("the victim's delivery", async () => victimReceiver.received[0], { timeoutMs: 60_000, intervalMs: 100 });

    // The victim was served while mallory's attempts were still hanging (none had to end first), and she never had
    // more than her three.
    expect(holes.reduce((sum, hole) => sum + hole.open(), 0)).toBe(3);
    expect(accepted()).toBe(3);
    for (const hook of hooks) expect(await attemptsOf(hook.webhook.id)).toEqual([]);

    for (const hole of holes) await hole.close();
    const ended = await waitFor("mallory's attempts to end once the holes close", async () => {
      const rows = await Promise.all(hooks.map((hook) => attemptsOf(hook.webhook.id)));
      return rows.every((attempts) => attempts.length >= 1) ? rows : undefined;
    });
    // What mallory sees is a class, never the error's text.
    for (const attempts of ended) expect(["connection_reset", "connect_refused", "tls_error"]).toContain(attempts[0]!.error);
  });

  it("tenants see error classes, never error texts; the text goes to the log", async () => {
    const plain = await startReceiver("127.0.0.1");
    closers.push(plain.close);
    const closed = await startReceiver("127.0.0.1");
    await closed.close();
    const hooks = {
      connect_refused: await service().create(admin, undefined, { url: `http://127.0.0.1:${closed.port}/`, events: ["fleet_run.finished"] }),
      tls_error: await service().create(admin, undefined, { url: `https://127.0.0.1:${plain.port}/`, events: ["fleet_run.finished"] }),
    };
    await emitNotification(database.db, { type: "fleet_run.finished", organizationId: null, data: {} });
    for (const [errorClass, hook] of Object.entries(hooks)) {
      const attempts = await waitFor(`${errorClass} attempts`, async () => {
        const rows = await attemptsOf(hook.webhook.id);
        return rows.length === 2 ? rows : undefined;
      });
      expect(attempts.map((attempt) => attempt.error)).toEqual([errorClass, errorClass]);
      const { deliveries } = await service().deliveries(admin, hook.webhook.id, 10);
      expect(JSON.stringify(deliveries)).not.toMatch(/ECONNREFUSED|SSL|EPROTO|127\.0\.0\.1/);
      await service().remove(admin, undefined, hook.webhook.id);
    }
    const log = logLines.join("\n");
    expect(log).toMatch(new RegExp(`connect_refused: .*ECONNREFUSED 127\\.0\\.0\\.1:${closed.port}`));
    expect(log).toMatch(/tls_error: .*(EPROTO|SSL)/);
  });

  it("a tenant has at most WEBHOOK_MAX_PER_TENANT webhooks, also when it creates them all at once; deleting one frees a place", async () => {
    const tenant = await newTenant();
    dnsAnswers.set("public.test", [[PUBLIC]]);
    const capped = service({ maxPerTenant: 2 });
    const create = () => capped.create(tenantPrincipal(tenant), tenant, { url: "https://public.test/hook", events: ["fleet_run.finished"] });
    const results = await Promise.allSettled(Array.from({ length: 5 }, create));
    expect(results.filter((result) => result.status === "fulfilled")).toHaveLength(2);
    for (const result of results.filter((entry) => entry.status === "rejected")) {
      expect(result.reason).toBeInstanceOf(ConflictError);
      expect(result.reason).toMatchObject({ code: "webhook_limit_reached", details: { limit: 2 } });
    }
    const live = await database.db
      .select()
      .from(webhooks)
      .where(and(eq(webhooks.organizationId, tenant.id), isNull(webhooks.deletedAt)));
    expect(live).toHaveLength(2);
    await capped.remove(tenantPrincipal(tenant), tenant, live[0]!.id);
    expect((await create()).webhook.organizationId).toBe(tenant.id);
    // Platform webhooks are not counted against any tenant.
    expect(
      (await capped.create(admin, undefined, { url: "https://public.test/platform", events: ["fleet_run.finished"] })).webhook.organizationId,
    ).toBeNull();
  });
});
