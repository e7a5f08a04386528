/**
 * Which bootstrap template version each tenant runs, read from its own bootstrap role's version tag (the bootstrap
 * policy lets the role read its own tags), and what the platform does about an older one: the update, action by
 * action, with the customer's update link; runs that need what only the update grants wait for it; operators see how
 * many tenants run each version.
 */
import { and, count, eq, isNotNull, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { organizations, runs, tenantAwsAccounts, tenantAwsOrganizations, type Organization, type RunHold, type RunKind } from "../../db/schema";
import { customerRoleNames } from "../../programs/tenant/naming";
import { mapBounded } from "../../lib/concurrency";
import { ServiceNotConfiguredError } from "../../lib/errors";
import { assumeRoleCredentials, sessionNameFor } from "../core/assume-role";
import { loadAwsCredential } from "../core/aws-credential-store";
import { tenantExternalId } from "../core/tenant-external-id";
import { clustersInScope } from "../core/cluster-scope";
import { type Principal, requireAdmin } from "../core/principal";
import type { BootstrapLinkService } from "./bootstrap-link-service";
import { ORGANIZATION_TEMPLATE_PARAMETERS, organizationNames } from "./organization-template-fns";
import { bootstrapNames, tenantStackRequests } from "./bootstrap-policy-fns";
import { BOOTSTRAP_VERSION_TAG } from "./bootstrap-template-fns";
import {
  grantedActions,
  holdFor,
  policyActionsOf,
  policyChanges,
  updateInstructions,
  type PolicyChanges,
  type UpdateInstructions,
} from "./bootstrap-version-fns";

/** The version tag of a bootstrap role; null when the role has none (or may not read it: a role older than versions). */
export type RoleVersionReader = (role: { roleArn: string; externalId: string; sessionName: string }) => Promise<string | null>;

export const readRoleVersionWithIam: RoleVersionReader = async ({ roleArn, externalId, sessionName }) => {
  const { IAMClient, ListRoleTagsCommand } = await import("@aws-sdk/client-iam");
  // A run request waits on this read: bounded, so an unreachable IAM costs seconds, not the request.
  const iam = new IAMClient({
    region: "us-east-1",
    credentials: assumeRoleCredentials({ roleArn, externalId, sessionName }),
    maxAttempts: 2,
    requestHandler: { requestTimeout: 10_000, connectionTimeout: 5_000 },
  });
  try {
    const { Tags } = await iam.send(new ListRoleTagsCommand({ RoleName: roleArn.slice(roleArn.lastIndexOf("/") + 1) }));
    const value = Tags?.find((tag) => tag.Key === BOOTSTRAP_VERSION_TAG)?.Value;
    return value && /^[0-9a-f]{12}$/.test(value) ? value : null;
  } catch (error) {
    const name = (error as { name?: string }).name ?? "";
    if (/AccessDenied/.test(name)) return null;
    throw error;
  } finally {
    iam.destroy();
  }
};

export interface BootstrapVersionStatus {
  current: string;
  /** What the tenant's bootstrap role carries; null: not connected, or a role from before versioned templates. */
  running: string | null;
  readAt: Date | null;
  updateAvailable: boolean;
  /** What the update changes in the bootstrap policy and boundary; null when the running version's template is unknown. */
  changes: PolicyChanges | null;
  update: (UpdateInstructions & { templateUrl: string }) | null;
  heldRuns: { runId: string; hold: RunHold }[];
  /** An AWS Organization's member accounts (their roles come from the StackSet), and the organization stack's update. */
  organization: {
    accounts: { awsAccountId: string; running: string | null; readError: boolean }[];
    updateAvailable: boolean;
    update: (UpdateInstructions & { templateUrl: string; stackName: string }) | null;
  } | null;
}

export interface BootstrapVersionsDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  links?: BootstrapLinkService;
  readRoleVersion?: RoleVersionReader;
  /** Sends the tenant's held runs to the queue (the run service). */
  releaseHeldRuns(organizationId: number): Promise<string[]>;
}

const homeRegionOf = (org: Organization) => org.integrationSettings.homeRegion ?? org.integrationSettings.regions?.[0] ?? "us-east-1";

