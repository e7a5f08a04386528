/**
 * The database schema: the single source of truth. Migrations in migrations/ are generated from
 * this file with `npx drizzle-kit generate`; never edit them by hand.
 *
 * Conventions: snake_case columns, timestamptz everywhere, integer identity ids (uuid for runs,
 * whose ids travel through the queue and URLs). Statuses that are a closed, stable set are
 * PostgreSQL enums; statuses that will grow with the product are text typed in TypeScript, so a
 * new state needs no migration.
 */
import { sql } from "drizzle-orm";
import type { AccessDeniedCause } from "../lib/upstream-errors";
import { bigint, boolean, check, index, integer, jsonb, pgEnum, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

// ---------------------------------------------------------------------------------------------
// Enums

export const ONBOARDING_FLOW_VERSIONS = ["legacy", "quick_start"] as const;
export const CLOUD_PROVIDERS = ["aws", "azure", "gcp"] as const;
export const ASSET_PRIORITIES = ["critical", "high", "medium", "low"] as const;
/** drift: `pulumi refresh --preview-only`, what a refresh would change (never changes the state). */
export const RUN_KINDS = ["preview", "up", "refresh", "destroy", "drift"] as const;
export const RUN_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"] as const;
export const API_TOKEN_SCOPES = ["platform_admin", "tenant"] as const;
/** environment: ADMIN_TOKEN (a new one revokes the earlier); generated: printed at a first start without it; api: created by a call. */
export const API_TOKEN_ORIGINS = ["environment", "generated", "api"] as const;

export const onboardingFlowVersion = pgEnum("onboarding_flow_version", ONBOARDING_FLOW_VERSIONS);
export const cloudProvider = pgEnum("cloud_provider", CLOUD_PROVIDERS);
export const assetPriority = pgEnum("asset_priority", ASSET_PRIORITIES);
export const runKind = pgEnum("run_kind", RUN_KINDS);
export const runStatus = pgEnum("run_status", RUN_STATUSES);
export const apiTokenScope = pgEnum("api_token_scope", API_TOKEN_SCOPES);
export const apiTokenOrigin = pgEnum("api_token_origin", API_TOKEN_ORIGINS);

export type OnboardingFlowVersion = (typeof ONBOARDING_FLOW_VERSIONS)[number];
export type CloudProvider = (typeof CLOUD_PROVIDERS)[number];
export type AssetPriority = (typeof ASSET_PRIORITIES)[number];
export type RunKind = (typeof RUN_KINDS)[number];
export type RunStatus = (typeof RUN_STATUSES)[number];
export type ApiTokenScope = (typeof API_TOKEN_SCOPES)[number];
export type ApiTokenOrigin = (typeof API_TOKEN_ORIGINS)[number];

/** Run statuses after which nothing more happens to a run. */
export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ["succeeded", "failed", "cancelled", "interrupted"];

// Text statuses (typed, not enums: these sets will grow).

export const ONBOARDING_STATUSES = [
  "not_started",
  "connecting",
  "provisioning",
  "discovering",
  "deploying",
  "validating",
  "completed",
  "action_required",
  "failed",
  "offboarding",
  "offboarded",
] as const;
export type OnboardingStatus = (typeof ONBOARDING_STATUSES)[number];

export const CREDENTIAL_STATUSES = ["pending", "active", "invalid", "revoked"] as const;
export type CredentialStatus = (typeof CREDENTIAL_STATUSES)[number];

export const AGENT_STATUSES = ["unknown", "not_applicable", "not_targeted", "pending", "installing", "installed", "failed", "checked_in"] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

// ---------------------------------------------------------------------------------------------
// JSON column shapes

export interface TagFilter {
  key: string;
  value: string;
}

/** Overrides the default priority classification for matching assets; the first match wins. */
export interface PriorityRuleOverride {
  match: {
    assetType?: string;
    /** Tag key that must be present; with `value`, the tag must have exactly that value. */
    tag?: { key: string; value?: string };
    /** Value of the `Role` tag (the default classification's input). */
    role?: string;
  };
  priority: AssetPriority;
}

/** Per-tenant integration settings (names follow programs/tenant/config.ts). */
export interface IntegrationSettings {
  agentPublicBaseUrl?: string;
  regions?: string[];
  homeRegion?: string;
  /** `all_managed` (the default): every SSM-managed instance but the excluded; `tag`: only those carrying targetTag. */
  targetingMode?: "all_managed" | "tag";
  targetTag?: TagFilter;
  /** Instances carrying it are left alone in all_managed mode (default xdr:monitor=false). */
  exclusionTag?: TagFilter;
  /** The old spelling of targetingMode (true: all_managed, false: tag); still read. */
  targetAllManagedInstances?: boolean;
  /** The association's rate control (SSM MaxConcurrency / MaxErrors). */
  associationMaxConcurrency?: string;
  associationMaxErrors?: string;
  /** Turn on SSM's Default Host Management Configuration in each region, so instances without a profile become managed. */
  enableDefaultHostManagement?: boolean;
  /** When true, an `up` must apply a previously approved preview's plan. */
  requireApproval?: boolean;
  /** When a drift check finds drift, an `up` with refresh brings the stack back (a run linked to the drift run). */
  autoRemediate?: boolean;
  priorityRules?: PriorityRuleOverride[];
}

export interface StatusReason {
  reason: string;
  fix: string;
}

export const CONNECTION_CHECK_STATUSES = ["waiting", "connected", "timed_out"] as const;
export type ConnectionCheckStatus = (typeof CONNECTION_CHECK_STATUSES)[number];

export interface ConnectionCheck {
  status: ConnectionCheckStatus;
  attempts: number;
  startedAt: string;
  deadline: string;
  lastCheckedAt?: string;
  /** Why the last AssumeRole was refused (STS's message; never a secret). */
  lastError?: string;
}

/** Pulumi's change summary: operation -> count (create, update, delete, same, replace, ...). */
export type ChangeSummary = Record<string, number>;

/** One resource's planned or applied change. */
export interface ResourceChange {
  urn: string;
  type: string;
  /** Pulumi op: create, update, delete, replace, same, read, ... */
  op: string;
  /** Property paths that differ. */
  diffs?: string[];
  detailedDiff?: Record<string, { kind: string; inputDiff?: boolean }>;
}

/** Stack outputs with secret values removed or replaced by a marker. */
export type RunOutputs = Record<string, unknown>;

/** A resource whose cloud state differs from the stack's (update: these properties; delete: it is gone). */
export interface DriftedResource {
  urn: string;
  type: string;
  op: string;
  properties: string[];
}

/** The tenant's last drift check: drifted (with what) until a check finds nothing. */
export interface TenantDrift {
  status: "drifted" | "in_sync";
  runId: string;
  checkedAt: string;
  resources: DriftedResource[];
  /** The `up` that brings the stack back (auto_remediate), when one was requested. */
  remediationRunId?: string;
}

export interface EngineDiagnostic {
  severity: string;
  message: string;
  urn?: string;
}

export interface RunHold {
  reason: string;
  actions: string[];
  /** The bootstrap template version that grants them. */
  version: string;
}

export interface RunError {
  message: string;
  /** Error class / category (e.g. ConcurrentUpdateError, CommandError). */
  kind?: string;
  diagnostics?: EngineDiagnostic[];
}

// ---------------------------------------------------------------------------------------------
// Tables

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const createdAt = () => timestamptz("created_at").notNull().defaultNow();
const updatedAt = () =>
  timestamptz("updated_at")
    .notNull()
    .defaultNow()
    .$onUpdate(() => new Date());

export const organizations = pgTable("organizations", {
  id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
  slug: text("slug").notNull().unique("organizations_slug_unique"),
  name: text("name").notNull(),
  onboardingFlowVersion: onboardingFlowVersion("onboarding_flow_version").notNull().default("quick_start"),
  autoDiscoveryEnabled: boolean("auto_discovery_enabled").notNull().default(true),
  integrationSettings: jsonb("integration_settings").$type<IntegrationSettings>().notNull().default({}),
  onboardingStatus: text("onboarding_status").$type<OnboardingStatus>().notNull().default("not_started"),
  /** With action_required: what a person has to do, each a reason and its fix. */
  statusReasons: jsonb("status_reasons").$type<StatusReason[]>(),
  awsAccountId: text("aws_account_id"),
  /** The last drift check's finding (services/fleet/drift.ts); null before the first. */
  drift: jsonb("drift").$type<TenantDrift>(),
  /** The bootstrap template version the tenant's bootstrap role carries (its version tag), as last read; null: not read yet. */
  bootstrapVersion: text("bootstrap_version"),
  bootstrapVersionReadAt: timestamptz("bootstrap_version_read_at"),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
  offboardedAt: timestamptz("offboarded_at"),
});

export const integrationCredentials = pgTable(
  "integration_credentials",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    provider: cloudProvider("provider").notNull(),
    /** e.g. `aws_assume_role`. */
    credentialType: text("credential_type").notNull(),
    /** AES-256-GCM envelope from db/crypto.ts (`v1:<keyId>:<iv>:<ciphertext>`); never plaintext. */
    credentialData: text("credential_data").notNull(),
    /** The key that sealed credential_data (also inside the envelope); lets rotation find old rows. */
    encryptionKeyId: text("encryption_key_id").notNull(),
    status: text("status").$type<CredentialStatus>().notNull().default("pending"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    expiresAt: timestamptz("expires_at"),
    lastUsedAt: timestamptz("last_used_at"),
    /** The wait for a bootstrap role the customer creates with the quick-create link (AssumeRole polled with backoff). */
    connectionCheck: jsonb("connection_check").$type<ConnectionCheck>(),
  },
  (table) => [
    uniqueIndex("integration_credentials_org_provider_unique").on(table.organizationId, table.provider),
    check("integration_credentials_envelope_check", sql`${table.credentialData} ~ '^v[0-9]+:'`),
  ],
);

/**
 * The external ID the platform presents when it assumes a tenant's roles (AWS's confused-deputy protection): generated
 * by the service once per tenant, never chosen by a caller, sealed like every secret here, and unique across tenants
 * (by its hash, which is what the unique index can see).
 */
export const tenantExternalIds = pgTable(
  "tenant_external_ids",
  {
    organizationId: integer("organization_id")
      .primaryKey()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** db/crypto.ts envelope of the external ID (context: the organization, provider `aws-external-id`). */
    externalIdSealed: text("external_id_sealed").notNull(),
    /** hashToken(external ID): two tenants never share one. */
    externalIdHash: text("external_id_hash").notNull().unique("tenant_external_ids_hash_unique"),
    createdAt: createdAt(),
  },
  (table) => [check("tenant_external_ids_envelope_check", sql`${table.externalIdSealed} ~ '^v[0-9]+:'`)],
);

export const cloudAssets = pgTable(
  "cloud_assets",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    provider: cloudProvider("provider").notNull(),
    /** `ec2`, `rds`, ... */
    assetType: text("asset_type").notNull(),
    /** The provider's id: instance id, DB identifier / ARN, ... */
    assetId: text("asset_id").notNull(),
    region: text("region").notNull(),
    assetData: jsonb("asset_data").$type<Record<string, unknown>>().notNull().default({}),
    tags: jsonb("tags").$type<Record<string, string>>().notNull().default({}),
    discoveredAt: timestamptz("discovered_at").notNull().defaultNow(),
    lastSeenAt: timestamptz("last_seen_at").notNull().defaultNow(),
    /** Set when a scan no longer finds the asset (or at offboarding); cleared if it reappears. */
    removedAt: timestamptz("removed_at"),
    agentCompatible: boolean("agent_compatible").notNull().default(false),
    priority: assetPriority("priority").notNull().default("medium"),
    agentStatus: text("agent_status").$type<AgentStatus>().notNull().default("unknown"),
    /** Why the agent status is what it is (SSM association / command result, error output), when known. */
    agentStatusDetail: jsonb("agent_status_detail").$type<Record<string, unknown>>(),
    agentStatusAt: timestamptz("agent_status_at"),
    /** The AWS account the asset lives in (the account whose scan found it). */
    awsAccountId: text("aws_account_id"),
  },
  (table) => [
    uniqueIndex("cloud_assets_org_provider_asset_unique").on(table.organizationId, table.provider, table.assetId),
    index("cloud_assets_org_type_idx").on(table.organizationId, table.assetType),
    index("cloud_assets_org_account_region_idx").on(table.organizationId, table.awsAccountId, table.region),
  ],
);

