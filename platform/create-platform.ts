/**
 * The composition root: from the validated configuration, builds the database handle, the keyring, the queues and
 * every service exactly once, in the order their dependencies need, and starts the background work (queue workers,
 * schedules, the fleet coordinator, the recovery sweep). api/server.ts serves what it returns; tests and benches build
 * the same platform.
 *
 * Queues open in two steps: their producer side first (the services request runs and scans through it), their workers
 * last, once what follows a run, a scan or a connect (the onboarding) exists.
 */
import { join } from "node:path";
import {
  automationSettingsSchema,
  checkPulumiCli,
  openTenantStack,
  pickCliEnvironment,
  removeTenantStack,
  StackNotFoundError,
  type AutomationSettings,
} from "../automation";
import { resolveStateBackend } from "../automation/state-backend";
import { startBoss } from "../db/boss";
import { openDatabase, type Database } from "../db/client";
import { connectionBudgetProblem, livenessPoolSize, sameServer, serverConnectionLimits } from "../db/connection-budget";
import type { Keyring } from "../db/crypto";
import { createLogger, type CensoredLogger } from "../lib/logger";
import { createMetrics, type ServiceMetrics } from "../lib/metrics";
import type { Services } from "../services";
import { opsFigures } from "../services/core/ops-figures";
import { createLockConnections } from "../services/core/run-liveness";
import { createDiscoveryService } from "../services/discovery/discovery-service";
import { failAbandonedScans, openScanQueue } from "../services/discovery/scan-queue";
import { driftFollowUp, startDriftSchedule } from "../services/fleet/drift";
import { startFleetCoordinator } from "../services/fleet/fleet-coordinator";
import { createFleetService } from "../services/fleet/fleet-service";
import { createBootstrapLinkService } from "../services/integration/bootstrap-link-service";
import { platformAccountIds } from "../services/integration/bootstrap-role-rules-fns";
import { openBootstrapWaitQueue } from "../services/integration/bootstrap-wait";
import { startCredentialRotation } from "../services/integration/credential-rotation-queue";
import { createCredentialRotationService } from "../services/integration/credential-rotation-service";
import { createBootstrapVersions } from "../services/integration/bootstrap-versions";
import { createIntegrationService } from "../services/integration/integration-service";
import { probeBootstrapRole, verifyBootstrapRoleWithSts } from "../services/integration/verify-bootstrap-role";
import { listOrganization } from "../services/organization/organization-listing";
import { startOrganizationReconcile } from "../services/organization/organization-schedule";
import { createOrganizationService } from "../services/organization/organization-service";
import { createIdentityService } from "../services/identity/identity-service";
import { createInvitationService } from "../services/identity/invitation-service";
import { createSmtpInvitationMailer } from "../services/identity/invitation-mail";
import { createOidcSignIn } from "../services/identity/oidc-sign-in";
import { startWebhookDispatcher } from "../services/notification/webhook-delivery";
import { createWebhookService } from "../services/notification/webhook-service";
import { createOnboardingService } from "../services/onboarding/onboarding-service";
import { statusAroundRunRequest } from "../services/onboarding/onboarding-status-store";
import { startRetention } from "../services/retention/retention";
import { createRolloutService } from "../services/rollout/rollout-service";
import { recoverInterruptedRuns, startRecoverySweep } from "../services/run/recovery";
import { createRunPlanStore } from "../services/run/run-plan-store";
import { openRunQueue } from "../services/run/run-queue";
import { createRunService } from "../services/run/run-service";
import { runTimeoutsOf } from "../services/run/run-timeouts";
import { interruptExecutingRuns } from "../services/run/shutdown-interrupt";
import { resolveTenantConfig } from "../services/run/tenant-stack-config";
import { ensureBootstrapAdmin, writeAdminTokenFile } from "../services/tenant/bootstrap-admin";
import { createTenantService } from "../services/tenant/tenant-service";
import { SHUTDOWN_CANCEL_WINDOW_SECONDS } from "../lib/shutdown";
import { loadIdentityTrust, REPO_ROOT, retentionPolicyOf, ServiceConfigError, type ServiceConfig } from "./config";
import { loadCredentialsKeyring } from "./credentials-keyring";

export interface PlatformOptions {
  /** The environment the Pulumi CLI's allowlist is picked from (PULUMI_CLI_ENV_PASSTHROUGH); default process.env. */
  environment?: NodeJS.ProcessEnv;
}

export interface Platform {
  config: ServiceConfig;
  logger: CensoredLogger;
  log(message: string): void;
  warn(message: string): void;
  database: Database;
  keyring: Keyring;
  services: Services;
  /** Log lines and metrics (run telemetry, the access log, /metrics). */
  observability: { log: CensoredLogger; metrics: ServiceMetrics };
  /** Where the generated first admin token was written, when one was generated at this start. */
  adminTokenFile?: string;
  /** Stops taking work: the fleet, webhooks and queues stop; running stack operations get SHUTDOWN_GRACE_SECONDS, the rest are cancelled. */
  drain(): Promise<void>;
  /** After drain: the queue's and the liveness connections and the database (the embedded server too) are closed. */
  close(): Promise<void>;
}