export function createBootstrapVersions(deps: BootstrapVersionsDeps) {
  const { db } = deps;
  const readRoleVersion = deps.readRoleVersion ?? readRoleVersionWithIam;

  function links(): BootstrapLinkService {
    if (!deps.links) {
      throw new ServiceNotConfiguredError(
        "the service has no bootstrap template bucket: set BOOTSTRAP_TEMPLATE_BUCKET and PLATFORM_PRINCIPAL_ARN to version the bootstrap template",
      );
    }
    return deps.links;
  }

  /** Reads the version the tenant's role carries now, and keeps it; undefined when the tenant has no AWS connection. */
  async function readVersion(org: Organization): Promise<{ running: string | null; readAt: Date } | undefined> {
    const credential = await loadAwsCredential(db, deps.keyring, org.id);
    if (credential?.status !== "active") return undefined;
    const running = await readRoleVersion({
      roleArn: credential.data.bootstrapRoleArn,
      externalId: credential.data.externalId,
      sessionName: sessionNameFor(org.slug),
    });
    const readAt = new Date();
    await db.update(organizations).set({ bootstrapVersion: running, bootstrapVersionReadAt: readAt }).where(eq(organizations.id, org.id));
    return { running, readAt };
  }

  /** Member accounts read per status call at most, a few at a time (an organization may have hundreds). */
  const MAX_ACCOUNTS_READ = 200;

  async function organizationVersions(org: Organization, current: string): Promise<BootstrapVersionStatus["organization"]> {
    const [connection] = await db.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, org.id));
    if (!connection) return null;
    const members = await db
      .select({ accountId: tenantAwsAccounts.accountId })
      .from(tenantAwsAccounts)
      .where(and(eq(tenantAwsAccounts.organizationId, org.id), eq(tenantAwsAccounts.source, "organization"), isNull(tenantAwsAccounts.offboardedAt)))
      .orderBy(tenantAwsAccounts.accountId)
      .limit(MAX_ACCOUNTS_READ);
    const externalId = await tenantExternalId(db, deps.keyring, org.id);
    const accounts = await mapBounded(members, 4, async ({ accountId }) => {
      try {
        const running = await readRoleVersion({
          roleArn: `arn:aws:iam::${accountId}:role/${customerRoleNames(org.slug).bootstrapRoleName}`,
          externalId,
          sessionName: sessionNameFor(org.slug),
        });
        await db
          .update(tenantAwsAccounts)
          .set({ bootstrapVersion: running, bootstrapVersionReadAt: new Date() })
          .where(and(eq(tenantAwsAccounts.organizationId, org.id), eq(tenantAwsAccounts.accountId, accountId)));
        return { awsAccountId: accountId, running, readError: false };
      } catch {
        // The StackSet has not reached the account (yet), or it cannot be reached: its version is not known.
        return { awsAccountId: accountId, running: null, readError: true };
      }
    });
    const updateAvailable = accounts.some((account) => !account.readError && account.running !== current);
    const templateUrl = updateAvailable ? await links().organizationTemplateUrl() : undefined;
    const stackName = organizationNames(org.slug).stackName;
    return {
      accounts,
      updateAvailable,
      update: templateUrl
        ? {
            templateUrl,
            stackName,
            ...updateInstructions({ region: homeRegionOf(org), stackName, templateUrl, parameters: Object.values(ORGANIZATION_TEMPLATE_PARAMETERS) }),
          }
        : null,
    };
  }

  async function changesFrom(running: string): Promise<{ changes: PolicyChanges; granted: string[] } | null> {
    const before = await links().templateOf(running);
    if (!before) return null;
    const runningActions = policyActionsOf(before);
    const changes = policyChanges(runningActions, policyActionsOf(links().current().body));
    return { changes, granted: grantedActions(changes, runningActions) };
  }

  return {
    /** The tenant's version now (read from its role), the update when there is one, and the runs waiting for it. */
    async status(org: Organization): Promise<BootstrapVersionStatus> {
      const current = links().current().version;
      const read = await readVersion(org);
      const running = read?.running ?? null;
      const updateAvailable = read !== undefined && running !== current;
      if (read && !updateAvailable) await deps.releaseHeldRuns(org.id);
      const diff = updateAvailable && running ? await changesFrom(running) : null;
      const { url: templateUrl } = await links().ensurePublished();
      const held = await db
        .select({ runId: runs.id, hold: runs.heldFor })
        .from(runs)
        .where(and(eq(runs.organizationId, org.id), eq(runs.status, "queued"), isNotNull(runs.heldFor)));
      return {
        current,
        running,
        readAt: read?.readAt ?? null,
        updateAvailable,
        changes: diff?.changes ?? null,
        update: updateAvailable
          ? { templateUrl, ...updateInstructions({ region: homeRegionOf(org), stackName: bootstrapNames(org.slug).stackName, templateUrl }) }
          : null,
        heldRuns: held.map((row) => ({ runId: row.runId, hold: row.hold! })),
        organization: await organizationVersions(org, current),
      };
    },

    /** A run of the home stack waits when it needs an action only the current version grants (read fresh). */
    async holdFor(org: Organization, kind: RunKind): Promise<RunHold | undefined> {
      if (kind !== "up" || !deps.links) return undefined;
      const read = await readVersion(org).catch(() => undefined);
      const current = deps.links.current().version;
      if (!read?.running || read.running === current) return undefined;
      const diff = await changesFrom(read.running).catch(() => null);
      if (!diff) return undefined;
      const clusters = (await clustersInScope(db, org, { kind: "home", awsAccountId: org.awsAccountId })).length > 0;
      const needed = new Set(
        tenantStackRequests({ accountId: org.awsAccountId ?? "000000000000", tenantSlug: org.slug, regions: [homeRegionOf(org)], clusters }).map(
          (request) => request.action,
        ),
      );
      return holdFor(kind, { granted: diff.granted, needed, running: read.running, current });
    },

    /** Operators: how many live tenants run each version (as last read), and which one is current. */
    async counts(principal: Principal): Promise<{ current: string | null; versions: { version: string | null; tenants: number }[] }> {
      requireAdmin(principal);
      const rows = await db
        .select({ version: organizations.bootstrapVersion, tenants: count() })
        .from(organizations)
        .where(and(isNull(organizations.offboardedAt), isNotNull(organizations.bootstrapVersionReadAt)))
        .groupBy(organizations.bootstrapVersion);
      return { current: deps.links?.current().version ?? null, versions: rows.sort((a, b) => b.tenants - a.tenants) };
    },
  };
}

export type BootstrapVersions = ReturnType<typeof createBootstrapVersions>;
