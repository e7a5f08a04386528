/**
 * The service entry: reads the configuration once (config/service-config.ts), opens the database
 * (migrations applied), registers the first admin token, recovers runs a crash interrupted, starts
 * the queues (stack runs, discovery), builds the app and serves it on HOST:PORT. SIGTERM / SIGINT
 * close the listener and stop the queues: running stack operations get SHUTDOWN_GRACE_SECONDS to finish, the rest
 * are cancelled and their runs marked interrupted (services/run/shutdown-interrupt.ts); then the database (the
 * embedded server too) is closed and the process exits.
 */
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { automationSettingsSchema, checkPulumiCli, pickCliEnvironment } from "../automation";
import { openDatabase } from "../db/client";
import { connectionBudgetProblem, livenessPoolSize, sameServer, serverConnectionLimits } from "../db/connection-budget";
import { runTimeoutsOf } from "../services/run/run-timeouts";
import { createLockConnections } from "../services/core/run-liveness";
import { failAbandonedScans, startScanQueue, type ScanQueue } from "../services/discovery/scan-queue";
import { loadIdentityTrust, loadServiceConfig, REPO_ROOT, retentionPolicyOf, ServiceConfigError, SHUTDOWN_CANCEL_WINDOW_SECONDS } from "../platform/config";
import { startRetention } from "../services/retention/retention";
import { startBoss } from "../db/boss";
import { resolveStateBackend } from "../automation/state-backend";
import { recoverInterruptedRuns, startRecoverySweep } from "../services/run/recovery";
import { startRunQueue } from "../services/run/run-queue";
import { interruptExecutingRuns } from "../services/run/shutdown-interrupt";
import { createRunPlanStore } from "../services/run/run-plan-store";
import { onboardingLifecycle } from "../services/tenant/onboarding-lifecycle";
import { driftFollowUp, startDriftSchedule } from "../services/fleet/drift";
import { startFleetCoordinator, type FleetCoordinator } from "../services/fleet/fleet-coordinator";
import { notifyRunFinished } from "../services/core/notification-events";
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
import { ensureBootstrapAdmin, writeAdminTokenFile } from "./bootstrap-admin";

/** Before the logger exists (bad configuration, a failed start). */
const writeStderr = (message: string) => process.stderr.write(`${message}\n`);