/**
 * The version of a tenant's assets, for in-process caches that must never be stale: triggers on cloud_assets (migration
 * 0008) bump the row of (tenant, writing database session) in the writer's own transaction, so it commits with the
 * change, and two sessions never wait for each other's row. The sum of a tenant's rows, with their count, changes
 * with every committed insert, update or delete of its assets.
 */
export const cloudAssetVersions = pgTable(
  "cloud_asset_versions",
  {
    organizationId: integer("organization_id").notNull(),
    session: integer("session").notNull(),
    version: bigint("version", { mode: "number" }).notNull().default(1),
  },
  (table) => [primaryKey({ name: "cloud_asset_versions_pkey", columns: [table.organizationId, table.session] })],
);

export const runs = pgTable(
  "runs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    stackName: text("stack_name").notNull(),
    kind: runKind("kind").notNull(),
    status: runStatus("status").notNull().default("queued"),
    /** Who asked: `token:<id>`, `person:<id>`, `system:discovery`, ... */
    actor: text("actor").notNull(),
    /** ... named as the audit trail names them: the person's email, or the token's name (null for older runs). */
    actorName: text("actor_name"),
    requestedAt: timestamptz("requested_at").notNull().defaultNow(),
    startedAt: timestamptz("started_at"),
    finishedAt: timestamptz("finished_at"),
    changeSummary: jsonb("change_summary").$type<ChangeSummary>(),
    /** Per-resource diff (preview) or applied changes (up/destroy). */
    resourceChanges: jsonb("resource_changes").$type<ResourceChange[]>(),
    /** Stack outputs without secrets. */
    outputs: jsonb("outputs").$type<RunOutputs>(),
    /** Message plus the engine's diagnostics. */
    error: jsonb("error").$type<RunError>(),
    /** The id (run_plans.id) of the update plan a preview saves (approval-gated ups), or of the plan an `up` applied. */
    planRef: text("plan_ref"),
    /** The queue job executing this run. */
    jobId: text("job_id"),
    /** PID (process group leader) of the pulumi child process, for crash recovery. */
    processPid: integer("process_pid"),
    /** kind drift: what the cloud changed outside the stack. */
    drift: jsonb("drift").$type<DriftedResource[]>(),
    /** An `up` with refresh that brings back the drift this drift run found. */
    remediatesRunId: uuid("remediates_run_id"),
    /** The fleet run that started this run, if any. */
    fleetRunId: uuid("fleet_run_id"),
    /** The organization member account whose stack this run is on; null: the tenant's home account. */
    awsAccountId: text("aws_account_id"),
    /**
     * A queued run held back (not sent to the queue) until the tenant's bootstrap role grants what it needs: the
     * reason, the missing actions and the version that grants them. Released by the next version read that finds it.
     */
    heldFor: jsonb("held_for").$type<RunHold>(),
  },
  (table) => [
    index("runs_org_status_idx").on(table.organizationId, table.status),
    index("runs_stack_requested_idx").on(table.stackName, table.requestedAt),
    index("runs_status_idx").on(table.status),
  ],
);