export async function createPlatform(config: ServiceConfig, options: PlatformOptions = {}): Promise<Platform> {
  const identityTrust = await loadIdentityTrust(config);
  const logger = createLogger(config.LOG_LEVEL);
  const log = (message: string) => logger.info({}, message);
  const warn = (message: string) => logger.warn({}, message);
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, poolMax: config.DATABASE_POOL_MAX, log });
  const { db } = database;
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
  const keyring = await loadCredentialsKeyring(db, config, log);

  let adminTokenFile: string | undefined;
  const bootstrap = await ensureBootstrapAdmin(db, config.ADMIN_TOKEN, async (token) => {
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
    environment: pickCliEnvironment(options.environment ?? process.env, config.PULUMI_CLI_ENV_PASSTHROUGH),
  });
  const observability = { log: logger, metrics: createMetrics(opsFigures(db)) };
  const platform = {
    platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN,
    platformAccountIds: config.PLATFORM_ACCOUNT_IDS,
    agentVersion: config.AGENT_VERSION,
    agentPublicBaseUrl: config.AGENT_PUBLIC_BASE_URL,
  };
  // A session advisory lock per executing run tells live runs from crashed ones (services/core/run-liveness.ts). They
  // are held on connections of their own, never taken from the pool that serves requests.
  const liveness = createLockConnections(database.connectionString, { max: livenessPoolSize(config) });
  const boss = await startBoss(database.connectionString, log);
  const work = config.RUN_WORKER;

  // A worker checks the pinned CLI once, at start-up: a missing toolchain stops here with one clear message. The
  // Automation API itself is loaded with the first run (automation/tenant-stack.ts).
  if (work) await checkPulumiCli(automation);
  const recovered = await recoverInterruptedRuns(db, automation, { liveness, boss, log });
  if (recovered.length > 0) log(`recovery: marked ${recovered.length} interrupted run(s): ${recovered.join(", ")}`);
  await failAbandonedScans(db);

  const timeoutSeconds = runTimeoutsOf(config);
  const runQueue = await openRunQueue(db, {
    connectionString: database.connectionString,
    boss,
    maxConcurrentRuns: config.MAX_CONCURRENT_RUNS,
    work,
    listen: database.sql,
    timeoutSeconds,
    stopGraceSeconds: config.RUN_STOP_GRACE_SECONDS,
  });
  const scanQueue = await openScanQueue(boss, db, { work, schedule: config.DISCOVERY_SCHEDULE });
  const bootstrapWaits = await openBootstrapWaitQueue(boss, { work });
  // Rows sealed under older keys are re-sealed to the current one in the background (a new key at start-up).
  const credentialRotation = await startCredentialRotation(boss, { db, keyring, log }, { work });
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

  const platformAccounts = platformAccountIds(config.PLATFORM_PRINCIPAL_ARN, config.PLATFORM_ACCOUNT_IDS);
  const tenants = createTenantService({ db, platformAccounts });
  const integrations = createIntegrationService({
    db,
    keyring,
    verifyBootstrapRole: verifyBootstrapRoleWithSts,
    platformAccounts,
    platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN,
    bootstrapLinks,
    bootstrapWaits,
    bootstrapWaitSeconds: config.BOOTSTRAP_WAIT_SECONDS,
    warn,
  });
  const runs = createRunService({
    db,
    keyring,
    platform,
    queue: runQueue,
    aroundRequest: statusAroundRunRequest(db),
    maxQueuedRunsPerTenant: config.MAX_QUEUED_RUNS_PER_TENANT,
    holdFor: (org, kind) => bootstrapVersions.holdFor(org, kind),
  });
  const bootstrapVersions = createBootstrapVersions({ db, keyring, links: bootstrapLinks, releaseHeldRuns: (id) => runs.releaseHeld(id) });
  const organizationAccounts = createOrganizationService({
    db,
    keyring,
    runs,
    checkRole: (check) => probeBootstrapRole(verifyBootstrapRoleWithSts, { ...check, region: "us-east-1" }),
    listOrganization,
    removeStack: (stackName) => removeStack(automation, stackName),
    platformAccounts,
    maxAccountsPerTenant: config.MAX_ACCOUNTS_PER_TENANT,
    log,
  });
  const fleetCoordinator = startFleetCoordinator({ db, locks: liveness, runs, log }, { work });
  const onboarding = createOnboardingService({
    db,
    keyring,
    automation,
    tenants,
    integrations,
    runs,
    scans: scanQueue,
    drift: driftFollowUp({ db, runs, log }),
    fleet: fleetCoordinator,
    organizations: organizationAccounts,
    log,
  });
  const identity = createIdentityService({
    db,
    policy: { idleSeconds: config.SESSION_IDLE_SECONDS, absoluteSeconds: config.SESSION_ABSOLUTE_SECONDS },
    signInLinkSeconds: config.SIGN_IN_LINK_SECONDS,
  });
  const services: Services = {
    tenants,
    integrations,
    bootstrapVersions,
    runs,
    onboarding,
    organizations: organizationAccounts,
    discovery: createDiscoveryService({ db, scans: scanQueue }),
    rollout: createRolloutService({ db, keyring, identityTrust, onRolloutChanged: onboarding.afterRolloutChange }),
    fleet: createFleetService({ db }),
    credentialRotation: createCredentialRotationService({ db, keyring, rotation: credentialRotation }),
    identity,
    invitations: createInvitationService({
      db,
      identity,
      mailer: config.SMTP_URL ? createSmtpInvitationMailer({ smtpUrl: config.SMTP_URL, from: config.SMTP_FROM }) : undefined,
      publicUrl: config.PUBLIC_URL,
      invitationSeconds: config.INVITATION_SECONDS,
      maxMembers: config.MAX_MEMBERS_PER_TENANT,
      maxPendingInvitations: config.MAX_PENDING_INVITATIONS_PER_TENANT,
    }),
    singleSignOn:
      config.OIDC_ISSUER_URL && config.OIDC_CLIENT_ID && config.OIDC_CLIENT_SECRET
        ? createOidcSignIn({
            issuerUrl: config.OIDC_ISSUER_URL,
            clientId: config.OIDC_CLIENT_ID,
            clientSecret: config.OIDC_CLIENT_SECRET,
            providerName: config.OIDC_PROVIDER_NAME,
            scopes: config.OIDC_SCOPES,
            operatorClaim: config.OIDC_OPERATOR_CLAIM,
            operatorValues: config.OIDC_OPERATOR_VALUES,
          })
        : undefined,
    webhooks: createWebhookService({
      db,
      keyring,
      platformLoopback: config.WEBHOOK_PLATFORM_ALLOW_LOOPBACK,
      maxPerTenant: config.WEBHOOK_MAX_PER_TENANT,
    }),
  };

  // The workers last: what follows a run, a scan and a connect exists now.
  await runQueue.work({
    db,
    automation,
    tenantConfig: (run) => resolveTenantConfig(db, keyring, platform, run.organizationId, run.awsAccountId),
    plans: createRunPlanStore(db, keyring),
    liveness,
    onRunFinished: onboarding.afterRun,
    log,
    telemetry: observability,
    timeoutSeconds,
    stopGraceSeconds: config.RUN_STOP_GRACE_SECONDS,
  });
  await scanQueue.work({ db, keyring, onScanFinished: onboarding.afterScan, log, telemetry: observability });
  await bootstrapWaits.work({
    db,
    keyring,
    verifyBootstrapRole: verifyBootstrapRoleWithSts,
    onConnected: onboarding.afterConnect,
    onTimedOut: onboarding.afterBootstrapTimeout,
    log,
    warn,
  });
  // Runs of a replica that died while this one runs: recovered here, without waiting for a restart.
  const sweep = work
    ? startRecoverySweep(db, automation, {
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
  const webhookDispatcher = await startWebhookDispatcher(
    boss,
    { db, keyring, log },
    {
      work,
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
  const organizationSchedule = startOrganizationReconcile(organizationAccounts, {
    intervalMs: config.ORGANIZATION_RECONCILE_SECONDS * 1000,
    work,
    log,
    after: onboarding.afterAccountsChanged,
  });
  await startDriftSchedule(boss, { db, log }, { schedule: config.DRIFT_SCHEDULE, maxConcurrency: config.DRIFT_MAX_CONCURRENCY, work });
  await startRetention(boss, { db, log }, { schedule: config.RETENTION_SCHEDULE, policy: retentionPolicyOf(config), work });

  return {
    config,
    logger,
    log,
    warn,
    database,
    keyring,
    services,
    observability,
    adminTokenFile,
    async drain() {
      const graceMs = config.SHUTDOWN_GRACE_SECONDS * 1000;
      await sweep?.stop();
      await organizationSchedule.stop();
      await fleetCoordinator.stop();
      await webhookDispatcher.stop();
      // Every queue stops taking jobs; the ones running (stack operations, scans) get the grace period.
      await boss.stop({ graceful: true, timeout: graceMs, close: false });
      await interruptExecutingRuns(db, automation, runQueue.executing(), { cancelWindowMs: SHUTDOWN_CANCEL_WINDOW_SECONDS * 1000, log });
      await runQueue.stop().catch(() => undefined);
    },
    async close() {
      await boss.stop({ close: true }).catch(() => undefined);
      await liveness.end().catch(() => undefined);
      await database.close();
    },
  };
}

/** An offboarded account's stack, gone from the backend (its resources were destroyed by then). */
async function removeStack(automation: AutomationSettings, stackName: string): Promise<void> {
  try {
    await removeTenantStack(await openTenantStack(automation, stackName, { create: false }));
  } catch (error) {
    if (!(error instanceof StackNotFoundError)) throw error;
  }
}
