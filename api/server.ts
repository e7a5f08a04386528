/**
 * The service entry: reads the configuration once (config/service-config.ts), opens the database
 * (migrations applied), registers the first admin token, recovers runs a crash interrupted, starts
 * the queues (stack runs, discovery), builds the app and serves it on HOST:PORT. SIGTERM / SIGINT
 * close the listener, stop the queues (letting running operations finish), close the database, and exit.
 */
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { automationSettingsSchema, resolvePulumiCli } from "../automation";
import { createKeyring } from "../db/crypto";
import { openDatabase } from "../db/client";
import { failAbandonedScans, startScanQueue, type ScanQueue } from "../services/discovery/scan-queue";
import { loadServiceConfig, REPO_ROOT, resolveCredentialsKey, ServiceConfigError } from "../lib/config";
import { startBoss } from "../lib/boss";
import { resolveStateBackend } from "../lib/state-backend";
import { recoverInterruptedRuns } from "../services/run/recovery";
import { startRunQueue } from "../services/run/run-queue";
import { onboardingLifecycle } from "../services/tenant/onboarding-lifecycle";
import { resolveTenantConfig } from "../services/run/tenant-stack-config";
import { verifyBootstrapRoleWithSts } from "../services/integration/verify-bootstrap-role";
import { createApp } from "./app";
import { ensureBootstrapAdmin } from "./bootstrap-admin";

const log = (message: string) => process.stderr.write(`${message}\n`);

async function main(): Promise<void> {
  const config = loadServiceConfig(process.env);
  const key = await resolveCredentialsKey(config, log);
  const keyring = createKeyring({ key: key.key });
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, log });

  const bootstrap = await ensureBootstrapAdmin(database.db, config.ADMIN_TOKEN);
  if (bootstrap?.generatedToken) {
    log(
      `\n  No ADMIN_TOKEN was set and no admin token existed: generated one. It is shown ONCE, only its hash is stored:\n\n` +
        `    ${bootstrap.generatedToken}\n\n`,
    );
  }

  const automation = automationSettingsSchema.parse({
    projectDir: config.PULUMI_PROJECT_DIR,
    backendUrl: await resolveStateBackend(config.PULUMI_BACKEND_URL, database.connectionString),
    secretsProvider: config.PULUMI_SECRETS_PROVIDER,
    passphrase: config.PULUMI_CONFIG_PASSPHRASE,
    pulumiRoot: join(REPO_ROOT, ".tools"),
    pulumiHome: join(config.DATA_DIR, "pulumi-home"),
    plansDir: join(config.DATA_DIR, "plans"),
  });
  const platform = { platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN, agentVersion: config.AGENT_VERSION };
  // A session advisory lock per executing run tells live runs from crashed ones (services/run/run-liveness.ts).
  const liveness = database.sql;
  const boss = await startBoss(database.connectionString, log);

  // A worker checks the pinned CLI once, at start-up: a missing toolchain stops here with one clear message.
  const cli = config.RUN_WORKER ? await resolvePulumiCli(automation) : undefined;
  const recovered = await recoverInterruptedRuns(database.db, automation, { liveness, boss, log });
  if (recovered.length > 0) log(`recovery: marked ${recovered.length} interrupted run(s): ${recovered.join(", ")}`);
  await failAbandonedScans(database.db);

  let scanQueue: ScanQueue | undefined;
  const lifecycle = onboardingLifecycle({ db: database.db, keyring, automation, scans: () => scanQueue! });
  const runQueue = await startRunQueue(
    database.db,
    {
      db: database.db,
      automation,
      cli,
      tenantConfig: (organizationId) => resolveTenantConfig(database.db, keyring, platform, organizationId),
      liveness,
      onRunFinished: lifecycle.onRunFinished,
      log,
    },
    { connectionString: database.connectionString, boss, maxConcurrentRuns: config.MAX_CONCURRENT_RUNS, work: config.RUN_WORKER },
  );
  scanQueue = await startScanQueue(
    boss,
    { db: database.db, keyring, onScanFinished: lifecycle.onScanFinished, log },
    { work: config.RUN_WORKER, schedule: config.DISCOVERY_SCHEDULE },
  );

  const app = createApp({
    platform,
    plansDir: automation.plansDir!,
    verifyBootstrapRole: verifyBootstrapRoleWithSts,
    runQueue,
    scanQueue,
    database,
    keyring,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    bootstrapTemplateUrl: config.BOOTSTRAP_TEMPLATE_URL,
    platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN,
    log,
  });

  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (info) => {
    const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
    // The one stdout line: tests and scripts read the URL from it.
    process.stdout.write(`listening on http://${host}:${info.port} (database: ${database.backend})\n`);
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    const force = setTimeout(() => {
      log("shutdown timed out; exiting");
      process.exit(1);
    }, 10_000);
    force.unref();
    server.close(async () => {
      try {
        await boss.stop({ graceful: true, timeout: 8_000 }).catch(() => undefined);
        await database.close();
      } finally {
        process.exit(0);
      }
    });
    // Idle keep-alive connections would hold close() open.
    (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  if (error instanceof ServiceConfigError) log(error.message);
  else log(`failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