/**
 * Update plans saved by previews of tenants that require approval, sealed with the credentials keyring (db/crypto.ts,
 * bound to the tenant and the plan id): the plan carries the desired config. Every replica reads them from here;
 * the CLI gets one in a temporary file for the duration of the call that needs it.
 */
export const runPlans = pgTable("run_plans", {
  id: uuid("id").primaryKey(),
  organizationId: integer("organization_id")
    .notNull()
    .references(() => organizations.id, { onDelete: "cascade" }),
  /** The preview that saved the plan. */
  previewRunId: uuid("preview_run_id")
    .notNull()
    .references(() => runs.id, { onDelete: "cascade" }),
  /** The sealed plan (envelope of db/crypto.ts). */
  planSealed: text("plan_sealed").notNull(),
  keyId: text("key_id").notNull(),
  createdAt: createdAt(),
});

/**
 * Data keys for the credentials keyring when a KMS key is configured (db/kms-keyring.ts): one per KMS key, stored only
 * encrypted by KMS (GenerateDataKey's CiphertextBlob); every replica decrypts them with KMS at start-up. Envelopes of
 * db/crypto.ts name the data key by `id`.
 */
export const credentialDataKeys = pgTable(
  "credential_data_keys",
  {
    id: text("id").primaryKey(),
    kmsKeyId: text("kms_key_id").notNull(),
    /** The data key encrypted under the KMS key, base64. */
    encryptedKey: text("encrypted_key").notNull(),
    createdAt: createdAt(),
  },
  (table) => [uniqueIndex("credential_data_keys_kms_key_unique").on(table.kmsKeyId)],
);

