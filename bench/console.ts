/**
 * The web console's weight and speed on loopback (issue 11): prints
 *
 *   1. the page's JavaScript: each module of console/client as served (gzip level 9, the bytes the browser receives
 *      with Accept-Encoding: gzip, checked against the server's answer), and the total against the 150 KB budget;
 *   2. time to first render: first contentful paint of GET / (the sign-in page, no script needed), sign-in (the
 *      invitation page's button) to the quick start screen, and the assets screen with 10,000 assets until its rows are on screen; median / min / max
 *      over BENCH_ROUNDS (default 5) fresh tabs.
 *
 * Chromium: Debian's /usr/bin/chromium (CHROMIUM_PATH) through playwright-core. The service runs as a process on
 * 127.0.0.1 with a scratch database on the PostgreSQL server of DATABASE_URL (or scripts/postgres.sh's, started
 * here), so the 10,000 assets can be written straight into it.
 *
 *   npm run bench:console
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { CONSOLE_CLIENT_DIR } from "../console/console-router";
import { CHROMIUM, CHROMIUM_OPTIONS, reachLoopbackOnly } from "../test/harness/console-browser";
import { REPO_ROOT } from "../test/harness/moto";
import { startServiceUnderTest } from "../test/harness/service-under-test";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ASSETS = 10_000;
const BUDGET_BYTES = 150 * 1024;
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const ms = (value: number) => `${value.toFixed(0)} ms`;

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return `median ${ms(sorted[Math.floor(sorted.length / 2)]!)}, min ${ms(sorted[0]!)}, max ${ms(sorted.at(-1)!)}`;
}

process.env.TEST_DATABASE_URL ??=
  process.env.DATABASE_URL ??
  execFileSync("bash", [join(REPO_ROOT, "scripts", "postgres.sh"), "start"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();

const service = await startServiceUnderTest({ name: "bench_console", platformPrincipalArn: null });
const { call, sql } = service;
const userDataDir = await mkdtemp(join(tmpdir(), "mxdr-bench-chromium-"));
try {
  const baseUrl = service.server.baseUrl;

  // 1. JavaScript size, as served.
  console.log("console JavaScript (gzip, as served):");
  let total = 0;
  for (const name of (await readdir(CONSOLE_CLIENT_DIR)).filter((file) => file.endsWith(".js")).sort()) {
    const gzipped = gzipSync(await readFile(join(CONSOLE_CLIENT_DIR, name)), { level: 9 }).length;
    const served = await fetch(`${baseUrl}/console/${name}`, { headers: { "accept-encoding": "gzip" } });
    const wire = (await served.arrayBuffer()).byteLength;
    // fetch() decodes gzip, so compare with the header's length when present.
    const length = Number(served.headers.get("content-length") ?? wire);
    if (served.headers.get("content-encoding") !== "gzip" || length !== gzipped)
      throw new Error(`${name}: served ${length} bytes, expected ${gzipped} gzipped`);
    total += gzipped;
    console.log(`  ${name.padEnd(20)} ${kib(gzipped)}`);
  }
  console.log(`  total                ${kib(total)} (budget ${kib(BUDGET_BYTES)}: ${total < BUDGET_BYTES ? "within" : "OVER"})`);

  // A tenant with 10,000 assets.
  const slug = `bench-${randomBytes(3).toString("hex")}`;
  const created = await call("POST", "/v1/tenants", {
    body: { slug, name: "Bench Corp", integration_settings: { regions: ["us-east-1"], home_region: "us-east-1" } },
  });
  if (created.status !== 201) throw new Error(created.text);
  const [org] = await sql<{ id: number }[]>`select id from organizations where slug = ${slug}`;
  const priorities = ["critical", "high", "medium", "low"];
  for (let start = 0; start < ASSETS; start += 1000) {
    const rows = Array.from({ length: 1000 }, (_, k) => {
      const i = start + k;
      return {
        organization_id: org!.id,
        provider: "aws",
        asset_type: "ec2",
        asset_id: `i-${i.toString(16).padStart(17, "0")}`,
        region: ["us-east-1", "eu-west-1"][i % 2]!,
        asset_data: { platform: "linux" },
        tags: { Name: `host-${i}` },
        agent_compatible: true,
        priority: priorities[i % 4]!,
        agent_status: "pending",
      };
    });
    await sql`insert into cloud_assets ${sql(rows)}`;
  }

  // 2. Time to first render.
  const context = await chromium.launchPersistentContext(userDataDir, CHROMIUM_OPTIONS);
  const blocked: string[] = [];
  await reachLoopbackOnly(context, blocked);
  const fcp: number[] = [];
  const signIn: number[] = [];
  const assets: number[] = [];
  try {
    for (let round = 0; round < ROUNDS + 1; round++) {
      await context.clearCookies();
      const page = await context.newPage();
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${baseUrl}/`);
      const paint = await page.evaluate(
        () =>
          new Promise<number>((resolve) => {
            const entry = performance.getEntriesByName("first-contentful-paint")[0];
            if (entry) return resolve(entry.startTime);
            new PerformanceObserver((list) => resolve(list.getEntries()[0]!.startTime)).observe({ type: "paint", buffered: true });
          }),
      );
      // The tenant's admin signs in as people do: an invitation link, its page, its one button.
      const invited = await call("POST", `/v1/tenants/${slug}/invitations`, { body: { email: `admin-${round}@bench.example`, role: "admin" } });
      if (invited.status !== 201) throw new Error(invited.text);
      await page.goto(invited.body.link);
      const t0 = Date.now();
      await page.getByRole("button", { name: "Accept and sign in" }).click();
      await page.locator("#screen-title").waitFor();
      const t1 = Date.now();
      await page.getByRole("button", { name: "Assets", exact: true }).click();
      await page.locator(".table-count", { hasText: `${ASSETS} rows` }).waitFor({ timeout: 60_000 });
      await page.locator("tbody tr[data-row-key]").first().waitFor();
      const t2 = Date.now();
      // The first round warms the server (database connections, module cache); it is not counted.
      if (round > 0) {
        fcp.push(paint);
        signIn.push(t1 - t0);
        assets.push(t2 - t1);
      }
      await page.close();
    }
  } finally {
    await context.close();
  }
  if (blocked.length > 0) throw new Error(`the browser tried to reach beyond 127.0.0.1: ${blocked.join(", ")}`);
  console.log(`time to first render on loopback, ${ROUNDS} rounds (Chromium ${CHROMIUM}):`);
  console.log(`  sign-in page, first contentful paint     ${stats(fcp)}`);
  console.log(`  sign in -> quick start on screen         ${stats(signIn)}`);
  console.log(`  assets screen, ${ASSETS} rows -> rows on screen ${stats(assets)}`);
} finally {
  await service.close();
  await rm(userDataDir, { recursive: true, force: true });
}
