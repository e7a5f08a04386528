/**
 * Applying one change (an agent version) to N tenants: a fleet up through the service at max_concurrency 2, 4 and 8,
 * against a sequential loop of `pulumi up` with the CLI (the same program, stacks and state). Offline: moto, the
 * stand-in AWS provider and the SSM stand-in on loopback, the real Pulumi CLI, a scratch database on the test
 * PostgreSQL server (so the service's figures leave PostgreSQL out).
 *
 *   npm run bench:fleet                 (BENCH_TENANTS tenants, default 50)
 *
 * Prints per variant: wall time, tenants per minute, speed-up over the CLI loop, CPU seconds per tenant (the service
 * process and everything it ran: Pulumi CLIs, the provider plugins; from /proc utime+stime+cutime+cstime), the cores
 * that kept busy, and the service's peak memory (its own VmHWM, and the peak resident set of its process tree
 * sampled every 200 ms). Then where the 2-core CPU limit lies.
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import setupHarness from "../test/harness/global-setup";
import { descendantsOf, processMemory } from "../test/harness/process-tree";
import { pulumiCli } from "../test/harness/pulumi-cli";
import { startServiceUnderTest } from "../test/harness/service-under-test";
import { newTenantRecord, TERMINAL_RUN_STATUSES } from "../test/harness/tenants";

const TENANTS = Number(process.env.BENCH_TENANTS ?? 50);
const CONCURRENCIES = [2, 4, 8];
const REGION = "us-east-1";
const CLOCK_TICKS = 100; // USER_HZ on Linux
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** utime + stime + cutime + cstime of a process, seconds (children count once they were waited for). */
async function cpuSeconds(pid: number | "self"): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the comm field: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

/** The moto server the harness started (the port of AWS_ENDPOINT_URL): one Python process serving every AWS call. */
async function motoPid(): Promise<number | undefined> {
  const port = new URL(process.env.AWS_ENDPOINT_URL!).port;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (args.some((arg) => arg.endsWith("moto_server")) && args.includes(port)) return Number(entry);
  }
  return undefined;
}

/** Busy CPU seconds of the whole machine (every process, ours and others'), from /proc/stat. */
async function machineBusySeconds(): Promise<number> {
  const [cpu] = (await readFile("/proc/stat", "utf8")).split("\n");
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = cpu!.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLOCK_TICKS;
}

async function treeRssKiB(pid: number): Promise<number> {
  let total = 0;
  for (const member of [pid, ...(await descendantsOf(pid))]) total += (await processMemory(member))?.rssKiB ?? 0;
  return total;
}

const teardown = await setupHarness();
const service = await startServiceUnderTest({ name: "bench_fleet", workspace: "database-state", ssmStandIn: true, startAtSetUp: false });
const { call, workspace } = service;
const slugs = Array.from({ length: TENANTS }, (_, index) => `bf${String(index).padStart(3, "0")}-${randomBytes(2).toString("hex")}`);

const start = (agentVersion: string, maxConcurrentRuns: number) =>
  service.start({ env: { MAX_CONCURRENT_RUNS: String(maxConcurrentRuns), AGENT_VERSION: agentVersion } });

/** A fleet up over every tenant; returns wall seconds, the service's CPU seconds and its memory peaks. */
async function fleetUp(maxConcurrency: number) {
  const pid = service.server.child.pid!;
  const cpuBefore = await cpuSeconds(pid);
  const motoBefore = moto ? await cpuSeconds(moto) : 0;
  const machineBefore = await machineBusySeconds();
  let peakTreeKiB = 0;
  const started = performance.now();
  const created = await call("POST", "/v1/fleet/runs", {
    body: { kind: "up", tenants: { all: true }, max_concurrency: maxConcurrency, max_failures: 0 },
  });
  if (created.status !== 202) throw new Error(`fleet up: ${created.status} ${created.text}`);
  for (;;) {
    peakTreeKiB = Math.max(peakTreeKiB, await treeRssKiB(pid));
    const got = await call("GET", `/v1/fleet/runs/${created.body.id}`);
    if (got.body.status !== "running") {
      if (got.body.status !== "succeeded")
        throw new Error(
          `fleet up ${got.body.status}: ${got.body.stop_reason} ${JSON.stringify(got.body.tenant_runs.filter((row: any) => row.error))}`,
        );
      const wall = (performance.now() - started) / 1000;
      const motoCpu = moto ? (await cpuSeconds(moto)) - motoBefore : Number.NaN;
      const machineCores = ((await machineBusySeconds()) - machineBefore) / wall;
      return {
        wall,
        motoCpu,
        machineCores,
        cpu: (await cpuSeconds(pid)) - cpuBefore,
        hwmKiB: (await processMemory(pid))?.hwmKiB ?? 0,
        peakTreeKiB,
        summary: got.body.change_summary_text as string,
      };
    }
    await sleep(200);
  }
}