/**
 * The credentials key rotation (services/integration/credential-rotation-queue.ts): one row, the key every sealed row
 * should end up under. A replica starting with another current key makes that key the target; the background job
 * re-seals rows under older keys to it.
 */
export const credentialKeyRotation = pgTable(
  "credential_key_rotation",
  {
    id: text("id").primaryKey().default("credentials"),
    /** The key id (as envelopes name it) rows are re-sealed to. */
    targetKeyId: text("target_key_id").notNull(),
    /** `system:startup` (a replica started with this key) or the admin token's actor. */
    requestedBy: text("requested_by").notNull(),
    requestedAt: timestamptz("requested_at").notNull().defaultNow(),
    /** When a pass found no row readable here left under an older key; null while rotating. */
    completedAt: timestamptz("completed_at"),
    /** Rows re-sealed to this target so far. */
    rowsResealed: integer("rows_resealed").notNull().default(0),
  },
  (table) => [check("credential_key_rotation_singleton", sql`${table.id} = 'credentials'`)],
);

export const runEvents = pgTable(
  "run_events",
  {
    runId: uuid("run_id")
      .notNull()
      .references(() => runs.id, { onDelete: "cascade" }),
    /** 0-based position of the event in the run's engine event stream. */
    seq: integer("seq").notNull(),
    event: jsonb("event").$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
  },
  // The primary key is the unique (run_id, seq) constraint and the index replay reads by.
  (table) => [primaryKey({ name: "run_events_pkey", columns: [table.runId, table.seq] })],
);

export const agents = pgTable(
  "agents",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** The discovered asset this agent runs on, when known. */
    assetId: integer("asset_id").references(() => cloudAssets.id, { onDelete: "set null" }),
    /** Cloud instance id reported by the agent (e.g. i-0123...). */
    instanceId: text("instance_id").notNull(),
    hostname: text("hostname"),
    version: text("version"),
    enrolledAt: timestamptz("enrolled_at").notNull().defaultNow(),
    lastHeartbeatAt: timestamptz("last_heartbeat_at"),
    /**
     * hashToken() of the agent's own credential (issued at enrollment, shown to the agent once): heartbeats present
     * it, and re-enrolling the instance needs it. Null before this existed or after an operator reset the enrollment.
     */
    credentialHash: text("credential_hash"),
  },
  (table) => [
    uniqueIndex("agents_org_instance_unique").on(table.organizationId, table.instanceId),
    uniqueIndex("agents_credential_hash_unique").on(table.credentialHash),
  ],
);

export const enrollmentTokens = pgTable(
  "enrollment_tokens",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** hashToken(token) from db/crypto.ts: what enrollment compares against (constant time). */
    tokenHash: text("token_hash").notNull().unique("enrollment_tokens_token_hash_unique"),
    /**
     * The token itself as a db/crypto.ts envelope: the tenant stack needs it on every run (it goes into the agent
     * configuration parameter as a Pulumi secret). Null for a token whose plaintext was never kept.
     */
    tokenSealed: text("token_sealed"),
    createdAt: createdAt(),
    revokedAt: timestamptz("revoked_at"),
  },
  (table) => [
    index("enrollment_tokens_org_idx").on(table.organizationId),
    check("enrollment_tokens_envelope_check", sql`${table.tokenSealed} is null or ${table.tokenSealed} ~ '^v[0-9]+:'`),
  ],
);

export const DISCOVERY_TRIGGERS = ["after_up", "manual", "schedule"] as const;
export type DiscoveryTrigger = (typeof DISCOVERY_TRIGGERS)[number];
/** partial: some regions failed, the others were stored. */
export const DISCOVERY_SCAN_STATUSES = ["queued", "running", "succeeded", "partial", "failed"] as const;
export type DiscoveryScanStatus = (typeof DISCOVERY_SCAN_STATUSES)[number];

export interface DiscoveryRegionResult {
  region: string;
  /**
   * not_enabled: an opt-in region the account has not enabled (EC2 DescribeRegions); nothing was scanned there.
   * excluded_by_organization: the organization's service control policy denies reading it.
   */
  status: "succeeded" | "failed" | "not_enabled" | "excluded_by_organization";
  assets: number;
  error?: string;
  /** EKS clusters could not be listed in the region (its instances and databases were). */
  clustersError?: string;
}

