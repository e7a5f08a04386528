/**
 * The service as an operating system process (issue 17, findings 10 and 11): what its stack operations' processes
 * see of its environment, and how it stops when a supervisor signals `npm start`.
 *
 *   1. A run's pulumi CLI and the provider plugin it starts (the test stand-in, which records its own environment and
 *      its parent's, test/harness/aws-provider/main.ts) get an allowlist: no ADMIN_TOKEN, CREDENTIALS_ENCRYPTION_KEY,
 *      DATABASE_URL or its password.
 *   2. `npm start` with the embedded PostgreSQL in a temp DATA_DIR (whose server has none of the secrets either):
 *      SIGTERM to npm's own process (what Docker, Kubernetes or systemd send) during an `up` reaches the service; the
 *      up finishes within the grace period, then the service, the embedded server and every child exit; nothing
 *      listens; nothing is lost.
 *   3. With a short grace period, an up still running is cancelled (its AWS calls held by a loopback proxy until the
 *      shutdown gives up waiting) and marked interrupted; no process is left; the next up succeeds.
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../db/client";
import { embeddedServerStatus } from "../../db/embedded-server";
import { isPulumiProcessOf } from "../../services/run/orphans";
import { isStsCall } from "../harness/holding-proxy";
import { processIsRunning } from "../harness/process-leaks";
import { descendantsOf } from "../harness/process-tree";
import { pulumiCli, pulumiProcessesOf } from "../harness/pulumi-cli";
import type { Server } from "../harness/service-process";
import { serviceUnderTest } from "../harness/service-under-test";
import { newTenantRecord } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const suffix = randomBytes(3).toString("hex");
const WAIT = { timeoutMs: 240_000, retryErrors: true };
const waitFor = waitForWith(WAIT);

const listens = (baseUrl: string) =>
  fetch(`${baseUrl}/healthz`).then(
    () => true,
    () => false,
  );

describe("the pulumi CLI and its plugins get an allowlisted environment", () => {
  // A file backend: the CLI needs its backend's URL, and a postgres:// one would carry the database password.
  const service = serviceUnderTest({ name: "cli-env", wait: WAIT });
  const { adminToken } = service;
  const encryptionKey = service.encryptionKey!;

  it("a run's pulumi CLI and provider plugin have no ADMIN_TOKEN, CREDENTIALS_ENCRYPTION_KEY, DATABASE_URL or database password", async () => {
    const tenant = newTenantRecord(`cli-env-${suffix}`);
    await service.onboard(tenant);
    const up = await service.call("POST", `/v1/tenants/${tenant.slug}/runs`, { body: { kind: "up" } });
    expect(up.status, up.text).toBe(202);
    const run = await service.settledRun(tenant.slug, up.body.run_id);
    expect(run.error).toBeNull();
    expect(run.status).toBe("succeeded");

    const dir = join(process.env.STANDIN_AWS_STATE_DIR!, "environ");
    const records: { env: Record<string, string>; parentArgs: string[]; parentEnv: Record<string, string> }[] = [];
    for (const file of await readdir(dir)) {
      const record = JSON.parse(await readFile(join(dir, file), "utf8"));
      if (isPulumiProcessOf(record.parentArgs, `tenant-${tenant.slug}`)) records.push(record);
    }
    expect(records.length).toBeGreaterThan(0);
    const password = decodeURIComponent(new URL(service.databaseUrl).password);
    expect(password.length).toBeGreaterThan(0);
    for (const record of records) {
      for (const env of [record.env, record.parentEnv]) {
        // The records are real: the CLI and the plugin have what they need.
        expect(env.PATH).toBeTruthy();
        expect(env.AWS_ENDPOINT_URL).toBe(process.env.AWS_ENDPOINT_URL);
        expect(env.PULUMI_BACKEND_URL).toBe(service.workspace.backendUrl);
        for (const name of ["ADMIN_TOKEN", "CREDENTIALS_ENCRYPTION_KEY", "DATABASE_URL", "TEST_DATABASE_URL"]) expect(env).not.toHaveProperty(name);
        const text = JSON.stringify(env);
        for (const secret of [adminToken, encryptionKey, password]) expect(text).not.toContain(secret);
      }
    }
  });
});

describe("npm start: a supervisor's SIGTERM to npm's own process stops the service cleanly", () => {
  /** `npm start` as a supervisor runs it: embedded PostgreSQL under a temp DATA_DIR, no passphrase given. */
  const service = serviceUnderTest({
    name: "npm",
    database: "embedded",
    passphrase: null,
    holdingProxy: true,
    viaNpm: true,
    startTimeoutMs: 240_000,
    startAtSetUp: false,
    wait: WAIT,
  });
  const { call, adminToken } = service;
  const encryptionKey = service.encryptionKey!;
  const startWithNpm = (env: Record<string, string> = {}) => service.start({ env });

  /** A signal to npm's own pid; resolves once npm exited, with every process it had started gone. */
  async function terminateNpm(running: Server, signal: NodeJS.Signals = "SIGTERM"): Promise<{ code: number | null; descendants: number[] }> {
    const descendants = await descendantsOf(running.child.pid!);
    expect(descendants.length).toBeGreaterThan(0);
    running.child.kill(signal);
    const code = await running.exited;
    await waitFor(
      "every process npm start had started to exit",
      async () => {
        for (const pid of descendants) if (processIsRunning(pid)) return false;
        return true;
      },
      { timeoutMs: 120_000 },
    );
    return { code, descendants };
  }

  async function expectNothingRunning(running: Server): Promise<void> {
    expect(await listens(running.baseUrl)).toBe(false);
    expect(await embeddedServerStatus(join(service.workspace.dataDir, "postgres"))).toBeUndefined();
  }

  async function runRow(runId: string) {
    const database = await openDatabase({ dataDir: service.workspace.dataDir });
    try {
      const [row] = await database.sql<{ status: string; error: { kind?: string } | null }[]>`select status, error from runs where id = ${runId}`;
      return row!;
    } finally {
      await database.close();
    }
  }

  async function stackHistory(stackName: string): Promise<unknown[]> {
    const passphrase = (await readFile(join(service.workspace.dataDir, "pulumi-passphrase"), "utf8")).trim();
    const history = await pulumiCli(["stack", "history", "--stack", stackName, "--json", "--non-interactive"], {
      cwd: service.workspace.projectDir,
      env: { ...service.workspace.cliEnv(), PULUMI_CONFIG_PASSPHRASE: passphrase },
    });
    expect(history.code, history.stderr).toBe(0);
    return JSON.parse(history.stdout) as unknown[];
  }

  async function requestUp(slug: string): Promise<string> {
    const up = await call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
    expect(up.status, up.text).toBe(202);
    return up.body.run_id as string;
  }

  const runningWithCli = (slug: string, runId: string) =>
    waitFor(`run ${runId} to be running with its pulumi process`, async () => {
      const run = await call("GET", `/v1/tenants/${slug}/runs/${runId}`);
      return run.body.status === "running" && (await pulumiProcessesOf(`tenant-${slug}`)).length > 0;
    });

  it("during an up, SIGTERM to npm's pid reaches the service: the up finishes within the grace period, then the service, its embedded PostgreSQL and every child exit; nothing is lost", async () => {
    const server = await startWithNpm();
    // The passphrase was generated into DATA_DIR, not into the checkout's .data.
    expect((await stat(join(service.workspace.dataDir, "pulumi-passphrase"))).mode & 0o777).toBe(0o600);
    // The embedded PostgreSQL server, a child for as long as it runs, has none of the service's secrets either.
    const postmaster = (await readFile(join(service.workspace.dataDir, "postgres", "data", "postmaster.pid"), "utf8")).split("\n")[0]!;
    const serverEnviron = await readFile(`/proc/${postmaster}/environ`, "utf8");
    expect(serverEnviron).toContain("PATH=");
    for (const secret of ["ADMIN_TOKEN=", "CREDENTIALS_ENCRYPTION_KEY=", adminToken, encryptionKey]) expect(serverEnviron).not.toContain(secret);
    const tenant = newTenantRecord(`npm-term-${suffix}`);
    await service.onboard(tenant);
    const runId = await requestUp(tenant.slug);
    await runningWithCli(tenant.slug, runId);

    const { code } = await terminateNpm(server);
    expect(code).toBe(0);
    expect(server.stderr()).toMatch(/SIGTERM: shutting down/);
    await expectNothingRunning(server);
    expect(await pulumiProcessesOf(`tenant-${tenant.slug}`)).toEqual([]);

    expect(await runRow(runId)).toMatchObject({ status: "succeeded", error: null });
    expect(await stackHistory(`tenant-${tenant.slug}`)).toHaveLength(1);
  });

  it("after the grace period (SIGINT to npm's pid), an up still running is cancelled and marked interrupted; no process is left; the next up succeeds", async () => {
    const stopping = await startWithNpm({ SHUTDOWN_GRACE_SECONDS: "1" });
    const tenant = newTenantRecord(`npm-grace-${suffix}`);
    await service.onboard(tenant);
    // The up's AWS calls (not the provider's STS calls) are held: it cannot finish within the grace period.
    const heldBefore = service.proxy.held;
    service.proxy.hold((request) => !isStsCall(request));
    const runId = await requestUp(tenant.slug);
    await runningWithCli(tenant.slug, runId);
    await waitFor("an AWS call of the up to be held", async () => service.proxy.held > heldBefore);

    // SIGINT this time (a Ctrl-C meant for npm): forwarded the same way.
    const terminated = terminateNpm(stopping, "SIGINT");
    // Once the shutdown has given up waiting and cancelled the CLI, the held calls go through: the CLI finishes the
    // operations in flight and exits cleanly.
    await waitFor("the shutdown to cancel the run", async () => /still running after the grace period/.test(stopping.stderr()));
    service.proxy.hold(null);
    service.proxy.drop();
    const { code } = await terminated;
    expect(code).toBe(0);
    expect(stopping.stderr()).toMatch(/SIGINT: shutting down/);
    await expectNothingRunning(stopping);
    expect(await pulumiProcessesOf(`tenant-${tenant.slug}`)).toEqual([]);
    expect(await runRow(runId)).toMatchObject({ status: "interrupted", error: { kind: "Interrupted" } });

    // The stack is not locked and its state is whole: the next up, after a restart, succeeds.
    const restarted = await startWithNpm();
    const next = await service.settledRun(tenant.slug, await requestUp(tenant.slug));
    expect(next.error).toBeNull();
    expect(next.status).toBe("succeeded");
    const { code: again } = await terminateNpm(restarted);
    expect(again).toBe(0);
    await expectNothingRunning(restarted);
  });
});
