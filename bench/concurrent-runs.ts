/**
 * MAX_CONCURRENT_RUNS runs at once, plus request load: N tenants each request a run (preview by default) through the
 * service's API at the same moment, while a few clients keep calling /healthz and a cheap authenticated GET. Offline:
 * moto and the stand-in AWS provider on loopback, the real Pulumi CLI, a scratch database on the test PostgreSQL
 * server, the service built and started as `npm start` does.
 *
 *   npm run bench:runs                        (BENCH_CONCURRENCY=4,16,32 BENCH_RUN_KIND=preview BENCH_LOAD_CLIENTS=4)
 *
 * Prints per N (the service restarted with MAX_CONCURRENT_RUNS=N): the runs' wall time and throughput (runs/minute),
 * and p50/p99/max latency of /healthz and of GET /v1/tenants/{slug} while the runs executed. It asserts nothing.
 */
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import setupHarness from "../test/harness/global-setup";
import { startServiceUnderTest } from "../test/harness/service-under-test";
import { newTenantRecord, TERMINAL_RUN_STATUSES, type TenantRecord } from "../test/harness/tenants";

const CONCURRENCIES = (process.env.BENCH_CONCURRENCY ?? "4,16,32")
  .split(",")
  .map((value) => Number(value.trim()))
  .filter((value) => value > 0);
const KIND = process.env.BENCH_RUN_KIND ?? "preview";
const LOAD_CLIENTS = Number(process.env.BENCH_LOAD_CLIENTS ?? 4);
/** Each variant stops waiting for its runs after this long (the loops are bounded). */
const VARIANT_LIMIT_MS = Number(process.env.BENCH_VARIANT_LIMIT_SECONDS ?? 900) * 1000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const fmt = (value: number, digits = 1) => value.toFixed(digits);

const teardown = await setupHarness();
const service = await startServiceUnderTest({ name: "bench_runs", workspace: "database-state", startAtSetUp: false });
const { call, adminToken } = service;
const tenants: TenantRecord[] = [];

/** Calls `path` in a loop from `clients` clients until `stop` resolves; latencies (ms) of the answers, and failures. */
async function load(path: string, clients: number, stop: Promise<void>): Promise<{ latencies: number[]; failures: number }> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  const latencies: number[] = [];
  let failures = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (!stopped) {
        const started = performance.now();
        try {
          const response = await fetch(`${service.server.baseUrl}${path}`, {
            headers: { authorization: `Bearer ${adminToken}` },
            signal: AbortSignal.timeout(60_000),
          });
          await response.text();
          if (response.status === 200) latencies.push(performance.now() - started);
          else failures++;
        } catch {
          failures++;
        }
        await sleep(20);
      }
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), failures };
}

try {
  const most = Math.max(...CONCURRENCIES);
  console.log(
    `concurrent runs bench: ${KIND} runs at ${CONCURRENCIES.join(", ")} at once, ${LOAD_CLIENTS} load clients per endpoint, ${availableParallelism()} CPU(s)`,
  );
  for (const concurrency of CONCURRENCIES) {
    await service.start({ env: { MAX_CONCURRENT_RUNS: String(concurrency) } });
    while (tenants.length < Math.min(most, concurrency)) {
      const tenant = newTenantRecord(`br${String(tenants.length).padStart(2, "0")}-${randomBytes(2).toString("hex")}`, {
        firstAccount: 700_000_000_000,
      });
      await service.onboard(tenant);
      tenants.push(tenant);
    }
    const batch = tenants.slice(0, concurrency);
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const healthz = load("/healthz", LOAD_CLIENTS, finished);
    const tenantGet = load(`/v1/tenants/${batch[0]!.slug}`, LOAD_CLIENTS, finished);
    const started = performance.now();
    const requested = await Promise.all(batch.map((tenant) => call("POST", `/v1/tenants/${tenant.slug}/runs`, { body: { kind: KIND } })));
    const accepted = requested.filter((answer) => answer.status === 202).length;
    const statuses = new Map<string, string>();
    while (performance.now() - started < VARIANT_LIMIT_MS) {
      for (const [index, tenant] of batch.entries()) {
        const runId = requested[index]!.body?.run_id;
        if (!runId || statuses.has(runId)) continue;
        const run = await call("GET", `/v1/tenants/${tenant.slug}/runs/${runId}`);
        if (TERMINAL_RUN_STATUSES.includes(run.body?.status)) statuses.set(runId, run.body.status);
      }
      if (statuses.size >= accepted) break;
      await sleep(250);
    }
    const wall = (performance.now() - started) / 1000;
    finish();
    const [h, g] = [await healthz, await tenantGet];
    await service.stop();
    const succeeded = [...statuses.values()].filter((status) => status === "succeeded").length;
    const line = (name: string, figures: { latencies: number[]; failures: number }) =>
      `${name} p50 ${fmt(percentile(figures.latencies, 50))} ms, p99 ${fmt(percentile(figures.latencies, 99))} ms, max ${fmt(figures.latencies.at(-1) ?? Number.NaN)} ms (${figures.latencies.length} answers, ${figures.failures} failed)`;
    console.log(
      `${concurrency} at once: ${accepted}/${concurrency} accepted, ${succeeded} succeeded in ${fmt(wall)} s = ${fmt((succeeded / wall) * 60)} runs/min; ` +
        `${line("/healthz", h)}; ${line("GET tenant", g)}`,
    );
  }
} finally {
  await service.close();
  await teardown();
}