/** One discovery of a tenant's account: what triggered it, per-region results, what it stored. */
export const discoveryScans = pgTable(
  "discovery_scans",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    trigger: text("trigger").$type<DiscoveryTrigger>().notNull(),
    status: text("status").$type<DiscoveryScanStatus>().notNull().default("queued"),
    actor: text("actor").notNull(),
    requestedAt: timestamptz("requested_at").notNull().defaultNow(),
    startedAt: timestamptz("started_at"),
    finishedAt: timestamptz("finished_at"),
    assetsFound: integer("assets_found"),
    /** inserted / updated / removed counts of the store step. */
    changes: jsonb("changes").$type<{ inserted: number; updated: number; removed: number }>(),
    regions: jsonb("regions").$type<DiscoveryRegionResult[]>(),
    error: jsonb("error").$type<RunError>(),
    /** The organization member account scanned (its own stack's role); null: the tenant's home stack. */
    awsAccountId: text("aws_account_id"),
  },
  (table) => [index("discovery_scans_org_requested_idx").on(table.organizationId, table.requestedAt)],
);

/** SSM commands the service sent to a tenant's instances (deployment retries), for audit and follow-up. */
export const agentCommands = pgTable(
  "agent_commands",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** SSM's command id. */
    commandId: text("command_id").notNull(),
    documentName: text("document_name").notNull(),
    /** Instance ids the command targeted, highest priority first. */
    instanceIds: jsonb("instance_ids").$type<string[]>().notNull(),
    region: text("region").notNull(),
    reason: text("reason").notNull(),
    actor: text("actor").notNull(),
    requestedAt: timestamptz("requested_at").notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex("agent_commands_command_unique").on(table.commandId),
    index("agent_commands_org_idx").on(table.organizationId, table.requestedAt),
  ],
);

export const apiTokens = pgTable(
  "api_tokens",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    /** hashToken(token) from db/crypto.ts. */
    tokenHash: text("token_hash").notNull().unique("api_tokens_token_hash_unique"),
    scope: apiTokenScope("scope").notNull(),
    /** Set exactly when scope = 'tenant'. */
    organizationId: integer("organization_id").references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    createdAt: createdAt(),
    revokedAt: timestamptz("revoked_at"),
    /** Refreshed at most once a minute per token (services/tenant/tenant-service.ts). */
    lastUsedAt: timestamptz("last_used_at"),
    /** Null: never expires. An expired token is refused like a revoked one. */
    expiresAt: timestamptz("expires_at"),
    origin: apiTokenOrigin("origin").notNull().default("api"),
  },
  (table) => [
    check("api_tokens_scope_org_check", sql`(${table.scope} = 'tenant') = (${table.organizationId} is not null)`),
    index("api_tokens_org_idx").on(table.organizationId),
  ],
);

export const auditLog = pgTable(
  "audit_log",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedByDefaultAsIdentity(),
    actor: text("actor").notNull(),
    /** No foreign key on purpose: the audit trail outlives the rows it talks about. */
    organizationId: integer("organization_id"),
    action: text("action").notNull(),
    target: text("target"),
    details: jsonb("details").$type<Record<string, unknown>>().notNull().default({}),
    at: timestamptz("at").notNull().defaultNow(),
  },
  (table) => [index("audit_log_org_at_idx").on(table.organizationId, table.at)],
);

/**
 * Idempotency-Key records for POSTs (api/idempotency.ts): one row per (actor, key). The row is
 * claimed before the handler runs (status_code null = in progress) and completed with the first
 * answer, which is stored encrypted (it may hold a token shown once) and replayed for a retry.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    actor: text("actor").notNull(),
    key: text("key").notNull(),
    method: text("method").notNull(),
    path: text("path").notNull(),
    /** SHA-256 of method, path and body: a different request under the same key is refused. */
    requestHash: text("request_hash").notNull(),
    /** Null while the first request is in progress. */
    statusCode: integer("status_code"),
    /** The first answer's JSON body, as a db/crypto.ts envelope. */
    responseBody: text("response_body"),
    createdAt: createdAt(),
    completedAt: timestamptz("completed_at"),
  },
  (table) => [
    primaryKey({ name: "idempotency_keys_pkey", columns: [table.actor, table.key] }),
    index("idempotency_keys_created_idx").on(table.createdAt),
    check("idempotency_keys_envelope_check", sql`${table.responseBody} is null or ${table.responseBody} ~ '^v[0-9]+:'`),
  ],
);

// ---------------------------------------------------------------------------------------------
// Fleet runs and notifications

export const FLEET_RUN_KINDS = ["preview", "up", "refresh", "drift"] as const;
export type FleetRunKind = (typeof FLEET_RUN_KINDS)[number];
/** running; finished: succeeded (no tenant failed), failed (some failed), stopped (max_failures exceeded), cancelled. */
export const FLEET_RUN_STATUSES = ["running", "succeeded", "failed", "stopped", "cancelled"] as const;
export type FleetRunStatus = (typeof FLEET_RUN_STATUSES)[number];
/** pending: not started yet; queued/running/succeeded/failed/cancelled/interrupted: its run's; skipped, dropped, not_started: never ran. */
export const FLEET_TENANT_STATUSES = [
  "pending",
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "interrupted",
  "skipped",
  "dropped",
  "not_started",
] as const;
export type FleetTenantStatus = (typeof FLEET_TENANT_STATUSES)[number];

export type FleetSelector = { all: true } | { slugs: string[] } | { status: OnboardingStatus[] };

