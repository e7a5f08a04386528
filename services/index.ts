/** Every domain service, built once from one typed deps object. The API takes this; so can a worker or a test. */
import type { DrizzleDatabase } from "../db/client";
import type { Keyring } from "../db/crypto";
import { createDiscoveryService } from "./discovery/discovery-service";
import type { ScanQueue } from "./discovery/scan-queue";
import { createIntegrationService } from "./integration/integration-service";
import type { BootstrapLinkService } from "./integration/bootstrap-link-service";
import type { BootstrapWaitQueue } from "./integration/bootstrap-wait";
import type { BootstrapRoleVerifier } from "./integration/verify-bootstrap-role";
import { platformAccountIds } from "./integration/bootstrap-role-rules-fns";
import { createCredentialRotationService } from "./integration/credential-rotation-service";
import type { CredentialRotationQueue } from "./integration/credential-rotation-queue";
import { createFleetService } from "./fleet/fleet-service";
import { createWebhookService, DEFAULT_WEBHOOK_SETTINGS, type WebhookSettings } from "./notification/webhook-service";
import { createRolloutService } from "./rollout/rollout-service";
import type { IdentityTrust } from "./rollout/instance-identity-fns";
import { createRunService } from "./run/run-service";
import type { RunQueue } from "./run/run-queue";
import type { PlatformSettings } from "./run/tenant-stack-config";
import { createTenantService } from "./tenant/tenant-service";

export interface ServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  platform: PlatformSettings;
  verifyBootstrapRole: BootstrapRoleVerifier;
  runQueue: () => RunQueue;
  scanQueue: () => ScanQueue;
  bootstrapLinks?: BootstrapLinkService;
  bootstrapWaits?: () => BootstrapWaitQueue;
  bootstrapWaitSeconds?: number;
  /** Where webhooks may point and how many a tenant may have (WEBHOOK_PLATFORM_ALLOW_LOOPBACK, WEBHOOK_MAX_PER_TENANT). */
  webhooks?: WebhookSettings;
  /** The background key rotation (services/integration/credential-rotation-queue.ts); absent: status only. */
  credentialRotation?: () => CredentialRotationQueue;
  /** Whose signatures prove an agent's instance (default: AWS's published certificates). */
  identityTrust?: IdentityTrust;
  /** A tenant's queued runs at most (MAX_QUEUED_RUNS_PER_TENANT); undefined: no cap. */
  maxQueuedRunsPerTenant?: number;
  /** Where server-side detail goes that callers must not see (STS's words about a refused role); default: nowhere. */
  warn?: (message: string) => void;
}

export function createServices(deps: ServiceDeps) {
  const platformAccounts = platformAccountIds(deps.platform.platformPrincipalArn, deps.platform.platformAccountIds);
  const integrations = createIntegrationService({
      db: deps.db,
      keyring: deps.keyring,
      verifyBootstrapRole: deps.verifyBootstrapRole,
      platformAccounts,
      platformPrincipalArn: deps.platform.platformPrincipalArn,
      bootstrapLinks: deps.bootstrapLinks,
      bootstrapWaits: deps.bootstrapWaits,
      bootstrapWaitSeconds: deps.bootstrapWaitSeconds,
      warn: deps.warn,
  });
  return {
    tenants: createTenantService({ db: deps.db, platformAccounts }),
    integrations,
    runs: createRunService({
      db: deps.db,
      keyring: deps.keyring,
      platform: deps.platform,
      queue: deps.runQueue,
      customerCleanup: (org) => integrations.bootstrapCleanup(org),
      maxQueuedRunsPerTenant: deps.maxQueuedRunsPerTenant,
    }),
    discovery: createDiscoveryService({ db: deps.db, scans: deps.scanQueue }),
    rollout: createRolloutService({ db: deps.db, keyring: deps.keyring, identityTrust: deps.identityTrust }),
    fleet: createFleetService({ db: deps.db }),
    credentialRotation: createCredentialRotationService({ db: deps.db, keyring: deps.keyring, rotation: deps.credentialRotation }),
    webhooks: createWebhookService({ db: deps.db, keyring: deps.keyring, ...(deps.webhooks ?? DEFAULT_WEBHOOK_SETTINGS) }),
  };
}

export type Services = ReturnType<typeof createServices>;
