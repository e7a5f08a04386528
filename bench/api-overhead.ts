/**
 * What the service adds to a tenant's `up` (issue 3), in one run on this machine, against moto (offline; loopback
 * only) with the real Pulumi CLI and the test harness's stand-in AWS provider:
 *
 *   1. N rounds (BENCH_ROUNDS, default 3) of the same 8-resource `up` three ways, destroyed between rounds:
 *      - through the API: the server process (api/server.ts), POST /v1/tenants/{slug}/runs {kind: "up"}, polled
 *        until the run has succeeded (HTTP, database, pg-boss queue, engine events recorded);
 *      - with the CLI: `pulumi up --yes --skip-preview` on an equivalent stack of the same project dir and state
 *        backend (the program runs through the Node.js language host; --skip-preview as the Automation API does);
 *      - with the Automation API in this process (the service's own path minus the service: inline program).
 *      Prints the median / min / max of each and the API's overhead against the other two (target: under 10%).
 *   2. The service process's memory (its own VmRSS / VmHWM: neither the pulumi CLIs and plugins it starts nor the
 *      database server, which are other processes): idle after start-up (target <= 200 MiB), and its peak while 4
 *      tenants run `up` at once through the API (target <= 350 MiB); also the peak of the summed VmRSS of the server
 *      and all its descendants, sampled.
 *   3. GET /v1/tenants/{slug}/progress of a tenant with 10,000 assets (seeded directly into cloud_assets of the
 *      service's database), under 200 requests per second on loopback: p50 / p99 (target p99 <= 25 ms), from an
 *      open-loop generator that starts one request every 5 ms (bench/paced-load.ts); then the same from autocannon,
 *      whose rate limit sends each second's 200 requests in bursts over 20 connections (a harsher, closed-loop load).
 *
 * All of it twice in one run: on the embedded default (the service starts its own PostgreSQL under DATA_DIR) and on a
 * PostgreSQL server (a scratch database on DATABASE_URL, else TEST_DATABASE_URL, else the test server that
 * `bash scripts/postgres.sh start` starts). BENCH_BACKENDS=embedded or =server runs one of them.
 *
 *   npm run bench:api
 *   BENCH_ROUNDS=5 npm run bench:api
 *   BENCH_PARTS=memory BENCH_BACKENDS=embedded npm run bench:api   only part 2 (a few minutes, little CPU)
 *
 * BENCH_PARTS (default rounds,memory,progress) picks parts: part 2 always runs (part 3 uses one of its tenants); without
 * `rounds` or `progress`, the figures of that part are not printed. The memory figures are the same either way.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  automationSettingsSchema,
  configureTenantStack,
  destroyTenantStack,
  openTenantStack,
  stackNameFor,
  removeTenantStack,
  upTenantStack,
} from "../automation";
import postgres from "postgres";
import { miniCorpTenantConfig } from "../test/fixtures/tenant-config";
import { pacedLoad, type PacedLoadResult } from "./paced-load";
import setupHarness from "../test/harness/global-setup";
import { REPO_ROOT } from "../test/harness/moto";
import { createBootstrapRole } from "../test/harness/customer-account";
import { descendantsOf, processMemory } from "../test/harness/process-tree";
import { pulumiCli } from "../test/harness/pulumi-cli";
import { startServiceUnderTest, type ServiceUnderTest } from "../test/harness/service-under-test";
import { AGENT_PUBLIC_BASE_URL, BOOTSTRAP_ROLE_NAME, newAccountId, newTenantRecord, PLATFORM_PRINCIPAL_ARN } from "../test/harness/tenants";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENT_TENANTS = 4;
const POLL_MS = 50;
const PROGRESS_ASSETS = 10_000;
const PROGRESS_RATE = 200;
const PROGRESS_SECONDS = Number(process.env.BENCH_PROGRESS_SECONDS ?? 15);
const PARTS = new Set((process.env.BENCH_PARTS ?? "rounds,memory,progress").split(","));

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  errors: number;
}
const autocannon = createRequire(import.meta.url)("autocannon") as (options: Record<string, unknown>) => Promise<AutocannonResult>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number) => (ms / 1000).toFixed(2);

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)]!, min: sorted[0]!, max: sorted.at(-1)! };
}

async function pulumi(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  const { code, stdout, stderr } = await pulumiCli(args, { cwd, env });
  if (code !== 0) throw new Error(`pulumi ${args.join(" ")} exited ${code}:\n${stdout}${stderr}`);
}

/** The whole measurement on one database back end: the embedded default, or a scratch database on a PostgreSQL server. */
async function measure(backendName: string, database: "embedded" | "scratch"): Promise<string[]> {
  const lines: string[] = [];
  const print = (line: string) => {
    lines.push(line);
    process.stderr.write(`${line}\n`);
  };
  let service: ServiceUnderTest | undefined;
  try {
    service = await startServiceUnderTest({ name: "bench", database, env: { MAX_CONCURRENT_RUNS: String(CONCURRENT_TENANTS) } });
    const { server, workspace, call, adminToken } = service;
    // Idle: after start-up, before any request has loaded anything on demand.
    await sleep(3000);
    const idle = (await processMemory(server.child.pid!))!;
    const api = async (method: string, path: string, body?: unknown) => {
      const answer = await call(method, path, { body });
      if (answer.status >= 300) throw new Error(`${method} ${path}: ${answer.status} ${answer.text}`);
      return answer.body;
    };
    const settled = async (slug: string, runId: string) => {
      const run = await service!.settledRun(slug, runId, { intervalMs: POLL_MS, timeoutMs: Number.POSITIVE_INFINITY });
      if (run.status !== "succeeded") throw new Error(`run ${runId} of ${slug} ${run.status}: ${JSON.stringify(run.error)}`);
      return run;
    };
    /** Waits for the discovery the service starts after an `up`, so that it does not overlap the next measurement. */
    const discoveryDone = async (slug: string) => {
      for (;;) {
        const progress = await api("GET", `/v1/tenants/${slug}/progress`);
        if (["completed", "failed"].includes(progress.discovery.status)) return;
        await sleep(POLL_MS);
      }
    };
    const onboardTenant = (slug: string) => service!.onboard(newTenantRecord(slug), { name: slug });

    const figures: Record<"api" | "cli" | "inline", number[]> = { api: [], cli: [], inline: [] };
    const apiQueueWait: number[] = [];
    const apiExecution: number[] = [];
    /** With DATABASE_URL: where an API run's execution goes, from the rows (run_events.created_at). */
    const phases: Record<"setup" | "engine" | "finish", number[]> = { setup: [], engine: [], finish: [] };
    const sql = database === "scratch" ? service.sql : postgres(await embeddedDatabaseUrl(workspace.dataDir), { max: 2, onnotice: () => undefined });
    if (PARTS.has("rounds")) {
      // The API tenant, and the equivalent stacks for the CLI and the in-process Automation API (same project and state).
      const apiSlug = `bench-api-${randomBytes(2).toString("hex")}`;
      await onboardTenant(apiSlug);
      const automation = automationSettingsSchema.parse({
        projectDir: workspace.projectDir,
        backendUrl: workspace.backendUrl,
        secretsProvider: "passphrase",
        passphrase: workspace.passphrase,
        pulumiRoot: join(REPO_ROOT, ".tools"),
        pulumiHome: automationHome,
      });
      const directConfig = async (slug: string) => {
        const account = newAccountId();
        const externalId = `mxdr-bench-ext_${randomBytes(12).toString("hex")}`;
        const bootstrapRoleArn = await createBootstrapRole({ accountId: account, roleName: BOOTSTRAP_ROLE_NAME, externalId });
        const config = miniCorpTenantConfig({
          tenantSlug: slug,
          customerAccountId: account,
          homeRegion: "us-east-1",
          regions: ["us-east-1"],
          bootstrapRoleArn,
          externalId,
          platformPrincipalArn: PLATFORM_PRINCIPAL_ARN,
          agentPublicBaseUrl: AGENT_PUBLIC_BASE_URL,
          agentVersion: "1.0.0",
          enrollmentToken: `mxdr-enroll_${randomBytes(32).toString("base64url")}`,
        });
        const stack = await openTenantStack(automation, stackNameFor(slug), { create: true });
        await configureTenantStack(stack, config);
        return stack;
      };
      const cliSlug = `bench-cli-${randomBytes(2).toString("hex")}`;
      const cliStack = await directConfig(cliSlug);
      const inlineStack = await directConfig(`bench-inline-${randomBytes(2).toString("hex")}`);
      const cliEnv = workspace.cliEnv();
      const cliArgs = (op: string) => [op, "--yes", "--skip-preview", "--non-interactive", "--stack", cliStack.name];

      for (let round = 0; round < ROUNDS; round++) {
        // Through the API.
        const started = performance.now();
        const { run_id: runId } = await api("POST", `/v1/tenants/${apiSlug}/runs`, { kind: "up" });
        const run = await settled(apiSlug, runId);
        figures.api.push(performance.now() - started);
        if (run.change_summary?.create !== 8) throw new Error(`unexpected API up summary ${JSON.stringify(run.change_summary)}`);
        apiQueueWait.push(Date.parse(run.started_at) - Date.parse(run.requested_at));
        apiExecution.push(Date.parse(run.finished_at) - Date.parse(run.started_at));
        {
          const [row] = await sql<{ first: Date; last: Date }[]>`
          select min(created_at) as first, max(created_at) as last from run_events where run_id = ${runId}`;
          phases.setup.push(row!.first.getTime() - Date.parse(run.started_at));
          phases.engine.push(row!.last.getTime() - row!.first.getTime());
          phases.finish.push(Date.parse(run.finished_at) - row!.last.getTime());
        }
        await discoveryDone(apiSlug);
        const destroy = await api("POST", `/v1/tenants/${apiSlug}/runs`, { kind: "destroy" });
        await settled(apiSlug, destroy.run_id);

        // With the CLI.
        const cliStarted = performance.now();
        await pulumi(cliArgs("up"), workspace.projectDir, cliEnv);
        figures.cli.push(performance.now() - cliStarted);
        await pulumi(cliArgs("destroy"), workspace.projectDir, cliEnv);

        // With the Automation API, in this process.
        const inlineStarted = performance.now();
        const inline = await upTenantStack(inlineStack);
        figures.inline.push(performance.now() - inlineStarted);
        if (inline.changeSummary.create !== 8) throw new Error(`unexpected inline up summary ${JSON.stringify(inline.changeSummary)}`);
        await destroyTenantStack(inlineStack);
        process.stderr.write(
          `round ${round + 1}/${ROUNDS}: api ${seconds(figures.api.at(-1)!)} s, cli ${seconds(figures.cli.at(-1)!)} s, automation ${seconds(figures.inline.at(-1)!)} s\n`,
        );
      }
      await removeTenantStack(cliStack);
      await removeTenantStack(inlineStack);
    }

    // Peak memory while CONCURRENT_TENANTS tenants run `up` at once.
    const concurrentSlugs = Array.from({ length: CONCURRENT_TENANTS }, (_, i) => `bench-c${i + 1}-${randomBytes(2).toString("hex")}`);
    for (const slug of concurrentSlugs) await onboardTenant(slug);
    const serverPid = server.child.pid!;
    let peakTreeKiB = 0;
    let peakProcesses = 0;
    let peakChildHwmKiB = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const pids = [serverPid, ...(await descendantsOf(serverPid))];
        const memory = await Promise.all(pids.map((pid) => processMemory(pid)));
        const tree = memory.reduce((sum, m) => sum + (m?.rssKiB ?? 0), 0);
        if (tree > peakTreeKiB) {
          peakTreeKiB = tree;
          peakProcesses = memory.filter(Boolean).length;
        }
        for (const m of memory.slice(1)) peakChildHwmKiB = Math.max(peakChildHwmKiB, m?.hwmKiB ?? 0);
        await sleep(100);
      }
    })();
    const serverBefore = (await processMemory(serverPid))!;
    const concurrentStarted = performance.now();
    const requested = await Promise.all(concurrentSlugs.map((slug) => api("POST", `/v1/tenants/${slug}/runs`, { kind: "up" })));
    const concurrentRuns = await Promise.all(concurrentSlugs.map((slug, i) => settled(slug, requested[i]!.run_id)));
    const concurrentSeconds = (performance.now() - concurrentStarted) / 1000;
    sampling = false;
    await sampler;
    const serverAfter = (await processMemory(serverPid))!;
    for (const run of concurrentRuns)
      if (run.change_summary?.create !== 8) throw new Error(`unexpected concurrent up ${JSON.stringify(run.change_summary)}`);
    for (const slug of concurrentSlugs) await discoveryDone(slug);
    const idleAfter = (await processMemory(serverPid))!;

    // The progress call of a tenant with PROGRESS_ASSETS assets (its stack applied), under PROGRESS_RATE requests/s.
    let load: AutocannonResult | undefined;
    let paced: PacedLoadResult | undefined;
    if (PARTS.has("progress")) {
      const progressSlug = concurrentSlugs[0]!;
      const [org] = await sql<{ id: number }[]>`select id from organizations where slug = ${progressSlug}`;
      await sql`
      insert into cloud_assets (organization_id, provider, asset_type, asset_id, region, asset_data, tags, agent_compatible, priority, agent_status, agent_status_at)
      select ${org!.id}, 'aws', 'ec2', 'i-bench' || lpad(n::text, 12, '0'), 'us-east-1',
             jsonb_build_object('state', case when n % 10 = 0 then 'stopped' else 'running' end, 'platform', case when n % 4 = 0 then 'windows' else 'linux' end, 'instanceType', 't3.micro'),
             jsonb_build_object('Name', 'bench-' || n, 'env', case when n % 3 = 0 then 'prod' else 'dev' end),
             true, (array['critical', 'high', 'medium', 'low'])[1 + n % 4]::asset_priority,
             (array['installed', 'checked_in', 'pending', 'failed', 'unknown'])[1 + n % 5], now()
      from generate_series(1, ${PROGRESS_ASSETS}) as n`;
      const progressPath = `/v1/tenants/${progressSlug}/progress`;
      const warm = await api("GET", progressPath);
      if (warm.discovery.assets_found < PROGRESS_ASSETS)
        throw new Error(`progress counts ${warm.discovery.assets_found} assets, expected >= ${PROGRESS_ASSETS}`);
      paced = await pacedLoad({
        url: `${server.baseUrl}${progressPath}`,
        headers: { authorization: `Bearer ${adminToken}` },
        rate: PROGRESS_RATE,
        seconds: PROGRESS_SECONDS,
      });
      if (paced.non2xx > 0 || paced.errors > 0) throw new Error(`progress under paced load: ${paced.non2xx} non-2xx answers, ${paced.errors} errors`);
      load = await autocannon({
        url: `${server.baseUrl}${progressPath}`,
        headers: { authorization: `Bearer ${adminToken}` },
        connections: 20,
        overallRate: PROGRESS_RATE,
        duration: PROGRESS_SECONDS,
      });
      if (load.non2xx > 0 || load.errors > 0) throw new Error(`progress under load: ${load.non2xx} non-2xx answers, ${load.errors} errors`);
    }
    const progressMemory = (await processMemory(serverPid))!;

    const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
    print(`== ${backendName}`);
    if (PARTS.has("rounds")) {
      const api_ = stats(figures.api);
      const cli = stats(figures.cli);
      const inline = stats(figures.inline);
      const overhead = (against: number) => `${(((api_.median - against) / against) * 100).toFixed(1)}%`;
      print(`tenant up (8 resources), ${ROUNDS} rounds, destroyed between rounds`);
      print(`seconds: median / min / max`);
      print(`  API (POST run -> succeeded)          ${seconds(api_.median)} / ${seconds(api_.min)} / ${seconds(api_.max)}`);
      print(
        `    of which queued (requested->started) median ${seconds(stats(apiQueueWait).median)}, executing median ${seconds(stats(apiExecution).median)}`,
      );
      print(
        `    executing: before the first engine event (tenant config, stack select, config set) median ${seconds(stats(phases.setup).median)}, ` +
          `first -> last event recorded ${seconds(stats(phases.engine).median)}, last event -> run finished ${seconds(stats(phases.finish).median)}`,
      );
      print(`  CLI (pulumi up --yes --skip-preview)  ${seconds(cli.median)} / ${seconds(cli.min)} / ${seconds(cli.max)}`);
      print(`  Automation API in-process (inline)    ${seconds(inline.median)} / ${seconds(inline.min)} / ${seconds(inline.max)}`);
      print(`ratio API / CLI:        ${(api_.median / cli.median).toFixed(3)}  (API overhead ${overhead(cli.median)})`);
      print(`ratio API / Automation: ${(api_.median / inline.median).toFixed(3)}  (API overhead ${overhead(inline.median)}; target: ratio <= 1.15)`);
    }
    print(`${CONCURRENT_TENANTS} tenants' up at once through the API: ${concurrentSeconds.toFixed(2)} s, all succeeded`);
    print(
      `  service process: VmRSS ${mib(serverBefore.rssKiB)} before, VmHWM ${mib(serverAfter.hwmKiB)} after (peak of the process; target <= 350 MiB)`,
    );
    print(`  service + pulumi children, summed VmRSS sampled every 100 ms: peak ${mib(peakTreeKiB)} over ${peakProcesses} processes`);
    print(`  largest child process (pulumi CLI / provider plugin) VmHWM: ${mib(peakChildHwmKiB)}`);
    print(`service process memory (own VmRSS; CLI children and the database server excluded):`);
    print(
      `  idle after start-up ${mib(idle.rssKiB)} (target <= 200 MiB); idle after the runs ${mib(idleAfter.rssKiB)}` +
        (load ? `; after the progress load ${mib(progressMemory.rssKiB)}` : ""),
    );
    print(`  peak (VmHWM, whole life of the process, 4 concurrent ups included) ${mib(progressMemory.hwmKiB)}`);
    if (paced && load) {
      print(`GET progress, tenant with ${PROGRESS_ASSETS} assets, ${PROGRESS_RATE} req/s for ${PROGRESS_SECONDS} s on loopback:`);
      print(
        `  paced (one request every ${1000 / PROGRESS_RATE} ms, open loop; bench/paced-load.ts): ${paced.requests} requests at ${paced.rate}/s, ` +
          `latency p50 ${paced.latency.p50} ms, p90 ${paced.latency.p90} ms, p99 ${paced.latency.p99} ms (target <= 25 ms), max ${paced.latency.max} ms`,
      );
      print(
        `  autocannon (overallRate ${PROGRESS_RATE}, 20 connections: each second's requests in bursts): ${load.requests.total} requests, ` +
          `latency p50 ${load.latency.p50} ms, p90 ${load.latency.p90} ms, p99 ${load.latency.p99} ms, max ${load.latency.max} ms`,
      );
    }
    if (database === "embedded") await sql.end();
  } finally {
    await service?.close();
  }
  return lines;
}