export const fleetRuns = pgTable(
  "fleet_runs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    kind: text("kind").$type<FleetRunKind>().notNull(),
    selector: jsonb("selector").$type<FleetSelector>().notNull(),
    maxConcurrency: integer("max_concurrency").notNull(),
    maxFailures: integer("max_failures").notNull(),
    status: text("status").$type<FleetRunStatus>().notNull().default("running"),
    /** Why it stopped early (max_failures exceeded, cancelled). */
    stopReason: text("stop_reason"),
    actor: text("actor").notNull(),
    createdAt: createdAt(),
    cancelRequestedAt: timestamptz("cancel_requested_at"),
    finishedAt: timestamptz("finished_at"),
  },
  (table) => [index("fleet_runs_status_idx").on(table.status)],
);

export const fleetRunTenants = pgTable(
  "fleet_run_tenants",
  {
    fleetRunId: uuid("fleet_run_id")
      .notNull()
      .references(() => fleetRuns.id, { onDelete: "cascade" }),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** The order the coordinator starts tenants in. */
    position: integer("position").notNull(),
    status: text("status").$type<FleetTenantStatus>().notNull().default("pending"),
    /** Why it was skipped, dropped, not started, or why its run could not be requested. */
    reason: text("reason"),
    runId: uuid("run_id"),
    updatedAt: updatedAt(),
  },
  (table) => [primaryKey({ name: "fleet_run_tenants_pkey", columns: [table.fleetRunId, table.organizationId] })],
);

/** Which organization's accounts a tenant covers (services/organization/account-scope-fns.ts applies them). */
export interface OrganizationScopeRules {
  /** OUs (or the root) whose accounts, at any depth, are covered; empty: the whole organization. */
  targetOus: string[];
  excludeOus: string[];
  excludeAccounts: string[];
  /** StackSets never deploy to the management account: the customer opts it in (and the management stack creates its role). */
  includeManagementAccount: boolean;
}

/** The last listing of a tenant's organization: complete, or why it failed (a failed listing changes nothing). */
export interface OrganizationListingRecord {
  status: "complete" | "failed";
  startedAt: string;
  finishedAt: string;
  /** Accounts listed / in scope (complete listings). */
  accounts?: number;
  inScope?: number;
  /** What AWS said (never a secret), when it failed. */
  error?: string;
}

export const AWS_ACCOUNT_SOURCES = ["home", "organization"] as const;
export type AwsAccountSource = (typeof AWS_ACCOUNT_SOURCES)[number];

/**
 * A tenant's connection to its AWS Organization: the reader role in the management account (or a delegated
 * administrator) that lists the organization's accounts, the scope rules, and how many accounts onboard at once.
 */
export const tenantAwsOrganizations = pgTable("tenant_aws_organizations", {
  organizationId: integer("organization_id")
    .primaryKey()
    .references(() => organizations.id, { onDelete: "cascade" }),
  managementAccountId: text("management_account_id").notNull(),
  readerRoleArn: text("reader_role_arn").notNull(),
  scopeRules: jsonb("scope_rules").$type<OrganizationScopeRules>().notNull(),
  maxConcurrentAccounts: integer("max_concurrent_accounts").notNull().default(4),
  /** Accounts whose onboarding may fail before no new one starts (the fleet's max_failures). */
  maxFailedAccounts: integer("max_failed_accounts").notNull().default(3),
  lastListing: jsonb("last_listing").$type<OrganizationListingRecord>(),
  /** When the last complete listing was applied: a listing started before it is stale and counts no account out. */
  lastCountedListingAt: timestamptz("last_counted_listing_at"),
  /** The tenant's offboarding began: nothing is registered or started any more, the accounts' destroys go on. */
  offboardingRequestedAt: timestamptz("offboarding_requested_at"),
  /** The tenant's last reconcile on demand: claimed atomically, so two requests at once never both list. */
  onDemandReconcileAt: timestamptz("on_demand_reconcile_at"),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/**
 * The AWS accounts a tenant covers, each with its own Pulumi stack, status and runs. `home`: the account the tenant
 * connected directly (migration 0015 made today's integration the first one; its stack keeps its name `tenant-<slug>`
 * and its status is the tenant's). `organization`: an account its organization listing brought in
 * (`tenant-<slug>--<account>`).
 */
export const tenantAwsAccounts = pgTable(
  "tenant_aws_accounts",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    accountId: text("account_id").notNull(),
    /** The account's name in the organization (the customer's words; shown, never parsed). */
    name: text("name"),
    source: text("source").$type<AwsAccountSource>().notNull(),
    /** OU ids from the root down to the account's parent. */
    ouPath: jsonb("ou_path").$type<string[]>().notNull().default([]),
    stackName: text("stack_name").notNull(),
    /** The account's own onboarding (services/organization writes it); the home account's is its tenant's. */
    status: text("status").$type<OnboardingStatus>().notNull().default("not_started"),
    statusReasons: jsonb("status_reasons").$type<StatusReason[]>(),
    /** Complete listings in a row that left the account out of scope; offboarded at two. */
    listingsOutOfScope: integer("listings_out_of_scope").notNull().default(0),
    /** Why the last listing left it out (excluded_ou, suspended, ...). */
    outOfScopeReason: text("out_of_scope_reason"),
    /** The bootstrap template version the account's bootstrap role carries (from the StackSet), as last read. */
    bootstrapVersion: text("bootstrap_version"),
    bootstrapVersionReadAt: timestamptz("bootstrap_version_read_at"),
    lastRunId: uuid("last_run_id"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    offboardedAt: timestamptz("offboarded_at"),
  },
  (table) => [
    uniqueIndex("tenant_aws_accounts_org_account_unique").on(table.organizationId, table.accountId),
    uniqueIndex("tenant_aws_accounts_stack_unique").on(table.stackName),
    index("tenant_aws_accounts_org_status_idx").on(table.organizationId, table.status),
    uniqueIndex("tenant_aws_accounts_one_home").on(table.organizationId).where(sql`${table.source} = 'home'`),
  ],
);

export const WEBHOOK_EVENTS = [
  "run.succeeded",
  "run.failed",
  "drift.detected",
  "onboarding.completed",
  "onboarding.action_required",
  "fleet_run.finished",
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export const webhooks = pgTable(
  "webhooks",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** Null: platform-wide (every tenant's events and fleet events). */
    organizationId: integer("organization_id").references(() => organizations.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    events: jsonb("events").$type<WebhookEvent[]>().notNull(),
    /** The signing secret as a db/crypto.ts envelope. */
    secretSealed: text("secret_sealed").notNull(),
    encryptionKeyId: text("encryption_key_id").notNull(),
    actor: text("actor").notNull(),
    createdAt: createdAt(),
    deletedAt: timestamptz("deleted_at"),
  },
  (table) => [index("webhooks_org_idx").on(table.organizationId), check("webhooks_envelope_check", sql`${table.secretSealed} ~ '^v[0-9]+:'`)],
);

export const WEBHOOK_DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];

/** One event for one webhook; retried with backoff until delivered or out of attempts. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    webhookId: uuid("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    event: text("event").$type<WebhookEvent>().notNull(),
    /** The JSON body sent (never a secret). */
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    status: text("status").$type<WebhookDeliveryStatus>().notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamptz("next_attempt_at").notNull().defaultNow(),
    /** The queue job of the next attempt; null: not enqueued yet (the dispatcher enqueues it). */
    jobId: text("job_id"),
    createdAt: createdAt(),
    deliveredAt: timestamptz("delivered_at"),
  },
  (table) => [
    index("webhook_deliveries_webhook_idx").on(table.webhookId, table.createdAt),
    index("webhook_deliveries_pending_idx").on(table.status, table.nextAttemptAt),
  ],
);

export const webhookDeliveryAttempts = pgTable(
  "webhook_delivery_attempts",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedByDefaultAsIdentity(),
    deliveryId: uuid("delivery_id")
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    at: timestamptz("at").notNull().defaultNow(),
    /** The receiver's HTTP status; null when it could not be reached. */
    statusCode: integer("status_code"),
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
  },
  (table) => [index("webhook_delivery_attempts_delivery_idx").on(table.deliveryId, table.attempt)],
);

