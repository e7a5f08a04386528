/**
 * Operating a fleet, end to end: the service process (api/server.ts) on a scratch database of the real PostgreSQL
 * server, its stack runs on the real Pulumi CLI through the real run queue, AWS = moto behind the stand-in
 * `pulumi-resource-aws` (test/harness/global-setup.ts), SSM calls moto lacks answered by test/harness/ssm-standin.ts.
 * Every tenant has its own AWS account in moto. A webhook receiver on loopback verifies every signature.
 *
 *   a. FLEET_TENANTS tenants (default 20, as the fleet issue asks; each `up` costs ~1.5 s of CPU on a 2-core machine)
 *      onboarded, each `run.succeeded` delivered signed
 *   b. AGENT_VERSION changed (a platform setting: the service restarted with it), a fleet preview: every tenant
 *      would update its agent config (the parameter and the install document) and nothing else
 *   c. a fleet up with max_concurrency 3: the runs table, sampled, never has more than 3 of its tenant runs at once
 *   d. max_failures 1 and two tenants refused (approval required, no approved plan): the fleet stops and says why
 *   e. a fleet run cancelled midway: queued tenant runs dropped, the running one finishes
 *   f. out-of-band changes in moto (the XDR role's trust policy edited, the agent parameter deleted): a fleet drift
 *      sweep names the resources; auto_remediate brings one tenant back and its next check finds nothing; the other
 *      stays drifted in its answer, its progress, GET /v1/fleet and the operator's tenant list
 *   g. the service restarted in the middle of a fleet run: the coordinator resumes it from the database
 *   h. the receiver down: deliveries retried, the service restarted, none lost
 */
import http from "node:http";
import { randomBytes } from "node:crypto";
import { GetRoleCommand, IAMClient, UpdateAssumeRolePolicyCommand } from "@aws-sdk/client-iam";
import { DeleteParameterCommand, GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, describe, expect, it } from "vitest";
import { verifySignature } from "../../services/notification/webhook-signature-fns";
import { customerAccountCredentials } from "../harness/customer-account";
import { readEventStream } from "../harness/event-stream-reader";
import { serviceUnderTest } from "../harness/service-under-test";
import { newTenantRecord, TERMINAL_RUN_STATUSES, type TenantRecord } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const TENANTS = Number(process.env.FLEET_TENANTS ?? 20);
const REGION = "us-east-1";
const suffix = randomBytes(3).toString("hex");
const tenants = Array.from({ length: TENANTS }, (_, index) =>
  newTenantRecord(`fleet${String(index).padStart(2, "0")}-${suffix}`, { firstAccount: 500_000_000_000 }),
);

// ---------------------------------------------------------------------------------------------------------------
// A webhook receiver on loopback that checks every signature, and can be taken down.

interface Received {
  deliveryId: string;
  event: string;
  body: any;
  signature: ReturnType<typeof verifySignature>;
}
const received: Received[] = [];
let receiverSecret = "";
let receiverPort = 0;
let receiver: http.Server | undefined;

async function startReceiver(): Promise<void> {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const signature = verifySignature(
        req.headers["x-minixdr-signature"] as string | undefined,
        text,
        receiverSecret,
        Math.floor(Date.now() / 1000),
      );
      received.push({
        deliveryId: String(req.headers["x-minixdr-delivery"]),
        event: String(req.headers["x-minixdr-event"]),
        body: JSON.parse(text),
        signature,
      });
      res.writeHead(signature.valid ? 204 : 401).end();
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(receiverPort, "127.0.0.1", resolve));
  receiverPort = (receiver.address() as { port: number }).port;
}

async function stopReceiver(): Promise<void> {
  const closing = receiver;
  receiver = undefined;
  if (!closing) return;
  closing.closeAllConnections();
  await new Promise<void>((resolve) => closing.close(() => resolve()));
}

// ---------------------------------------------------------------------------------------------------------------
// The service