/** The URL of the embedded server the service started under its DATA_DIR (db/embedded-server.ts, database mini_xdr). */
async function embeddedDatabaseUrl(dataDir: string): Promise<string> {
  const dir = join(dataDir, "postgres");
  const password = (await readFile(join(dir, "password"), "utf8")).trim();
  const port = (await readFile(join(dir, "port"), "utf8")).trim();
  return `postgres://postgres:${password}@127.0.0.1:${port}/mini_xdr`;
}

async function serverUrl(): Promise<string> {
  const given = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (given) return given;
  const { stdout } = await promisify(execFile)("bash", [join(REPO_ROOT, "scripts", "postgres.sh"), "start"], { cwd: REPO_ROOT });
  return stdout.trim();
}

const backends = (process.env.BENCH_BACKENDS ?? "embedded,server").split(",");
// This process's Automation API writes its CLI launcher once, under the first PULUMI_HOME it is given
// (automation/cli-launcher.ts): one home for every measure, outliving each measure's workspace.
const automationHome = await mkdtemp(join(tmpdir(), "mxdr-bench-pulumi-home-"));
const teardown = await setupHarness();
const report: string[] = [];
try {
  if (backends.includes("embedded")) report.push(...(await measure("embedded PostgreSQL (the default, under DATA_DIR)", "embedded")));
  if (backends.includes("server")) {
    process.env.TEST_DATABASE_URL = await serverUrl();
    report.push(...(await measure("PostgreSQL server (DATABASE_URL; a scratch database)", "scratch")));
  }
} finally {
  await teardown();
  await rm(automationHome, { recursive: true, force: true });
}
console.log(report.join("\n"));