// ---------------------------------------------------------------------------------------------
// Row types

export type Organization = typeof organizations.$inferSelect;
/** A tenant member's role: admins connect, change settings, retry and manage members; viewers read. */
export const MEMBER_ROLES = ["admin", "viewer"] as const;
export type MemberRole = (typeof MEMBER_ROLES)[number];

/**
 * A person who signs in to the console: through the identity provider (its issuer and the ID token's subject), or
 * through a link the service issued when there is none (issuer `link`, subject the email the link was for).
 */
export const people = pgTable(
  "people",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    issuer: text("issuer").notNull(),
    subject: text("subject").notNull(),
    email: text("email"),
    displayName: text("display_name"),
    /** A platform operator (every tenant, platform-admin rights). */
    operator: boolean("operator").notNull().default(false),
    createdAt: createdAt(),
    lastSignInAt: timestamptz("last_sign_in_at"),
  },
  (table) => [uniqueIndex("people_issuer_subject_unique").on(table.issuer, table.subject)],
);

/** A person's membership of a tenant, with its role. */
export const memberships = pgTable(
  "memberships",
  {
    personId: integer("person_id")
      .notNull()
      .references(() => people.id, { onDelete: "cascade" }),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    role: text("role").$type<MemberRole>().notNull(),
    createdAt: createdAt(),
  },
  (table) => [primaryKey({ name: "memberships_pkey", columns: [table.personId, table.organizationId] })],
);

/**
 * A browser session: the cookie carries an opaque random ID, stored here hashed only, with the hash of the session's
 * CSRF token. It ends at its idle or absolute timeout, at sign-out, or when revoked (sign out everywhere, a removed
 * member).
 */
export const browserSessions = pgTable(
  "browser_sessions",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    idHash: text("id_hash").notNull().unique("browser_sessions_id_hash_unique"),
    csrfHash: text("csrf_hash").notNull(),
    personId: integer("person_id")
      .notNull()
      .references(() => people.id, { onDelete: "cascade" }),
    createdAt: createdAt(),
    lastSeenAt: timestamptz("last_seen_at").notNull().defaultNow(),
    /** The absolute end: no activity extends a session past it. */
    expiresAt: timestamptz("expires_at").notNull(),
    revokedAt: timestamptz("revoked_at"),
  },
  (table) => [index("browser_sessions_person_idx").on(table.personId)],
);

/** Single-use sign-in links (the operator's, printed at start without an identity provider): hashed, expiring. */
export const signInLinks = pgTable("sign_in_links", {
  id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
  tokenHash: text("token_hash").notNull().unique("sign_in_links_token_hash_unique"),
  /** Who the link signs in: the platform's local operator. */
  purpose: text("purpose").$type<"operator">().notNull(),
  createdAt: createdAt(),
  expiresAt: timestamptz("expires_at").notNull(),
  usedAt: timestamptz("used_at"),
});