let agentVersion = "1.0.0";
// Registered first, so it runs after the service stopped (after-hooks run in reverse).
afterAll(stopReceiver);
const service = serviceUnderTest({
  name: "fleet",
  workspace: "database-state",
  ssmStandIn: true,
  env: () => ({
    MAX_CONCURRENT_RUNS: "4",
    AGENT_VERSION: agentVersion,
    WEBHOOK_PLATFORM_ALLOW_LOOPBACK: "true",
    WEBHOOK_RETRY_BASE_SECONDS: "0.5",
    WEBHOOK_RETRY_MAX_SECONDS: "2",
    WEBHOOK_MAX_ATTEMPTS: "50",
  }),
  wait: { timeoutMs: 300_000 },
  beforeServerStart: startReceiver,
  // Leave moto clean: destroy every tenant stack that holds resources.
  offboardWhenDone: tenants,
});
const { call, adminToken } = service;

async function restart(): Promise<void> {
  expect(await service.stop()).toBe(0);
  await service.start();
}

const waitFor = waitForWith({ timeoutMs: 600_000 });

async function fleetRun(body: Record<string, unknown>): Promise<any> {
  const created = await call("POST", "/v1/fleet/runs", { body });
  expect(created.status, created.text).toBe(202);
  return created.body;
}

async function finishedFleetRun(id: string): Promise<any> {
  return waitFor(`fleet run ${id}`, async () => {
    const got = await call("GET", `/v1/fleet/runs/${id}`);
    return got.body.status !== "running" ? got.body : undefined;
  });
}

const iamOf = async (t: TenantRecord) => new IAMClient({ region: REGION, credentials: await customerAccountCredentials(t.account) });
const ssmOf = async (t: TenantRecord) => new SSMClient({ region: REGION, credentials: await customerAccountCredentials(t.account) });

