/**
 * Two service replicas that share nothing but PostgreSQL: two api/server.ts processes on one scratch database, each
 * with its own empty DATA_DIR and project dir, the Pulumi state in the service's default postgres:// backend next to
 * that database, the same credentials key and passphrase from the environment. AWS is moto behind the stand-in
 * provider, reached through a loopback proxy of this test that can hold calls (so an `up` can be caught mid-flight).
 *
 *   a. each has its own DATA_DIR and project dir; the database (and the state backend in its server) is all they share
 *   b. ups of several tenants requested through both replicas: every run executes exactly once (one `run.started`
 *      line over both replicas' logs, one update in each stack's history), on both replicas
 *   c. a run's SSE stream is the same from either replica
 *   d. the replica executing an `up` is SIGKILLed mid-run; THE OTHER, still running and never restarted, finds the
 *      run in its periodic sweep (RECOVERY_SWEEP_SECONDS), marks it interrupted, clears the lock and the pending
 *      operations; no row is lost; the next `up` through the survivor succeeds
 *   e. a tenant that requires approval: the survivor saves the preview's plan; a new replica, started with its own empty
 *      project dir once the survivor has stopped, applies it (the stack's secrets manager comes from the checkpoint)
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { readEventStream } from "../harness/event-stream-reader";
import { pulumiCli, pulumiProcessesOf, stackHistoryLength } from "../harness/pulumi-cli";
import { stopServer } from "../harness/service-process";
import { serviceUnderTest, type Replica } from "../harness/service-under-test";
import type { ServiceWorkspace } from "../harness/service-workspace";
import { newTenantRecord } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const suffix = randomBytes(3).toString("hex");
const WAIT = { timeoutMs: 240_000, retryErrors: true };
const waitFor = waitForWith(WAIT);

const service = serviceUnderTest({
  name: "replicas",
  workspace: "database-state",
  holdingProxy: true,
  startAtSetUp: false,
  env: { MAX_CONCURRENT_RUNS: "2", RECOVERY_SWEEP_SECONDS: "2" },
  wait: WAIT,
  setUp: async () => {
    // One after the other: the first applies the migrations.
    await service.startReplica("A");
    await service.startReplica("B");
  },
});
const { replicas } = service;

/** The JSON log lines of a replica (stderr), parsed. */
function logLines(replica: Replica): Record<string, unknown>[] {
  return replica.server
    .stderr()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const startedBy = (replica: Replica, runId: string) =>
  logLines(replica).filter((line) => line.event === "run.started" && line.runId === runId).length;

async function onboardTenant(via: Replica, prefix: string, { requireApproval = false } = {}): Promise<{ slug: string; account: string }> {
  const tenant = newTenantRecord(`${prefix}-${suffix}`);
  await via.onboard(tenant, { settings: { require_approval: requireApproval } });
  return { slug: tenant.slug, account: tenant.account };
}

describe("two replicas on one PostgreSQL, nothing else shared", () => {
  const tenants: { slug: string; runId: string; via: Replica }[] = [];

  it("a. each replica has its own empty DATA_DIR and project dir; the database is the only thing they share", () => {
    const [a, b] = replicas as [Replica, Replica];
    expect(a.workspace.dataDir).not.toBe(b.workspace.dataDir);
    expect(a.workspace.projectDir).not.toBe(b.workspace.projectDir);
    expect(a.workspace.backendUrl).toBe(b.workspace.backendUrl);
    expect(a.workspace.backendUrl).toMatch(/^postgres:\/\//);
  });

  it("b. ups of four tenants requested through both replicas: each executes exactly once, on both replicas", async () => {
    const [a, b] = replicas as [Replica, Replica];
    for (const [index, via] of [a, b, a, b].entries()) {
      const { slug } = await onboardTenant(via, `rep${index}`);
      const up = await via.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
      expect(up.status, up.text).toBe(202);
      tenants.push({ slug, runId: up.body.run_id, via });
    }
    for (const { slug, runId, via } of tenants) {
      // Read through the other replica: either answers for any run.
      const run = await (via === a ? b : a).settledRun(slug, runId);
      expect(run.error).toBeNull();
      expect(run.status).toBe("succeeded");
    }
    for (const { slug, runId } of tenants) {
      expect(startedBy(a, runId) + startedBy(b, runId), runId).toBe(1);
      expect(await stackHistoryLength(a.workspace, `tenant-${slug}`)).toBe(1);
      const [row] = await service.sql<{ n: number }[]>`select count(*)::int as n from runs where stack_name = ${`tenant-${slug}`}`;
      expect(row!.n).toBe(1);
    }
    // The work spread: each replica executed at least one of them.
    expect(tenants.filter(({ runId }) => startedBy(a, runId) === 1).length).toBeGreaterThan(0);
    expect(tenants.filter(({ runId }) => startedBy(b, runId) === 1).length).toBeGreaterThan(0);
  });

  it("c (after b). a run's event stream is served by either replica, the same events in the same order", async () => {
    const [a, b] = replicas as [Replica, Replica];
    const { slug, runId } = tenants[0]!;
    const [fromA, fromB] = await Promise.all(
      [a, b].map((replica) => readEventStream(`${replica.server.baseUrl}/v1/tenants/${slug}/runs/${runId}/events`, { token: service.adminToken })),
    );
    for (const stream of [fromA!, fromB!]) {
      expect(stream.status).toBe(200);
      expect(stream.events.at(-1)).toMatchObject({ event: "end" });
    }
    const engine = (stream: typeof fromA) => stream!.events.filter((event) => event.event === "engine").map((event) => [event.id, event.data]);
    expect(engine(fromA).length).toBeGreaterThan(10);
    expect(engine(fromB)).toEqual(engine(fromA));
  });

  it("d. the replica executing an up is SIGKILLed mid-run: the other, still running, marks it interrupted, clears lock and pending operations; nothing is lost; the next up succeeds", async () => {
    const [a, b] = replicas as [Replica, Replica];
    const { slug } = await onboardTenant(a, "crash");
    const stackName = `tenant-${slug}`;

    // The service's AWS calls are held from now on (STS aside): the up stops at its first resource.
    const runId = await service.upHeldMidCall(slug, a);
    const executor = startedBy(a, runId) === 1 ? a : b;
    const survivor = executor === a ? b : a;
    expect(startedBy(survivor, runId)).toBe(0);

    const runsBefore = await service.sql<{ id: string; status: string }[]>`select id, status from runs where id <> ${runId} order by id`;
    const eventsBefore = await service.sql<{ run_id: string; seq: number }[]>`select run_id, seq from run_events order by run_id, seq`;
    const survivorPid = survivor.server.child.pid;
    expect(await stopServer(executor.server, "SIGKILL")).toBeNull();
    expect(executor.server.child.signalCode).toBe("SIGKILL");

    // The survivor's periodic sweep, not a restart, recovers it.
    const interrupted = await waitFor(
      "the survivor to mark the run interrupted",
      async () => {
        const run = await survivor.call("GET", `/v1/tenants/${slug}/runs/${runId}`);
        return run.body.status === "interrupted" ? run.body : undefined;
      },
      { timeoutMs: 120_000 },
    );
    service.proxy.hold(null);
    expect(survivor.server.child.exitCode).toBeNull();
    expect(survivor.server.child.pid).toBe(survivorPid);
    // The sweep logs right after it wrote the row: the lines may reach the pipe a moment after the status is read.
    await waitFor(
      "the survivor's log of the recovery",
      async () =>
        logLines(survivor).some((line) => line.event === "run.recovered" && line.runId === runId) &&
        survivor.server.stderr().includes(`recovery sweep: marked 1 interrupted run(s): ${runId}`)
          ? true
          : undefined,
      { timeoutMs: 10_000 },
    );
    expect(interrupted).toMatchObject({ status: "interrupted", error: { kind: "Interrupted" }, finished_at: expect.any(String) });
    expect(interrupted.error.message).toMatch(/unfinished operation\(s\) were dropped/);

    // The orphaned pulumi of the killed replica is gone (same host), the lock is cleared and no operation is pending.
    expect(await pulumiProcessesOf(stackName)).toEqual([]);
    const exported = await pulumiCli(["stack", "export", "--stack", stackName, "--non-interactive"], {
      cwd: survivor.workspace.projectDir,
      env: survivor.workspace.cliEnv(),
    });
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout).deployment.pending_operations ?? []).toEqual([]);

    // No row lost: every other run as it was, every event recorded before the kill still there.
    expect(await service.sql<{ id: string; status: string }[]>`select id, status from runs where id <> ${runId} order by id`).toEqual(runsBefore);
    const eventsAfter = await service.sql<{ run_id: string; seq: number }[]>`select run_id, seq from run_events order by run_id, seq`;
    expect(eventsAfter).toEqual(expect.arrayContaining(eventsBefore));
    const stream = await readEventStream(`${survivor.server.baseUrl}/v1/tenants/${slug}/runs/${runId}/events`, { token: service.adminToken });
    expect(stream.events.at(-1)).toMatchObject({ event: "end" });
    expect(JSON.parse(stream.events.at(-1)!.data)).toMatchObject({ status: "interrupted" });

    // The next up, through the survivor, succeeds (the resource whose create was in flight never reached moto).
    const next = await survivor.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
    expect(next.status, next.text).toBe(202);
    const done = await survivor.settledRun(slug, next.body.run_id);
    expect(done.error).toBeNull();
    expect(done.status).toBe("succeeded");

    // The survivor's metrics show it: the interrupted run in the shared figures, the up it ran in its own.
    const metrics = await survivor.call("GET", "/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^mxdr_runs\{kind="up",status="interrupted"\} 1$/m);
    expect(metrics.text).toMatch(/^mxdr_runs_total\{kind="up",status="succeeded"\} [1-9]\d*$/m);
    expect(metrics.text).toMatch(/^mxdr_run_duration_seconds_count\{kind="up",status="succeeded"\} [1-9]\d*$/m);
  });

  it("e. a plan saved by one replica is approved and applied by another with its own, empty project dir", async () => {
    // One replica alive (the survivor of the crash): it alone executes the preview.
    const alive = replicas.filter((replica) => replica.server.child.exitCode === null && replica.server.child.signalCode === null);
    const saver = alive[0]!;
    for (const other of alive.slice(1)) await stopServer(other.server, "SIGTERM");
    const { slug } = await onboardTenant(saver, "plan", { requireApproval: true });
    const refused = await saver.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
    expect(refused.status, refused.text).toBe(409);
    const preview = await saver.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "preview" } });
    expect(preview.status, preview.text).toBe(202);
    const previewRun = await saver.settledRun(slug, preview.body.run_id);
    expect(previewRun.error).toBeNull();
    expect(previewRun.status).toBe("succeeded");
    expect(startedBy(saver, preview.body.run_id)).toBe(1);
    const [saved] = await service.sql<{ n: number }[]>`select count(*)::int as n from run_plans where preview_run_id = ${preview.body.run_id}`;
    expect(saved!.n).toBe(1);

    // The applier starts after the saver has stopped, so it executes the up; its project dir has never seen the stack.
    expect(await stopServer(saver.server, "SIGTERM")).toBe(0);
    const applier = await service.startReplica("C");
    const stackFile = `${applier.workspace.projectDir}/stacks/Pulumi.tenant-${slug}.yaml`;
    await expect(readFile(stackFile, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
    const up = await applier.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up", plan_run_id: preview.body.run_id } });
    expect(up.status, up.text).toBe(202);
    const applied = await applier.settledRun(slug, up.body.run_id);
    expect(applied.error).toBeNull();
    expect(applied.status).toBe("succeeded");
    expect(applied.change_summary).toMatchObject({ create: expect.any(Number) });
    expect(startedBy(applier, up.body.run_id)).toBe(1);
    // The applier's stack config took the saver's passphrase salt (from the checkpoint), not a new one.
    const saltOf = async (workspace: ServiceWorkspace) =>
      (await readFile(`${workspace.projectDir}/stacks/Pulumi.tenant-${slug}.yaml`, "utf8")).match(/^encryptionsalt: (\S+)$/m)?.[1];
    expect(await saltOf(applier.workspace)).toBeDefined();
    expect(await saltOf(applier.workspace)).toBe(await saltOf(saver.workspace));
    expect(await stackHistoryLength(applier.workspace, `tenant-${slug}`)).toBe(1);
  });
});
