/**
 * The service entry: reads the configuration once (config/service-config.ts), opens the database
 * (migrations applied), registers the first admin token, recovers runs a crash interrupted, starts
 * the queues (stack runs, discovery), builds the app and serves it on HOST:PORT. SIGTERM / SIGINT
 * close the listener, stop the queues (letting running operations finish), close the database, and exit.
 */
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { automationSettingsSchema, checkPulumiCli } from "../automation";
import { openDatabase } from "../db/client";
import { failAbandonedScans, startScanQueue, type ScanQueue } from "../services/discovery/scan-queue";
import { loadServiceConfig, REPO_ROOT, retentionPolicyOf, ServiceConfigError } from "../lib/config";
import { startRetention } from "../services/retention/retention";
import { startBoss } from "../lib/boss";
import { resolveStateBackend } from "../lib/state-backend";
import { recoverInterruptedRuns, startRecoverySweep } from "../services/run/recovery";
import { startRunQueue } from "../services/run/run-queue";
import { createRunPlanStore } from "../services/run/run-plan-store";
import { onboardingLifecycle } from "../services/tenant/onboarding-lifecycle";
import { driftFollowUp, startDriftSchedule } from "../services/fleet/drift";
import { startFleetCoordinator, type FleetCoordinator } from "../services/fleet/fleet-coordinator";
import { notifyRunFinished } from "../services/notification/notification-events";
import { startWebhookDispatcher } from "../services/notification/webhook-delivery";
import type { Run } from "../db/schema";
import { resolveTenantConfig } from "../services/run/tenant-stack-config";
import { createBootstrapLinkService } from "../services/integration/bootstrap-link-service";
import { startBootstrapWaitQueue } from "../services/integration/bootstrap-wait";
import { loadCredentialsKeyring } from "../services/integration/credentials-keyring";
import { startCredentialRotation } from "../services/integration/credential-rotation-queue";
import { verifyBootstrapRoleWithSts } from "../services/integration/verify-bootstrap-role";
import { createRunService, type RunService } from "../services/run/run-service";
import { createLogger } from "../lib/logger";
import { createMetrics } from "../lib/metrics";
import { opsFigures } from "../services/ops-figures";
import { createApp } from "./app";
import { ensureBootstrapAdmin } from "./bootstrap-admin";

/** Before the logger exists (bad configuration), and for the one deliberate display of a generated admin token. */
const writeStderr = (message: string) => process.stderr.write(`${message}\n`);