/**
 * An invitation to a tenant: a single-use link that expires, stored hashed. Accepting it binds the identity that opens
 * it (the identity provider's subject, or the email for link sign-in) as a member with the role.
 */
export const invitations = pgTable(
  "invitations",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    email: text("email").notNull(),
    role: text("role").$type<MemberRole>().notNull(),
    tokenHash: text("token_hash").notNull().unique("invitations_token_hash_unique"),
    /** Who invited (the actor) and their name as the audit trail gives it. */
    invitedBy: text("invited_by").notNull(),
    invitedByName: text("invited_by_name").notNull(),
    /** How the link reached the invitee: by email, or shown once to whoever invited. */
    delivery: text("delivery").$type<"email" | "shown_once">().notNull(),
    createdAt: createdAt(),
    expiresAt: timestamptz("expires_at").notNull(),
    acceptedAt: timestamptz("accepted_at"),
    acceptedBy: integer("accepted_by").references(() => people.id, { onDelete: "set null" }),
    revokedAt: timestamptz("revoked_at"),
  },
  (table) => [index("invitations_org_idx").on(table.organizationId, table.createdAt)],
);

export const PERMISSION_FINDING_SOURCES = ["run", "discovery", "rollout", "check"] as const;
export type PermissionFindingSource = (typeof PERMISSION_FINDING_SOURCES)[number];

/**
 * A permission the platform was refused in a tenant's account, as AWS's AccessDenied said it (services/core/
 * permission-findings.ts): one row per account, region and action, open until the same source sees it allowed.
 */
export const permissionFindings = pgTable(
  "permission_findings",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    organizationId: integer("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** The AWS account (12 digits), or `unknown` when the tenant's role names none yet. */
    awsAccountId: text("aws_account_id").notNull(),
    /** An AWS region, or `global` (IAM, STS, Organizations). */
    region: text("region").notNull(),
    action: text("action").notNull(),
    resource: text("resource"),
    cause: text("cause").$type<AccessDeniedCause>().notNull(),
    /** What met it last: a run, a discovery, a rollout read or a permission check. */
    source: text("source").$type<PermissionFindingSource>().notNull(),
    firstSeenAt: timestamptz("first_seen_at").notNull().defaultNow(),
    lastSeenAt: timestamptz("last_seen_at").notNull().defaultNow(),
    occurrences: integer("occurrences").notNull().default(1),
    /** When the same source next saw the call allowed; null while it is missing. */
    resolvedAt: timestamptz("resolved_at"),
  },
  (table) => [
    uniqueIndex("permission_findings_account_region_action_idx").on(table.organizationId, table.awsAccountId, table.region, table.action),
    check("permission_findings_account_check", sql`${table.awsAccountId} ~ '^([0-9]{12}|unknown)$'`),
    check("permission_findings_action_check", sql`${table.action} ~ '^[a-z0-9-]{2,32}:[A-Za-z0-9*]{2,64}$'`),
  ],
);

export type Person = typeof people.$inferSelect;
export type Invitation = typeof invitations.$inferSelect;
export type PermissionFinding = typeof permissionFindings.$inferSelect;
export type BrowserSession = typeof browserSessions.$inferSelect;

export type NewOrganization = typeof organizations.$inferInsert;
export type IntegrationCredential = typeof integrationCredentials.$inferSelect;
export type NewIntegrationCredential = typeof integrationCredentials.$inferInsert;
export type CloudAsset = typeof cloudAssets.$inferSelect;
export type NewCloudAsset = typeof cloudAssets.$inferInsert;
export type Run = typeof runs.$inferSelect;
export type NewRun = typeof runs.$inferInsert;
export type RunEvent = typeof runEvents.$inferSelect;
export type RunPlan = typeof runPlans.$inferSelect;
export type NewRunEvent = typeof runEvents.$inferInsert;
export type Agent = typeof agents.$inferSelect;
export type NewAgent = typeof agents.$inferInsert;
export type EnrollmentToken = typeof enrollmentTokens.$inferSelect;
export type NewEnrollmentToken = typeof enrollmentTokens.$inferInsert;
export type ApiToken = typeof apiTokens.$inferSelect;
export type NewApiToken = typeof apiTokens.$inferInsert;
export type AuditLogEntry = typeof auditLog.$inferSelect;
export type NewAuditLogEntry = typeof auditLog.$inferInsert;
export type DiscoveryScan = typeof discoveryScans.$inferSelect;
export type AgentCommand = typeof agentCommands.$inferSelect;
export type IdempotencyKey = typeof idempotencyKeys.$inferSelect;
export type NewIdempotencyKey = typeof idempotencyKeys.$inferInsert;
export type FleetRun = typeof fleetRuns.$inferSelect;
export type FleetRunTenant = typeof fleetRunTenants.$inferSelect;
export type Webhook = typeof webhooks.$inferSelect;
export type WebhookDelivery = typeof webhookDeliveries.$inferSelect;
export type WebhookDeliveryAttempt = typeof webhookDeliveryAttempts.$inferSelect;
export type CredentialKeyRotation = typeof credentialKeyRotation.$inferSelect;
export type TenantAwsAccount = typeof tenantAwsAccounts.$inferSelect;
export type TenantAwsOrganization = typeof tenantAwsOrganizations.$inferSelect;
