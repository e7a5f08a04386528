/**
 * Discovery benchmark (issue 4): seeds a moto server with 5,000 EC2 instances across 16 regions
 * in a tenant account, then measures discovery to the database with the parallel scanner against
 * a sequential region-by-region loop (the seed's approach, i.e. concurrency 1), in one run:
 *
 *   1. straight to moto on loopback (no latency), sequential and parallel;
 *   2. through a delaying HTTP proxy on 127.0.0.1 per region that adds a fixed per-request latency
 *      (60-250 ms, spread over the regions), sequential and parallel;
 *   3. a repeat parallel scan of the unchanged estate, which must write no rows;
 *   4. "AWS-like regions": the delaying proxies record moto's answers during one parallel scan, then
 *      replay them per region after the region's latency without contacting moto (bench/replaying-proxy.ts),
 *      sequential and parallel: moto's serial serving time is excluded, everything else is real.
 *
 * Every mode discovers into its own organization, so each inserts the full estate.
 *
 *   npm run bench:discovery            (the embedded PostgreSQL server in a temp dir)
 *   DATABASE_URL=postgres://... npm run bench:discovery
 *   BENCH_INSTANCES=5000 BENCH_CONCURRENCY=16 npm run bench:discovery
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { openDatabase } from "../db/client";
import { allowServerUser } from "../db/embedded-server";
import { organizations } from "../db/schema";
import { assumeRoleCredentials } from "../services/core/assume-role";
import { discoverTenant, type DiscoverySummary } from "../services/discovery/discover";
import { pointAwsSdkAtMoto, startMoto } from "../test/harness/moto";
import { startDelayProxy, type Proxy as DelayProxy } from "./replaying-proxy";

const REGIONS = [
  "us-east-1",
  "us-east-2",
  "us-west-1",
  "us-west-2",
  "ca-central-1",
  "sa-east-1",
  "eu-west-1",
  "eu-west-2",
  "eu-west-3",
  "eu-central-1",
  "eu-north-1",
  "ap-south-1",
  "ap-northeast-1",
  "ap-northeast-2",
  "ap-southeast-1",
  "ap-southeast-2",
];
const ACCOUNT = "210987654321";
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/MiniXdrAccess-bench`;
const EXTERNAL_ID = "mxdr-ext-bench";
const ROLES = ["domain-controller", "file-server", "web-server", "database", "workstation", "workstation", "honeypot", "build"];
const LINUX_AMI = "ami-760aaa0f";

const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 5000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const MIN_LATENCY_MS = 60;
const MAX_LATENCY_MS = 250;

function latencyFor(index: number): number {
  return Math.round(MIN_LATENCY_MS + ((MAX_LATENCY_MS - MIN_LATENCY_MS) * index) / (REGIONS.length - 1));
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const moto = await startMoto();
  // Configuration at the edge: the SDK reads these; discovery code never does.
  pointAwsSdkAtMoto(moto.endpoint);

  const dataDir = await mkdtemp(join(tmpdir(), "mxdr-bench-"));
  await allowServerUser(dataDir); // as root the embedded server runs as `postgres`
  const database = await openDatabase({ databaseUrl: process.env.DATABASE_URL, dataDir });
  const proxies: DelayProxy[] = [];
  try {
    // Seed: INSTANCES spread evenly over the regions, in the tenant account (assumed-role creds).
    const seedStarted = performance.now();
    const credentials = assumeRoleCredentials({ roleArn: ROLE_ARN, externalId: EXTERNAL_ID, sessionName: "mini-xdr-bench-seed" });
    await Promise.all(
      REGIONS.map(async (region, r) => {
        const ec2 = new EC2Client({ region, credentials });
        let remaining = Math.floor(INSTANCES / REGIONS.length) + (r < INSTANCES % REGIONS.length ? 1 : 0);
        let batch = 0;
        while (remaining > 0) {
          const count = Math.min(remaining, 100);
          const role = ROLES[(r + batch++) % ROLES.length]!;
          await ec2.send(
            new RunInstancesCommand({
              ImageId: LINUX_AMI,
              MinCount: count,
              MaxCount: count,
              InstanceType: "t3.micro",
              TagSpecifications: [
                {
                  ResourceType: "instance",
                  Tags: [
                    { Key: "Role", Value: role },
                    { Key: "xdr:monitor", Value: "true" },
                  ],
                },
              ],
            }),
          );
          remaining -= count;
        }
        ec2.destroy();
      }),
    );
    console.log(`machine: ${cpus().length} CPUs (os.cpus().length)`);
    console.log(`seeded ${INSTANCES} instances across ${REGIONS.length} regions in ${fmt(performance.now() - seedStarted)} (moto ${moto.endpoint})`);

    // Both modes go through a proxy per region (0 ms or the region's latency), so the proxies can
    // also measure how long moto itself took to answer.
    const latencies = REGIONS.map((_, i) => latencyFor(i));
    const direct: DelayProxy[] = [];
    const slow: DelayProxy[] = [];
    for (const [i] of REGIONS.entries()) {
      direct.push(await startDelayProxy(moto.endpoint, 0, REGIONS[i]!));
      slow.push(await startDelayProxy(moto.endpoint, latencies[i]!, REGIONS[i]!));
    }
    proxies.push(...direct, ...slow);
    const undelayed = Object.fromEntries(REGIONS.map((region, i) => [region, direct[i]!.url]));
    const delayed = Object.fromEntries(REGIONS.map((region, i) => [region, slow[i]!.url]));
    console.log(
      `latency proxy: ${MIN_LATENCY_MS}-${MAX_LATENCY_MS} ms added to every request, fixed per region ` +
        `(${REGIONS.map((r, i) => `${r} ${latencies[i]}`).join(", ")})`,
    );

    let orgCounter = 0;
    const run = async (label: string, concurrency: number, endpointsByRegion?: Record<string, string>, organizationId?: number) => {
      const orgId =
        organizationId ??
        (
          await database.db
            .insert(organizations)
            .values({ slug: `bench-${Date.now()}-${orgCounter++}`, name: label, integrationSettings: { regions: REGIONS, homeRegion: "us-east-1" } })
            .returning()
        )[0]!.id;
      for (const proxy of proxies) Object.assign(proxy.stats, { requests: 0, upstreamMs: 0, replayed: 0, misses: 0 });
      const summary = await discoverTenant({
        db: database.db,
        organizationId: orgId,
        roleArn: ROLE_ARN,
        externalId: EXTERNAL_ID,
        concurrency,
        endpointsByRegion,
      });
      const failed = summary.regions.filter((r) => r.status === "failed");
      if (failed.length) throw new Error(`${label}: regions failed: ${JSON.stringify(failed)}`);
      if (summary.assetsFound !== INSTANCES) throw new Error(`${label}: found ${summary.assetsFound}, expected ${INSTANCES}`);
      const rate = summary.written / (summary.storeMs / 1000);
      console.log(
        `  ${label.padEnd(34)} total ${fmt(summary.durationMs).padStart(8)}  scan ${fmt(summary.scanMs).padStart(8)}  ` +
          `store ${fmt(summary.storeMs).padStart(7)}  rows written ${String(summary.written).padStart(5)}  ` +
          `upsert rate ${summary.written ? `${Math.round(rate)} rows/s` : "-"}`,
      );
      const requests = proxies.reduce((n, p) => n + p.stats.requests, 0);
      const motoMs = proxies.reduce((n, p) => n + p.stats.upstreamMs, 0);
      const addedMs = proxies.reduce((n, p) => n + p.stats.requests * p.delayMs, 0);
      const replayed = proxies.reduce((n, p) => n + p.stats.replayed, 0);
      const misses = proxies.reduce((n, p) => n + p.stats.misses, 0);
      if (replayed || misses) {
        const forwarded = requests - replayed - misses;
        console.log(
          `  ${"".padEnd(34)} ${requests} regional requests: ${replayed} replayed, ${forwarded} forwarded to moto, ${misses} not in the recording; ` +
            `latency added ${fmt(addedMs)} (summed)`,
        );
        if (misses || forwarded) throw new Error(`${label}: replay incomplete (${misses} misses, ${forwarded} forwarded)`);
      } else {
        console.log(`  ${"".padEnd(34)} ${requests} regional requests; moto busy ${fmt(motoMs)} (summed), latency added ${fmt(addedMs)} (summed)`);
      }
      return { summary, orgId };
    };
    const report = (name: string, seq: DiscoverySummary, par: DiscoverySummary) =>
      console.log(
        `  => ${name}: sequential ${fmt(seq.durationMs)}, parallel ${fmt(par.durationMs)}, ` +
          `ratio ${(seq.durationMs / par.durationMs).toFixed(1)}x (scan only ${(seq.scanMs / par.scanMs).toFixed(1)}x)`,
      );

    console.log(`\nwithout added latency (loopback straight to moto); parallel bound ${CONCURRENCY}:`);
    // A warm-up scan (moto's first DescribeInstances per region builds caches), not reported.
    await run("warm-up", CONCURRENCY, undelayed);
    const seqFast = await run("sequential (region by region)", 1, undelayed);
    const parFast = await run(`parallel (bound ${CONCURRENCY})`, CONCURRENCY, undelayed);
    report("no latency", seqFast.summary, parFast.summary);

    console.log(`\nwith ${MIN_LATENCY_MS}-${MAX_LATENCY_MS} ms per-request latency per region:`);
    const seqSlow = await run("sequential (region by region)", 1, delayed);
    const parSlow = await run(`parallel (bound ${CONCURRENCY})`, CONCURRENCY, delayed);
    report("with latency", seqSlow.summary, parSlow.summary);
    const repeat = await run("repeat parallel, unchanged estate", CONCURRENCY, delayed, parSlow.orgId);

    const ratio = seqSlow.summary.durationMs / parSlow.summary.durationMs;
    console.log(
      `\ntarget: parallel >= 8x faster with latency: ${ratio >= 8 ? "met" : "NOT met"} (${ratio.toFixed(1)}x); ` +
        `repeat scan writes no rows: ${repeat.summary.written === 0 ? "met" : `NOT met (${repeat.summary.written})`}`,
    );
    console.log(
      `note: moto answers from one Python process (one request at a time in effect), so its own serving time is ` +
        `serial in both modes and bounds the parallel figure from below; AWS serves regions independently.`,
    );

    // 3. AWS-like regions: record moto's answers once (a full parallel scan through the delaying
    //    proxies, not timed), then replay them per region after the region's latency, so each region
    //    is served independently instead of by moto's one process.
    console.log(`\nAWS-like regions: moto's answers recorded once, replayed per region with the latency; parallel bound ${CONCURRENCY}:`);
    for (const proxy of slow) proxy.mode = "record";
    const recordStarted = performance.now();
    await run("recording pass (not compared)", CONCURRENCY, delayed);
    const recordMs = performance.now() - recordStarted;
    for (const proxy of slow) proxy.mode = "replay";
    const entries = slow.reduce((n, p) => n + p.recording.entries, 0);
    const paginated = slow.reduce((n, p) => n + p.recording.paginated, 0);
    const bytes = slow.reduce((n, p) => n + p.recording.bytes, 0);
    console.log(
      `  recorded ${entries} answers (${(bytes / 1e6).toFixed(1)} MB) in ${fmt(recordMs)}; ${paginated} of the recorded requests carried a pagination token`,
    );
    const seqReplay = await run("sequential (region by region)", 1, delayed);
    const parReplay = await run(`parallel (bound ${CONCURRENCY})`, CONCURRENCY, delayed);
    report("AWS-like regions", seqReplay.summary, parReplay.summary);
    // What the latency alone allows: one DescribeRegions round trip in the home region, then per region
    // one round trip (its EC2 and RDS listings run side by side, one page each at this size).
    const homeLatency = latencies[0]!;
    const floorSeq = homeLatency + latencies.reduce((n, l) => n + l, 0);
    const floorPar = homeLatency + Math.max(...latencies);
    console.log(
      `     latency-only bound: sequential >= ${fmt(floorSeq)}, parallel >= ${fmt(floorPar)}, so at most ` +
        `${(floorSeq / floorPar).toFixed(1)}x before STS, SDK parsing and the store, which cost the same in both modes`,
    );
    const replayRatio = seqReplay.summary.durationMs / parReplay.summary.durationMs;
    const replayScanRatio = seqReplay.summary.scanMs / parReplay.summary.scanMs;
    console.log(
      `\ntarget (AWS-like regions): parallel >= 8x faster with latency: ${replayRatio >= 8 ? "met" : "NOT met"} ` +
        `(${replayRatio.toFixed(1)}x total; scan only ${replayScanRatio.toFixed(1)}x, ${replayScanRatio >= 8 ? "met" : "NOT met"})`,
    );
    console.log(
      `note: replay means moto's serving time is excluded: each regional EC2/RDS request is answered from a recording of ` +
        `moto's own answer after the region's fixed latency, without contacting moto, so regions are served independently ` +
        `as AWS serves them. Everything else is real: the latency, the SDK's signing and XML parsing, the STS AssumeRole ` +
        `call (straight to moto, not through the proxies), classification and the database writes (each mode inserts the ` +
        `full estate into a fresh organization). The proxies and the scanner share this Node process (${cpus().length} CPUs).`,
    );
  } finally {
    for (const proxy of proxies) await proxy.close();
    await database.close();
    await moto.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