async function main(): Promise<void> {
  const config = loadServiceConfig(process.env);
  const logger = createLogger(config.LOG_LEVEL);
  const log = (message: string) => logger.info({}, message);
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, log });
  const keyring = await loadCredentialsKeyring(database.db, config, log);

  const bootstrap = await ensureBootstrapAdmin(database.db, config.ADMIN_TOKEN);
  if (bootstrap?.generatedToken) {
    writeStderr(
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
  });
  const metrics = createMetrics(opsFigures(database.db));
  const telemetry = { log: logger, metrics };
  const platform = { platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN, agentVersion: config.AGENT_VERSION };
  // A session advisory lock per executing run tells live runs from crashed ones (services/run/run-liveness.ts).
  const liveness = database.sql;
  const boss = await startBoss(database.connectionString, log);

  // A worker checks the pinned CLI once, at start-up: a missing toolchain stops here with one clear message. The
  // Automation API itself is loaded with the first run (automation/tenant-stack.ts).
  if (config.RUN_WORKER) await checkPulumiCli(automation);
  const recovered = await recoverInterruptedRuns(database.db, automation, { liveness, boss, log });
  if (recovered.length > 0) log(`recovery: marked ${recovered.length} interrupted run(s): ${recovered.join(", ")}`);
  await failAbandonedScans(database.db);

  let scanQueue: ScanQueue | undefined;
  let runService: RunService | undefined;
  const lifecycle = onboardingLifecycle({ db: database.db, keyring, automation, scans: () => scanQueue!, runs: () => runService!, log });
  const drift = driftFollowUp({ db: database.db, runs: () => runService!, log });
  let fleetCoordinator: FleetCoordinator | undefined;
  // What follows a finished run: onboarding moves on, drift is recorded (and remediated), webhooks are told, and
  // a fleet run waiting on it starts its next tenant without waiting for the coordinator's next poll.
  const afterRun = async (run: Run) => {
    await lifecycle.onRunFinished(run);
    await drift.onRunFinished(run);
    await notifyRunFinished(database.db, run);
    if (run.fleetRunId) void fleetCoordinator?.tick().catch(() => undefined);
  };
  const runQueue = await startRunQueue(
    database.db,
    {
      db: database.db,
      automation,
      tenantConfig: (organizationId) => resolveTenantConfig(database.db, keyring, platform, organizationId),
      plans: createRunPlanStore(database.db, keyring),
      liveness,
      onRunFinished: afterRun,
      log,
      telemetry,
    },
    { connectionString: database.connectionString, boss, maxConcurrentRuns: config.MAX_CONCURRENT_RUNS, work: config.RUN_WORKER },
  );
  // Runs of a replica that died while this one runs: recovered here, without waiting for a restart.
  const sweep = config.RUN_WORKER
    ? startRecoverySweep(database.db, automation, {
        liveness,
        boss,
        log,
        intervalMs: config.RECOVERY_SWEEP_SECONDS * 1000,
        onRecovered: (runIds) => {
          for (const runId of runIds) logger.warn({ event: "run.recovered", runId }, "recovered a run whose executor died");
          log(`recovery sweep: marked ${runIds.length} interrupted run(s): ${runIds.join(", ")}`);
        },
      })
    : undefined;
  scanQueue = await startScanQueue(
    boss,
    { db: database.db, keyring, onScanFinished: lifecycle.onScanFinished, log, telemetry },
    { work: config.RUN_WORKER, schedule: config.DISCOVERY_SCHEDULE },
  );

  runService = createRunService({ db: database.db, keyring, platform, queue: () => runQueue });
  fleetCoordinator = startFleetCoordinator({ db: database.db, sql: database.sql, runs: () => runService!, log }, { work: config.RUN_WORKER });
  const webhookDispatcher = await startWebhookDispatcher(
    boss,
    { db: database.db, keyring, log },
    {
      work: config.RUN_WORKER,
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
      baseDelaySeconds: config.WEBHOOK_RETRY_BASE_SECONDS,
      maxDelaySeconds: config.WEBHOOK_RETRY_MAX_SECONDS,
    },
  );
  await startDriftSchedule(boss, { db: database.db, log }, { schedule: config.DRIFT_SCHEDULE, maxConcurrency: config.DRIFT_MAX_CONCURRENCY, work: config.RUN_WORKER });
  await startRetention(boss, { db: database.db, log }, { schedule: config.RETENTION_SCHEDULE, policy: retentionPolicyOf(config), work: config.RUN_WORKER });
  const bootstrapWaits = await startBootstrapWaitQueue(
    boss,
    {
      db: database.db,
      keyring,
      verifyBootstrapRole: verifyBootstrapRoleWithSts,
      onConnected: lifecycle.onAwsConnected,
      onTimedOut: lifecycle.onBootstrapTimedOut,
      log,
    },
    { work: config.RUN_WORKER },
  );
  // Rows sealed under older keys are re-sealed to the current one in the background (a new key at start-up).
  const credentialRotation = await startCredentialRotation(boss, { db: database.db, keyring, log }, { work: config.RUN_WORKER });
  // The quick-create link needs where to publish the template and whom the role trusts; without them it answers 503.
  const bootstrapLinks =
    config.BOOTSTRAP_TEMPLATE_BUCKET && config.PLATFORM_PRINCIPAL_ARN
      ? createBootstrapLinkService({
          // Only when the quick-create link is configured: otherwise the S3 SDK is never loaded.
          s3: new (await import("@aws-sdk/client-s3")).S3Client({ region: config.BOOTSTRAP_TEMPLATE_BUCKET_REGION }),
          publish: { bucket: config.BOOTSTRAP_TEMPLATE_BUCKET, region: config.BOOTSTRAP_TEMPLATE_BUCKET_REGION },
          platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN,
        })
      : undefined;

  const app = createApp({
    bootstrapLinks,
    bootstrapWaits: () => bootstrapWaits,
    bootstrapWaitSeconds: config.BOOTSTRAP_WAIT_SECONDS,
    webhooksAllowHttpLoopback: config.WEBHOOK_ALLOW_HTTP_LOOPBACK,
    platform,
    verifyBootstrapRole: verifyBootstrapRoleWithSts,
    runQueue,
    scanQueue,
    database,
    keyring,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    eventStreamMaxSeconds: config.EVENT_STREAM_MAX_SECONDS,
    log,
    observability: telemetry,
    credentialRotation: () => credentialRotation,
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
      logger.flush();
      process.exit(1);
    }, 10_000);
    force.unref();
    server.close(async () => {
      try {
        await sweep?.stop();
        await fleetCoordinator?.stop();
        await webhookDispatcher.stop();
        await boss.stop({ graceful: true, timeout: 8_000 }).catch(() => undefined);
        await database.close();
      } finally {
        logger.flush();
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
  if (error instanceof ServiceConfigError) writeStderr(error.message);
  else writeStderr(`failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