const fmt = (value: number, digits = 1) => value.toFixed(digits);
const moto = await motoPid();
try {
  console.log(`fleet bench: ${TENANTS} tenants, one region each, ${availableParallelism()} CPU(s)`);
  await start("1.0.0", 8);
  for (const slug of slugs) {
    const tenant = newTenantRecord(slug, { firstAccount: 600_000_000_000 });
    await service.onboard(tenant, { name: slug, regions: [REGION], body: { onboarding_flow_version: "legacy" } });
  }
  // The first up of every tenant creates its stack (not measured: the measured variants all apply one change).
  // Tenants not connected yet are skipped by fleet runs, so these go through the per-tenant route.
  const setupStarted = performance.now();
  const runIds: string[] = [];
  for (const slug of slugs) runIds.push((await call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } })).body.run_id);
  for (const [index, slug] of slugs.entries()) {
    for (;;) {
      const run = await call("GET", `/v1/tenants/${slug}/runs/${runIds[index]}`);
      if (run.body.status === "succeeded") break;
      if (TERMINAL_RUN_STATUSES.includes(run.body.status)) throw new Error(`first up of ${slug}: ${JSON.stringify(run.body.error)}`);
      await sleep(250);
    }
  }
  console.log(`setup: ${TENANTS} first ups in ${fmt((performance.now() - setupStarted) / 1000)} s (MAX_CONCURRENT_RUNS 8)`);
  await service.stop();

  // The sequential baseline: the platform team's loop, `pulumi config set` + `pulumi up` per stack with the CLI.
  const cliEnv = workspace.cliEnv();
  const loopCpuBefore = await cpuSeconds("self");
  const loopMotoBefore = moto ? await cpuSeconds(moto) : 0;
  const loopMachineBefore = await machineBusySeconds();
  const loopStarted = performance.now();
  for (const slug of slugs) {
    const stack = `tenant-${slug}`;
    const set = await pulumiCli(["config", "set", "agentVersion", "1.1.0", "-s", stack, "--non-interactive"], {
      cwd: workspace.projectDir,
      env: cliEnv,
    });
    if (set.code !== 0) throw new Error(`config set ${stack}: ${set.stderr}`);
    const up = await pulumiCli(["up", "--yes", "--skip-preview", "-s", stack, "--non-interactive", "--suppress-progress"], {
      cwd: workspace.projectDir,
      env: cliEnv,
    });
    if (up.code !== 0) throw new Error(`pulumi up ${stack}: ${up.stderr || up.stdout}`);
  }
  const loop = {
    wall: (performance.now() - loopStarted) / 1000,
    cpu: (await cpuSeconds("self")) - loopCpuBefore,
    motoCpu: moto ? (await cpuSeconds(moto)) - loopMotoBefore : Number.NaN,
    machineBusy: (await machineBusySeconds()) - loopMachineBefore,
  };
  const loopRate = (TENANTS / loop.wall) * 60;
  console.log(
    `pulumi up loop (CLI, sequential): ${fmt(loop.wall)} s, ${fmt(loopRate)} tenants/min, ${fmt(loop.cpu / TENANTS, 2)} CPU s/tenant, ${fmt(loop.cpu / loop.wall, 2)} cores busy (moto ${fmt(loop.motoCpu / loop.wall, 2)}; the whole machine ${fmt(loop.machineBusy / loop.wall, 2)} of ${availableParallelism()})`,
  );

  const results: { concurrency: number; rate: number; cpuPerTenant: number; cores: number; motoPerTenant: number; machineCores: number }[] = [];
  for (const [index, concurrency] of CONCURRENCIES.entries()) {
    // A new agent version is a platform setting: the service restarts with it, then one fleet up applies it.
    await start(`1.${index + 2}.0`, Math.max(concurrency, 4));
    const result = await fleetUp(concurrency);
    await service.stop();
    const rate = (TENANTS / result.wall) * 60;
    const cores = result.cpu / result.wall;
    results.push({
      concurrency,
      rate,
      cpuPerTenant: result.cpu / TENANTS,
      cores,
      motoPerTenant: result.motoCpu / TENANTS,
      machineCores: result.machineCores,
    });
    console.log(
      `fleet up, max_concurrency ${concurrency}: ${fmt(result.wall)} s, ${fmt(rate)} tenants/min (x${fmt(rate / loopRate, 2)} the CLI loop), ` +
        `${fmt(result.cpu / TENANTS, 2)} CPU s/tenant, ${fmt(cores, 2)} cores busy (moto ${fmt(result.motoCpu / result.wall, 2)}; the whole machine ${fmt(result.machineCores, 2)} of ${availableParallelism()}), service peak memory: node ${fmt(result.hwmKiB / 1024, 0)} MiB ` +
        `(VmHWM), process tree ${fmt(result.peakTreeKiB / 1024, 0)} MiB (sampled) [${result.summary}]`,
    );
  }
  const cpuPerTenant = Math.min(...results.map((result) => result.cpuPerTenant));
  const motoPerTenant = Math.min(...results.map((result) => result.motoPerTenant));
  const cores = availableParallelism();
  const ceiling = (cores * 60) / (cpuPerTenant + (Number.isNaN(motoPerTenant) ? 0 : motoPerTenant));
  const best = results.reduce((a, b) => (b.rate > a.rate ? b : a));
  const saturated = results.find((result) => result.machineCores >= cores * 0.9);
  console.log(
    `CPU limit: a tenant's up costs ${fmt(cpuPerTenant, 2)} CPU s in the service (Pulumi CLI, language host, provider) and ` +
      `${fmt(motoPerTenant, 2)} CPU s in moto, so ${cores} cores cap a fleet up at ~${fmt(ceiling)} tenants/min however high max_concurrency goes. ` +
      `Best here: ${fmt(best.rate)} tenants/min at max_concurrency ${best.concurrency}. ` +
      (saturated
        ? `From max_concurrency ${saturated.concurrency} the machine was CPU-bound (${fmt(saturated.machineCores, 2)} of ${cores} cores busy): more concurrency only queues for the CPU.`
        : `The machine never reached ${cores} busy cores (at most ${fmt(Math.max(...results.map((result) => result.machineCores)), 2)}): waits (engine steps, the database, loopback AWS calls) bound these runs, not the CPU.`),
  );
} finally {
  await service.close();
  await teardown();
}
