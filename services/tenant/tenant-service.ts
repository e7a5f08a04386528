/**
 * Tenants as a domain: create, read, change settings, tenant tokens, which tenant a principal may see, the onboarding overview.
 * Offboarding is a stack run (run-service.ts); its follow-up is onboarding-lifecycle.ts.
 */
import { and, asc, eq, gt, isNull, or, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { preparedPerDatabase } from "../../db/prepared-query";
import { generateToken, hashToken } from "../../db/crypto";
import {
  apiTokens,
  integrationCredentials,
  organizations,
  type ApiToken,
  type IntegrationSettings,
  type OnboardingFlowVersion,
  type Organization,
} from "../../db/schema";
import { ConflictError, ForbiddenError, NotFoundError, UnauthorizedError, UnprocessableError, type FieldProblem } from "../../lib/errors";
import { recordAudit, tenantAuditTrail } from "../core/audit-store";
import { actorOf, isAdmin, type Principal, requireAdmin, requireTenantAdmin } from "../core/principal";
import { onboardingOverview } from "../core/onboarding-overview";

const unexpired = or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`));

// Every authenticated request runs these two.
const liveTokenQuery = preparedPerDatabase((db) =>
  db
    .select()
    .from(apiTokens)
    .where(and(eq(apiTokens.tokenHash, sql.placeholder("tokenHash")), isNull(apiTokens.revokedAt), unexpired))
    .limit(1)
    .prepare("live_api_token"),
);

// An open event stream asks this about its token every second or so.
const tokenIsLiveQuery = preparedPerDatabase((db) =>
  db
    .select({ id: apiTokens.id })
    .from(apiTokens)
    .where(and(eq(apiTokens.id, sql.placeholder("tokenId")), isNull(apiTokens.revokedAt), unexpired))
    .limit(1)
    .prepare("api_token_is_live"),
);

const tenantBySlugQuery = preparedPerDatabase((db) =>
  db
    .select()
    .from(organizations)
    .where(eq(organizations.slug, sql.placeholder("slug")))
    .limit(1)
    .prepare("tenant_by_slug"),
);

/** A settings change: `undefined` keeps a setting, `null` removes it. */
export type SettingsPatch = { [K in keyof Omit<IntegrationSettings, "priorityRules">]?: IntegrationSettings[K] | null } & {
  awsAccountId?: string | null;
};

export interface CreateTenantInput {
  slug: string;
  name: string;
  onboardingFlowVersion: OnboardingFlowVersion;
  autoDiscoveryEnabled: boolean;
  settings: SettingsPatch;
  /** The request as sent, for the audit trail (scrubbed there). */
  request: Record<string, unknown>;
}

export interface UpdateTenantInput {
  name?: string;
  onboardingFlowVersion?: OnboardingFlowVersion;
  autoDiscoveryEnabled?: boolean;
  settings: SettingsPatch;
  request: Record<string, unknown>;
}

export interface TenantServiceDeps {
  db: DrizzleDatabase;
  /** The platform's own AWS accounts: never a tenant's aws_account_id. */
  platformAccounts?: ReadonlySet<string>;
}

function refusePlatformAccount(platformAccounts: ReadonlySet<string> | undefined, patch: SettingsPatch): void {
  if (patch.awsAccountId && platformAccounts?.has(patch.awsAccountId)) {
    // Well formed, refused by the platform's settings: 422 (400 is for what the schema refuses).
    const message = "is one of the platform's own AWS accounts, which tenants cannot connect";
    throw new UnprocessableError(`integration_settings.aws_account_id ${message}`, {
      code: "platform_account",
      fields: [{ field: "integration_settings.aws_account_id", message }],
    });
  }
}

const SETTING_FIELDS: Record<keyof SettingsPatch, string> = {
  agentPublicBaseUrl: "agent_public_base_url",
  regions: "regions",
  homeRegion: "home_region",
  targetingMode: "targeting_mode",
  targetTag: "target_tag",
  exclusionTag: "exclusion_tag",
  targetAllManagedInstances: "target_all_managed_instances",
  associationMaxConcurrency: "association_max_concurrency",
  associationMaxErrors: "association_max_errors",
  enableDefaultHostManagement: "enable_default_host_management",
  requireApproval: "require_approval",
  autoRemediate: "auto_remediate",
  awsAccountId: "aws_account_id",
};

/**
 * Settings a tenant-scoped token may not change: where the agent (run as root on every host) is downloaded from,
 * the approval gate on the tenant's own changes, and the onboarding flow.
 */
const ADMIN_ONLY_SETTINGS: readonly (keyof SettingsPatch)[] = ["agentPublicBaseUrl", "requireApproval"];

function refuseAdminOnlyChanges(principal: Principal, input: { onboardingFlowVersion?: unknown; settings: SettingsPatch }): void {
  if (isAdmin(principal)) return;
  const fields = [
    ...(input.onboardingFlowVersion !== undefined ? ["onboarding_flow_version"] : []),
    ...ADMIN_ONLY_SETTINGS.filter((key) => input.settings[key] !== undefined).map((key) => `integration_settings.${SETTING_FIELDS[key]}`),
  ];
  if (fields.length > 0) {
    throw new ForbiddenError(`only a platform admin may change ${fields.join(", ")}`, {
      fields: fields.map((field) => ({ field, message: "may only be changed by a platform admin" })),
    });
  }
}

/** Applies a patch over the current settings and checks the result as a whole. */
export function mergeSettings(
  current: IntegrationSettings,
  currentAccountId: string | null,
  patch: SettingsPatch,
): { settings: IntegrationSettings; awsAccountId: string | null } {
  const settings: Record<string, unknown> = { ...current };
  for (const key of Object.keys(SETTING_FIELDS) as (keyof SettingsPatch)[]) {
    if (key === "awsAccountId") continue;
    const value = patch[key];
    if (value === null) delete settings[key];
    else if (value !== undefined) settings[key] = value;
  }
  const merged = settings as IntegrationSettings;
  const awsAccountId = patch.awsAccountId === undefined ? currentAccountId : patch.awsAccountId;
  const problems: FieldProblem[] = [];
  if (merged.regions && merged.homeRegion && !merged.regions.includes(merged.homeRegion)) {
    problems.push({ field: "integration_settings.regions", message: "must include the home region" });
  }
  // Each setting is valid on its own (the schema says so); together, with what is stored, they are not: 422.
  if (problems.length > 0) throw new UnprocessableError("the settings contradict each other", { code: "inconsistent_settings", fields: problems });
  return { settings: merged, awsAccountId };
}

function isUniqueViolation(error: unknown): boolean {
  const withCode = error as { code?: string; cause?: { code?: string } };
  return (withCode.cause?.code ?? withCode.code) === "23505";
}

export function createTenantService({ db, platformAccounts }: TenantServiceDeps) {
  async function insertToken(
    principal: Principal,
    owner: { scope: ApiToken["scope"]; organizationId: number | null },
    input: NewTokenInput,
  ): Promise<{ row: ApiToken; token: string }> {
    const token = generateToken(owner.scope === "tenant" ? "mxdr-tenant" : "mxdr-admin");
    const row = await db.transaction(async (tx) => {
      const [created] = await tx
        .insert(apiTokens)
        .values({
          tokenHash: hashToken(token),
          ...owner,
          name: input.name,
          origin: "api",
          expiresAt: input.expiresInSeconds === undefined ? null : sql`now() + make_interval(secs => ${input.expiresInSeconds})`,
        })
        .returning();
      await recordAudit(tx, principal, {
        action: "token.create",
        organizationId: owner.organizationId,
        target: `token:${created!.id}`,
        details: { name: input.name, scope: owner.scope, expiresAt: created!.expiresAt?.toISOString() ?? null },
      });
      return created!;
    });
    return { row, token };
  }

  /** The account a tenant connected is the operator's to change: a tenant token moving it could point us anywhere. */
  async function refuseAccountMoveByTenant(principal: Principal, org: Organization, patch: SettingsPatch): Promise<void> {
    if (isAdmin(principal) || patch.awsAccountId === undefined || patch.awsAccountId === org.awsAccountId) return;
    const [connected] = await db
      .select({ id: integrationCredentials.id })
      .from(integrationCredentials)
      .where(
        and(
          eq(integrationCredentials.organizationId, org.id),
          eq(integrationCredentials.provider, "aws"),
          eq(integrationCredentials.status, "active"),
        ),
      );
    if (connected) {
      throw new ForbiddenError("only a platform admin may change the AWS account of a connected tenant (integration_settings.aws_account_id)", {
        code: "account_change_forbidden",
        fields: [{ field: "integration_settings.aws_account_id", message: "may only be changed by a platform admin once AWS is connected" }],
      });
    }
  }

  return {
    /** The principal behind a bearer token, or UnauthorizedError. */
    async authenticate(presentedToken: string, now = Date.now()): Promise<Principal> {
      const [token] = await liveTokenQuery(db).execute({ tokenHash: hashToken(presentedToken) });
      if (!token) throw new UnauthorizedError("invalid, revoked or expired token");
      // last_used_at is refreshed at most once a minute per token.
      if (!token.lastUsedAt || now - token.lastUsedAt.getTime() > 60_000) {
        await db
          .update(apiTokens)
          .set({ lastUsedAt: new Date(now) })
          .where(eq(apiTokens.id, token.id));
      }
      return principalOf(token);
    },

    /**
     * The tenant `slug` names, if this principal may see it; otherwise NotFound (also for a tenant token naming
     * another tenant: existence does not leak).
     */
    async visibleTenant(principal: Principal, slug: string): Promise<Organization> {
      const [org] = await tenantBySlugQuery(db).execute({ slug });
      if (!org || (principal.scope === "tenant" && principal.organizationId !== org.id)) {
        throw new NotFoundError(`tenant ${JSON.stringify(slug)} not found`);
      }
      return org;
    },

    /** The tenant of a tenant-scoped token (the seed-compatible endpoints act for it). */
    async tokenTenant(principal: Principal): Promise<Organization> {
      if (principal.scope !== "tenant" || principal.organizationId === null) {
        throw new ForbiddenError("the /api/onboarding/v2 endpoints act for the tenant of a tenant-scoped token");
      }
      const [org] = await db.select().from(organizations).where(eq(organizations.id, principal.organizationId));
      if (!org) throw new NotFoundError("the token's tenant no longer exists");
      return org;
    },

    async reload(org: Organization): Promise<Organization> {
      const [current] = await db.select().from(organizations).where(eq(organizations.id, org.id));
      if (!current) throw new NotFoundError(`tenant ${JSON.stringify(org.slug)} not found`);
      return current;
    },

    async create(principal: Principal, input: CreateTenantInput): Promise<Organization> {
      requireAdmin(principal);
      refusePlatformAccount(platformAccounts, input.settings);
      const { settings, awsAccountId } = mergeSettings({}, null, input.settings);
      return db
        .transaction(async (tx) => {
          const [created] = await tx
            .insert(organizations)
            .values({
              slug: input.slug,
              name: input.name,
              onboardingFlowVersion: input.onboardingFlowVersion,
              autoDiscoveryEnabled: input.autoDiscoveryEnabled,
              integrationSettings: settings,
              awsAccountId,
            })
            .returning();
          await recordAudit(tx, principal, {
            action: "tenant.create",
            organizationId: created!.id,
            target: `tenant:${created!.slug}`,
            details: { request: input.request },
          });
          return created!;
        })
        .catch((error: unknown) => {
          if (isUniqueViolation(error)) throw new ConflictError(`tenant ${JSON.stringify(input.slug)} already exists`);
          throw error;
        });
    },

    async list(principal: Principal, page: { limit: number; offset: number }): Promise<Organization[]> {
      if (principal.scope === "tenant") {
        return db.select().from(organizations).where(eq(organizations.id, principal.organizationId!));
      }
      return db.select().from(organizations).orderBy(asc(organizations.id)).limit(page.limit).offset(page.offset);
    },

    /** A settings change reaches the customer's account with the tenant's next preview/up run; nothing runs here. */
    async update(principal: Principal, org: Organization, input: UpdateTenantInput): Promise<Organization> {
      requireTenantAdmin(principal);
      refuseAdminOnlyChanges(principal, input);
      refusePlatformAccount(platformAccounts, input.settings);
      await refuseAccountMoveByTenant(principal, org, input.settings);
      const { settings, awsAccountId } = mergeSettings(org.integrationSettings, org.awsAccountId, input.settings);
      return db.transaction(async (tx) => {
        const [row] = await tx
          .update(organizations)
          .set({
            ...(input.name !== undefined ? { name: input.name } : {}),
            ...(input.onboardingFlowVersion !== undefined ? { onboardingFlowVersion: input.onboardingFlowVersion } : {}),
            ...(input.autoDiscoveryEnabled !== undefined ? { autoDiscoveryEnabled: input.autoDiscoveryEnabled } : {}),
            integrationSettings: settings,
            awsAccountId,
          })
          .where(eq(organizations.id, org.id))
          .returning();
        await recordAudit(tx, principal, {
          action: "tenant.update",
          organizationId: org.id,
          target: `tenant:${org.slug}`,
          details: { request: input.request },
        });
        return row!;
      });
    },

    /** A tenant-scoped API token; the token itself is returned once and only its hash is stored. */
    createToken(principal: Principal, org: Organization, input: NewTokenInput): Promise<{ row: ApiToken; token: string }> {
      requireAdmin(principal);
      return insertToken(principal, { scope: "tenant", organizationId: org.id }, input);
    },

    /** A platform-admin API token (platform admin); returned once, only its hash is stored. */
    createAdminToken(principal: Principal, input: NewTokenInput): Promise<{ row: ApiToken; token: string }> {
      requireAdmin(principal);
      return insertToken(principal, { scope: "platform_admin", organizationId: null }, input);
    },

    /**
     * Token metadata (never the token or its hash), by id: the tenant's tokens (`org`, for whoever may see the tenant),
     * or the platform-admin tokens (`org` null, platform admin).
     */
    async listTokens(principal: Principal, org: Organization | null, page: { limit: number; afterId?: number }): Promise<ApiToken[]> {
      if (org === null) requireAdmin(principal);
      return db
        .select()
        .from(apiTokens)
        .where(and(ownedBy(org), page.afterId === undefined ? undefined : gt(apiTokens.id, page.afterId)))
        .orderBy(asc(apiTokens.id))
        .limit(page.limit);
    },

    /**
     * Revokes a token of the tenant (`org`) or a platform-admin token (`org` null, platform admin); revoking a revoked
     * token changes nothing. A token cannot revoke itself, so the caller always keeps a way in. Open event streams of
     * the token end at their next check (api/sse.ts).
     */
    async revokeToken(principal: Principal, org: Organization | null, tokenId: number): Promise<ApiToken> {
      requireTenantAdmin(principal);
      if (org === null) requireAdmin(principal);
      const [token] = await db
        .select()
        .from(apiTokens)
        .where(and(eq(apiTokens.id, tokenId), ownedBy(org)));
      if (!token) throw new NotFoundError(`token ${tokenId} not found`);
      if (token.id === principal.tokenId) {
        throw new ConflictError("a token cannot revoke itself: revoke it with another token", { code: "own_token" });
      }
      if (token.revokedAt) return token;
      return db.transaction(async (tx) => {
        const [revoked] = await tx
          .update(apiTokens)
          .set({ revokedAt: sql`now()` })
          .where(and(eq(apiTokens.id, tokenId), isNull(apiTokens.revokedAt)))
          .returning();
        if (!revoked) return (await tx.select().from(apiTokens).where(eq(apiTokens.id, tokenId)))[0]!;
        await recordAudit(tx, principal, {
          action: "token.revoke",
          organizationId: token.organizationId,
          target: `token:${token.id}`,
          details: { name: token.name, scope: token.scope },
        });
        return revoked;
      });
    },

    /** Who did what to the tenant (whoever sees the tenant), newest first. */
    activity(org: Organization, page: { limit: number; beforeId?: number }) {
      return tenantAuditTrail(db, org.id, page);
    },

    /** Whether the token is still accepted (not revoked, not expired). */
    async tokenIsLive(tokenId: number): Promise<boolean> {
      const [token] = await tokenIsLiveQuery(db).execute({ tokenId });
      return token !== undefined;
    },

    /** Every tenant's status, milestones and last run, and the onboarding KPIs (platform admin). */
    overview(principal: Principal) {
      requireAdmin(principal);
      return onboardingOverview(db);
    },
  };
}

function principalOf(token: ApiToken): Principal {
  return {
    tokenId: token.id,
    tokenName: token.name,
    scope: token.scope,
    organizationId: token.organizationId,
    actor: actorOf(token),
    expiresAt: token.expiresAt,
  };
}

/** A tenant's tokens, or (null) the platform-admin tokens. */
function ownedBy(org: Organization | null) {
  return org === null ? eq(apiTokens.scope, "platform_admin") : and(eq(apiTokens.scope, "tenant"), eq(apiTokens.organizationId, org.id));
}

export interface NewTokenInput {
  name: string;
  /** The token is refused this many seconds after its creation; undefined: it does not expire. */
  expiresInSeconds?: number;
}

export type TokenStatus = "active" | "revoked" | "expired";

export function tokenStatus(token: Pick<ApiToken, "revokedAt" | "expiresAt">, now = new Date()): TokenStatus {
  if (token.revokedAt) return "revoked";
  if (token.expiresAt && token.expiresAt <= now) return "expired";
  return "active";
}

export type TenantService = ReturnType<typeof createTenantService>;