describe(`operating a fleet of ${TENANTS} tenants (server process, PostgreSQL, Pulumi CLI, moto)`, () => {
  it("a. onboards the tenants; every run.succeeded reaches a platform-wide webhook, signed", async () => {
    const hook = await call("POST", "/v1/webhooks", {
      body: {
        url: `http://127.0.0.1:${receiverPort}/hooks`,
        events: ["run.succeeded", "run.failed", "drift.detected", "fleet_run.finished", "onboarding.completed", "onboarding.action_required"],
      },
    });
    expect(hook.status, hook.text).toBe(201);
    expect(hook.body.secret).toMatch(/^whsec_/);
    receiverSecret = hook.body.secret;
    // The secret is shown once, and stored sealed.
    expect((await call("GET", "/v1/webhooks")).text).not.toContain(receiverSecret);
    expect(JSON.stringify(await service.sql`select * from webhooks`)).not.toContain(receiverSecret);
    // Plain http to anything but loopback is refused, naming the field.
    const refused = await call("POST", "/v1/webhooks", { body: { url: "http://hooks.example.com/x", events: ["run.failed"] } });
    expect(refused.status).toBe(400);
    expect(refused.body.error.fields[0].field).toBe("url");

    const runIds: string[] = [];
    for (const t of tenants) {
      await service.onboard(t, { regions: [REGION], body: { onboarding_flow_version: "legacy" } });
      const up = await call("POST", `/v1/tenants/${t.slug}/runs`, { body: { kind: "up" } });
      expect(up.status, up.text).toBe(202);
      runIds.push(up.body.run_id);
    }
    await waitFor("every up", async () => {
      const rows = await service.sql`select status from runs where id in ${service.sql(runIds)}`;
      return rows.every((row) => TERMINAL_RUN_STATUSES.includes(row.status));
    });
    const failed = await service.sql`select id, error from runs where id in ${service.sql(runIds)} and status <> 'succeeded'`;
    expect(failed).toEqual([]);
    const statuses = await waitFor("onboarding to settle", async () => {
      const rows = await service.sql<{ onboarding_status: string }[]>`select onboarding_status from organizations`;
      return rows.every((row) => !["provisioning", "discovering"].includes(row.onboarding_status))
        ? rows.map((row) => row.onboarding_status)
        : undefined;
    });
    for (const status of statuses) expect(["deploying", "validating", "completed"]).toContain(status);

    await waitFor("a run.succeeded per up", async () => received.filter((r) => r.event === "run.succeeded").length >= TENANTS);
    expect(received.every((r) => r.signature.valid)).toBe(true);
    expect(new Set(received.filter((r) => r.event === "run.succeeded").map((r) => r.body.data.run_id))).toEqual(new Set(runIds));
  });

  it("b (after a). a fleet preview of an agent version change: every tenant updates its agent config and nothing else", async () => {
    agentVersion = "1.1.0";
    await restart();
    const created = await fleetRun({ kind: "preview", tenants: { all: true }, max_concurrency: 3, max_failures: 0 });
    expect(created).toMatchObject({ kind: "preview", status: "running", max_concurrency: 3 });
    const stream = await readEventStream(`${service.server.baseUrl}/v1/fleet/runs/${created.id}/events`, { token: adminToken, timeoutMs: 600_000 });
    expect(stream.status).toBe(200);
    const progress = stream.events.filter((event) => event.event === "progress").map((event) => JSON.parse(event.data));
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.at(-1).status).toBe("succeeded");
    expect(stream.events.at(-1)).toMatchObject({ event: "end" });

    const fleet = (await call("GET", `/v1/fleet/runs/${created.id}`)).body;
    expect(fleet.status).toBe("succeeded");
    expect(fleet.counts).toEqual({ succeeded: TENANTS });
    expect(fleet.changing_tenants.sort()).toEqual(tenants.map((t) => t.slug).sort());
    for (const row of fleet.tenant_runs) {
      // The agent config: the parameter holding the version, the install document defaulting to it, and the
      // association running that document; only updates, nothing of IAM, nothing created, replaced or deleted.
      expect(row.changes.map((change: any) => `${change.op} ${change.type}`).sort()).toEqual([
        "update aws:ssm/association:Association",
        "update aws:ssm/document:Document",
        "update aws:ssm/parameter:Parameter",
      ]);
      for (const change of row.changes) expect(change.urn).toContain(`${row.slug}-agent-`);
      // Which properties: the stand-in provider cannot say (the Node.js provider SDK's DiffResult carries no property
      // list), so `diffs` stays empty here; with the real AWS provider it names them.
    }
    expect(fleet.change_summary.update).toBe(3 * TENANTS);
    expect(fleet.change_summary_text).toBe(`update ${3 * TENANTS}, same ${fleet.change_summary.same}`);
    // Delivered by the webhook queue, a moment after the fleet run finished.
    const finished = await waitFor("fleet_run.finished", async () =>
      received.find((r) => r.event === "fleet_run.finished" && r.body.data.fleet_run_id === created.id),
    );
    expect(finished.body.data).toMatchObject({ status: "succeeded", change_summary_text: fleet.change_summary_text, failed_tenants: [] });
  });

  it("c (after a, b). a fleet up with max_concurrency 3 never has more than 3 tenant runs at once", async () => {
    const created = await fleetRun({ kind: "up", tenants: { all: true }, max_concurrency: 3, max_failures: 0 });
    let peakActive = 0;
    let peakRunning = 0;
    let samples = 0;
    for (;;) {
      const [row] = await service.sql`
        select count(*) filter (where status in ('queued', 'running'))::int as active, count(*) filter (where status = 'running')::int as running
        from runs where fleet_run_id = ${created.id}`;
      peakActive = Math.max(peakActive, row!.active);
      peakRunning = Math.max(peakRunning, row!.running);
      samples++;
      const [fleet] = await service.sql`select status from fleet_runs where id = ${created.id}`;
      if (fleet!.status !== "running") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(samples).toBeGreaterThan(10);
    expect(peakActive).toBe(3);
    expect(peakRunning).toBeLessThanOrEqual(3);
    const fleet = await finishedFleetRun(created.id);
    expect(fleet.status).toBe("succeeded");
    expect(fleet.change_summary.update).toBe(3 * TENANTS);
    console.log(`fleet up: ${fleet.change_summary_text}; peak ${peakRunning} running, ${peakActive} queued or running (${samples} samples)`);
  });

  it("d (after a). max_failures 1 with two tenants refused: the fleet stops, says why, and starts nothing more", async () => {
    const [first, second] = tenants;
    for (const t of [first!, second!]) {
      const patched = await call("PATCH", `/v1/tenants/${t.slug}`, { body: { integration_settings: { require_approval: true } } });
      expect(patched.status, patched.text).toBe(200);
    }
    const created = await fleetRun({ kind: "up", tenants: { all: true }, max_concurrency: 3, max_failures: 1 });
    const fleet = await finishedFleetRun(created.id);
    expect(fleet.status).toBe("stopped");
    expect(fleet.stop_reason).toMatch(/2 tenant run\(s\) failed, more than max_failures 1/);
    const bySlug = new Map(fleet.tenant_runs.map((row: any) => [row.slug, row]));
    for (const t of [first!, second!])
      expect(bySlug.get(t.slug)).toMatchObject({ status: "failed", reason: expect.stringMatching(/requires approval/) });
    for (const row of fleet.tenant_runs.filter((row: any) => ![first!.slug, second!.slug].includes(row.slug))) {
      expect(row).toMatchObject({ status: "not_started", run_id: null, reason: fleet.stop_reason });
    }
    const [started] = await service.sql`select count(*)::int as n from runs where fleet_run_id = ${created.id}`;
    expect(started!.n).toBe(0);
    for (const t of [first!, second!]) await call("PATCH", `/v1/tenants/${t.slug}`, { body: { integration_settings: { require_approval: null } } });
  });

  it("e (after a). a fleet run cancelled midway: queued tenant runs dropped, the running one finishes", async () => {
    const created = await fleetRun({ kind: "preview", tenants: { all: true }, max_concurrency: 2, max_failures: 0 });
    const doneAtCancel = await waitFor("a tenant preview to finish", async () => {
      const [row] = await service.sql`select count(*)::int as n from runs where fleet_run_id = ${created.id} and status = 'succeeded'`;
      return row!.n >= 1 ? row!.n : undefined;
    });
    const cancelled = await call("POST", `/v1/fleet/runs/${created.id}/cancel`);
    expect(cancelled.status, cancelled.text).toBe(202);
    const fleet = await finishedFleetRun(created.id);
    expect(fleet.status).toBe("cancelled");
    expect(fleet.stop_reason).toBe("cancelled");
    const succeeded = fleet.tenant_runs.filter((row: any) => row.status === "succeeded");
    const dropped = fleet.tenant_runs.filter((row: any) => row.status === "dropped");
    expect(succeeded.length).toBeGreaterThanOrEqual(1);
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    expect(succeeded.length + dropped.length).toBe(TENANTS);
    // No tenant run of it is left queued or running; only those running at the cancel (at most max_concurrency) finished.
    const runs = await service.sql`select status from runs where fleet_run_id = ${created.id}`;
    expect(runs.every((run) => ["succeeded", "cancelled"].includes(run.status))).toBe(true);
    expect(succeeded.length).toBeLessThanOrEqual(doneAtCancel + 2);
    const again = await call("POST", `/v1/fleet/runs/${created.id}/cancel`);
    expect(again.status).toBe(409);
  });

  it("f (after a). out-of-band changes are found as drift, remediated where asked, and the next check finds nothing", async () => {
    const [fixed, left] = [tenants[2]!, tenants[3]!];
    const patched = await call("PATCH", `/v1/tenants/${fixed.slug}`, { body: { integration_settings: { auto_remediate: true } } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body.integration_settings.auto_remediate).toBe(true);
    const originals = new Map<string, string>();
    for (const t of [fixed, left]) {
      const iam = await iamOf(t);
      const role = `MiniXdrAccess-${t.slug}`;
      const original = decodeURIComponent((await iam.send(new GetRoleCommand({ RoleName: role }))).Role!.AssumeRolePolicyDocument!);
      originals.set(t.slug, original);
      const edited = JSON.parse(original);
      edited.Statement[0].Condition = { StringEquals: { "sts:ExternalId": "edited-by-hand" } };
      await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: role, PolicyDocument: JSON.stringify(edited) }));
      await (await ssmOf(t)).send(new DeleteParameterCommand({ Name: `/mini-xdr/${t.slug}/agent-config` }));
    }

    const sweep = await fleetRun({ kind: "drift", tenants: { all: true }, max_concurrency: 3, max_failures: 0 });
    const fleet = await finishedFleetRun(sweep.id);
    expect(fleet.status).toBe("succeeded");
    expect(fleet.drifted_tenants.sort()).toEqual([fixed.slug, left.slug].sort());
    for (const slug of [fixed.slug, left.slug]) {
      const row = fleet.tenant_runs.find((candidate: any) => candidate.slug === slug);
      expect(row.drift).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            type: "aws:iam/role:Role",
            op: "update",
            properties: ["assumeRolePolicy"],
            urn: expect.stringContaining(`${slug}-access-role`),
          }),
          expect.objectContaining({
            type: "aws:ssm/parameter:Parameter",
            op: "delete",
            urn: expect.stringContaining(`${slug}-agent-config-${REGION}`),
          }),
        ]),
      );
      expect(row.drift).toHaveLength(2);
      // A drift check changes nothing: the parameter is still gone.
    }
    const leftAnswer = (await call("GET", `/v1/tenants/${left.slug}`)).body;
    expect(leftAnswer.drift).toMatchObject({ status: "drifted", resources: expect.any(Array), remediation_run_id: null });
    await expect((await ssmOf(left)).send(new GetParameterCommand({ Name: `/mini-xdr/${left.slug}/agent-config` }))).rejects.toThrow();
    expect((await call("GET", `/v1/tenants/${left.slug}/progress`)).body.drift).toMatchObject({ status: "drifted" });
    const kpis = (await call("GET", "/v1/kpis")).body;
    expect(kpis.tenants.find((row: any) => row.slug === left.slug).drifted).toBe(true);
    const overview = (await call("GET", "/v1/fleet")).body;
    expect(overview.drifted).toBeGreaterThanOrEqual(1);
    expect(overview.tenants_total).toBe(TENANTS);
    expect(overview.kpis).toHaveProperty("completion_rate");

    // auto_remediate: an up with refresh linked to the drift run, then the next check finds nothing.
    const inSync = await waitFor("the remediated tenant to be in sync", async () => {
      const answer = (await call("GET", `/v1/tenants/${fixed.slug}`)).body;
      return answer.drift.status === "in_sync" ? answer : undefined;
    });
    const runs = (await call("GET", `/v1/tenants/${fixed.slug}/runs?limit=10`)).body.runs;
    const driftRun = runs.find((run: any) => run.kind === "drift" && run.fleet_run_id === sweep.id);
    const remediation = runs.find((run: any) => run.kind === "up" && run.remediates_run_id === driftRun.id);
    expect(remediation).toMatchObject({ status: "succeeded" });
    const check = runs.find((run: any) => run.kind === "drift" && run.id === inSync.drift.run_id);
    expect(check).toMatchObject({ status: "succeeded", drift: [] });
    expect(new Date(check.requested_at).getTime()).toBeGreaterThan(new Date(remediation.finished_at).getTime() - 1000);
    const iam = await iamOf(fixed);
    const restored = decodeURIComponent(
      (await iam.send(new GetRoleCommand({ RoleName: `MiniXdrAccess-${fixed.slug}` }))).Role!.AssumeRolePolicyDocument!,
    );
    expect(JSON.parse(restored)).toEqual(JSON.parse(originals.get(fixed.slug)!));
    expect((await (await ssmOf(fixed)).send(new GetParameterCommand({ Name: `/mini-xdr/${fixed.slug}/agent-config` }))).Parameter).toBeDefined();

    const detected = await waitFor("drift.detected for both", async () => {
      const tenantsTold = received.filter((r) => r.event === "drift.detected").map((r) => r.body.tenant);
      return tenantsTold.length >= 2 ? tenantsTold : undefined;
    });
    expect(detected.sort()).toEqual([fixed.slug, left.slug].sort());
  });

  it("g (after a). a service restart midway: the coordinator resumes the fleet run from the database", async () => {
    const created = await fleetRun({ kind: "preview", tenants: { all: true }, max_concurrency: 2, max_failures: TENANTS });
    await waitFor("two tenant previews to finish", async () => {
      const [row] = await service.sql`select count(*)::int as n from runs where fleet_run_id = ${created.id} and status = 'succeeded'`;
      return row!.n >= 2;
    });
    await restart();
    const restartedAt = new Date();
    const fleet = await finishedFleetRun(created.id);
    // A preview cut short by the shutdown is marked interrupted by recovery (never run twice); every other tenant ran.
    expect(["succeeded", "failed"]).toContain(fleet.status);
    expect(fleet.tenant_runs.every((row: any) => ["succeeded", "interrupted"].includes(row.status))).toBe(true);
    expect(fleet.tenant_runs.filter((row: any) => row.status === "interrupted").length).toBeLessThanOrEqual(2);
    const after = await service.sql`select count(*)::int as n from runs where fleet_run_id = ${created.id} and started_at > ${restartedAt}`;
    expect(after[0]!.n).toBeGreaterThan(0);
  });

  it("h (after a). with the receiver down, deliveries are retried and none is lost across a service restart", async () => {
    const hooks = (await call("GET", "/v1/webhooks")).body.webhooks;
    expect(hooks).toHaveLength(1);
    await stopReceiver();
    const before = received.length;
    const created = await fleetRun({
      kind: "refresh",
      tenants: { slugs: [tenants[0]!.slug, tenants[1]!.slug] },
      max_concurrency: 2,
      max_failures: 0,
    });
    await finishedFleetRun(created.id);
    // Each undelivered event has failed at least twice (connection refused), recorded attempt by attempt as an error class.
    const failing = await waitFor("retried deliveries", async () => {
      const deliveries = (await call("GET", `/v1/webhooks/${hooks[0].id}/deliveries?limit=500`)).body.deliveries;
      const pending = deliveries.filter((delivery: any) => delivery.status === "pending");
      return pending.length >= 3 && pending.every((delivery: any) => delivery.attempt_log.length >= 2) ? pending : undefined;
    });
    for (const delivery of failing) {
      expect(delivery.attempt_log[0]).toMatchObject({ attempt: 1, status_code: null, error: "connect_refused" });
    }
    expect(received.length).toBe(before);

    await restart();
    await startReceiver();
    await waitFor("every delivery delivered", async () => {
      const [row] = await service.sql`select count(*) filter (where status <> 'delivered')::int as open from webhook_deliveries`;
      return row!.open === 0;
    });
    const delivered = await service.sql`select id from webhook_deliveries`;
    const receivedIds = new Set(received.filter((r) => r.signature.valid).map((r) => r.deliveryId));
    for (const row of delivered) expect(receivedIds.has(row.id)).toBe(true);
    for (const delivery of failing) expect(receivedIds.has(delivery.id)).toBe(true);
    expect(received.every((r) => r.signature.valid)).toBe(true);
    expect(received.some((r) => r.event === "fleet_run.finished" && r.body.data.fleet_run_id === created.id)).toBe(true);
  });
});