async function main(): Promise<void> {
  const config = loadServiceConfig(process.env);
  const identityTrust = await loadIdentityTrust(config);
  const logger = createLogger(config.LOG_LEVEL);
  const log = (message: string) => logger.info({}, message);
  const warn = (message: string) => logger.warn({}, message);
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, poolMax: config.DATABASE_POOL_MAX, log });
  const backendUrl = await resolveStateBackend(config.PULUMI_BACKEND_URL, database.connectionString);
  // A configuration whose connections the server cannot hold is refused here, before anything waits on a full pool.
  const tooMany = connectionBudgetProblem(
    { ...config, stateOnSameServer: /^postgres(ql)?:\/\//.test(backendUrl) && sameServer(backendUrl, database.connectionString) },
    await serverConnectionLimits(database.sql),
  );
  if (tooMany) {
    await database.close();
    throw new ServiceConfigError([{ variable: "MAX_CONCURRENT_RUNS, DATABASE_POOL_MAX", message: tooMany }]);
  }
  const keyring = await loadCredentialsKeyring(database.db, config, log);

  let adminTokenFile: string | undefined;
  const bootstrap = await ensureBootstrapAdmin(database.db, config.ADMIN_TOKEN, async (token) => {
    adminTokenFile = await writeAdminTokenFile(config.DATA_DIR, token);
  });
  if (adminTokenFile) {
    logger.warn(
      { event: "admin_token.generated", file: adminTokenFile },
      "no ADMIN_TOKEN was set and no admin token existed: generated one into the named file (mode 600); only its hash is stored",
    );
  }

  if (bootstrap?.revokedTokenIds.length) log(`ADMIN_TOKEN changed: revoked the earlier one(s), token ${bootstrap.revokedTokenIds.join(", ")}`);
  if (bootstrap?.adminTokenRevoked) log("warning: ADMIN_TOKEN names a revoked token, which is refused: set a new ADMIN_TOKEN");

  const automation = automationSettingsSchema.parse({
    projectDir: config.PULUMI_PROJECT_DIR,
    backendUrl,
    secretsProvider: config.PULUMI_SECRETS_PROVIDER,
    passphrase: config.PULUMI_CONFIG_PASSPHRASE,
    pulumiRoot: join(REPO_ROOT, ".tools"),
    pulumiHome: join(config.DATA_DIR, "pulumi-home"),
    // The CLI and its plugins get an allowlist of this environment, never the service's secrets.
    environment: pickCliEnvironment(process.env, config.PULUMI_CLI_ENV_PASSTHROUGH),
  });
  const metrics = createMetrics(opsFigures(database.db));
  const telemetry = { log: logger, metrics };
  const platform = {
    platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN,
    platformAccountIds: config.PLATFORM_ACCOUNT_IDS,
    agentVersion: config.AGENT_VERSION,
  };
  // A session advisory lock per executing run tells live runs from crashed ones (services/core/run-liveness.ts). They
  // are held on connections of their own, never taken from the pool that serves requests.
  const liveness = createLockConnections(database.connectionString, { max: livenessPoolSize(config) });
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
      timeoutSeconds: runTimeoutsOf(config),
      stopGraceSeconds: config.RUN_STOP_GRACE_SECONDS,
    },
    { connectionString: database.connectionString, boss, maxConcurrentRuns: config.MAX_CONCURRENT_RUNS, work: config.RUN_WORKER, listen: database.sql },
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
  fleetCoordinator = startFleetCoordinator({ db: database.db, locks: liveness, runs: () => runService!, log }, { work: config.RUN_WORKER });
  const webhookDispatcher = await startWebhookDispatcher(
    boss,
    { db: database.db, keyring, log },
    {
      work: config.RUN_WORKER,
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
      baseDelaySeconds: config.WEBHOOK_RETRY_BASE_SECONDS,
      maxDelaySeconds: config.WEBHOOK_RETRY_MAX_SECONDS,
      platformLoopback: config.WEBHOOK_PLATFORM_ALLOW_LOOPBACK,
      concurrency: config.WEBHOOK_MAX_CONCURRENT_DELIVERIES,
      perHostConcurrency: config.WEBHOOK_MAX_CONCURRENT_PER_HOST,
      perTenantConcurrency: config.WEBHOOK_MAX_CONCURRENT_PER_TENANT,
      timeoutMs: config.WEBHOOK_TIMEOUT_SECONDS * 1000,
      connectTimeoutMs: config.WEBHOOK_CONNECT_TIMEOUT_SECONDS * 1000,
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
      warn,
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
    webhooks: { platformLoopback: config.WEBHOOK_PLATFORM_ALLOW_LOOPBACK, maxPerTenant: config.WEBHOOK_MAX_PER_TENANT },
    platform,
    verifyBootstrapRole: verifyBootstrapRoleWithSts,
    runQueue,
    scanQueue,
    database,
    keyring,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    eventStreamMaxSeconds: config.EVENT_STREAM_MAX_SECONDS,
    log,
    warn,
    observability: telemetry,
    credentialRotation: () => credentialRotation,
    identityTrust,
    limits: {
      maxQueuedRunsPerTenant: config.MAX_QUEUED_RUNS_PER_TENANT,
      maxEventStreamsPerTenant: config.MAX_EVENT_STREAMS_PER_TENANT,
      authFailureLimit: config.AUTH_FAILURE_LIMIT,
      authFailureWindowSeconds: config.AUTH_FAILURE_WINDOW_SECONDS,
      trustedProxyHops: config.TRUSTED_PROXY_HOPS,
    },
  });

  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (info) => {
    const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
    // The one stdout line: tests and scripts read the URL from it.
    const tokenNote = adminTokenFile ? `; the first admin token is in ${adminTokenFile}` : "";
    process.stdout.write(`listening on http://${host}:${info.port} (database: ${database.backend}${tokenNote})\n`);
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const graceMs = config.SHUTDOWN_GRACE_SECONDS * 1000;
    const cancelWindowMs = SHUTDOWN_CANCEL_WINDOW_SECONDS * 1000;
    log(`${signal}: shutting down: no new jobs; running stack operations get ${config.SHUTDOWN_GRACE_SECONDS} s to finish`);
    // A last resort only: everything below is bounded by the grace period and the cancel window.
    const force = setTimeout(() => {
      log("shutdown timed out; exiting");
      logger.flush();
      process.exit(1);
    }, graceMs + cancelWindowMs + 30_000);
    force.unref();
    let code = 0;
    try {
      server.close();
      // Idle keep-alive connections would hold the listener open.
      (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      await sweep?.stop();
      await fleetCoordinator?.stop();
      await webhookDispatcher.stop();
      // Every queue stops taking jobs; the ones running (stack operations, scans) get the grace period.
      await boss.stop({ graceful: true, timeout: graceMs, close: false });
      await interruptExecutingRuns(database.db, automation, runQueue.executing(), { cancelWindowMs, log });
      await runQueue.stop().catch(() => undefined);
      await boss.stop({ close: true }).catch(() => undefined);
      await liveness.end().catch(() => undefined);
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      await database.close();
    } catch (error) {
      code = 1;
      log(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      logger.flush();
      process.exit(code);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  if (error instanceof ServiceConfigError) writeStderr(error.message);
  else writeStderr(`failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
