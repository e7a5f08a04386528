/**
 * Times a tenant's onboarding `up` and offboarding `destroy` through the Automation API with the real Pulumi CLI,
 * against the moto server behind the test harness's stand-in AWS provider (offline; loopback only).
 * Run: npm run bench:stack   (after scripts/toolchain.sh; prints one line per measured operation)
 */
import { performance } from "node:perf_hooks";
import {
  configureTenantStack,
  destroyTenantStack,
  openTenantStack,
  stackNameFor,
  previewTenantStack,
  removeTenantStack,
  upTenantStack,
} from "../automation";
import { miniCorpTenantConfig } from "../test/fixtures/tenant-config";
import setupHarness from "../test/harness/global-setup";
import { temporaryAutomationSettings } from "../test/harness/pulumi-project";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const result = await work();
  return [(performance.now() - start) / 1000, result];
}

const teardown = await setupHarness();
try {
  const settings = await temporaryAutomationSettings();
  const figures: Record<string, number[]> = { preview: [], up: [], "up (no changes)": [], destroy: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const config = miniCorpTenantConfig({ tenantSlug: `bench-${round}` });
    const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: true });
    await configureTenantStack(stack, config);
    figures.preview!.push((await timed(() => previewTenantStack(stack)))[0]);
    const [upSeconds, up] = await timed(() => upTenantStack(stack));
    if (up.changeSummary.create !== 8) throw new Error(`unexpected up summary ${JSON.stringify(up.changeSummary)}`);
    figures.up!.push(upSeconds);
    figures["up (no changes)"]!.push((await timed(() => upTenantStack(stack)))[0]);
    figures.destroy!.push((await timed(() => destroyTenantStack(stack)))[0]);
    await removeTenantStack(stack);
  }
  console.log(`tenant stack operations, ${ROUNDS} rounds, 8 resources each (seconds: median / min / max)`);
  for (const [operation, seconds] of Object.entries(figures)) {
    const sorted = [...seconds].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(`${operation.padEnd(16)} ${median.toFixed(2)} / ${sorted[0]!.toFixed(2)} / ${sorted.at(-1)!.toFixed(2)}`);
  }
} finally {
  await teardown();
}
