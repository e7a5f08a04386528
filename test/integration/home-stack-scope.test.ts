/**
 * With organization accounts, a tenant has many stacks: what the tenant's own onboarding reads about "its stack" (the
 * applied outputs its rollout follows, the latest `up` its validation shows) is its home stack's, never an
 * organization account's run that finished later; each stack's discovery records and removes only its own account's
 * assets; and the tenant's onboarding milestones (the KPIs') span its accounts. Real PostgreSQL, the services' own code.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { randomBytes } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import { createKeyring } from "../../db/crypto";
import { auditLog, cloudAssets, organizations, runs, tenantAwsAccounts } from "../../db/schema";
import { ORGANIZATION_CONNECTED_ACTION, onboardingOverview } from "../../services/core/onboarding-overview";
import { storeScan } from "../../services/discovery/asset-store";
import { createOrganizationService } from "../../services/organization/organization-service";
import { appliedStackOutputs } from "../../services/core/applied-outputs";
import { realPostgres } from "../harness/databases";

let database: Database;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
});

afterAll(async () => {
  await cleanup?.();
});

describe("the tenant's home stack among its accounts' stacks", () => {
  it("gives the home stack's applied outputs, not those of an organization account's later up", async () => {
    const [org] = await database.db.insert(organizations).values({ slug: "scope-co", name: "Scope", awsAccountId: "210987654321" }).returning();
    const finished = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000);
    await database.db.insert(runs).values([
      {
        organizationId: org!.id,
        stackName: "tenant-scope-co",
        kind: "up",
        status: "succeeded",
        actor: "test",
        finishedAt: finished(10),
        outputs: { associationId: "home-association" },
      },
      {
        organizationId: org!.id,
        stackName: "tenant-scope-co--310987654321",
        awsAccountId: "310987654321",
        kind: "up",
        status: "succeeded",
        actor: "system:organization",
        finishedAt: finished(1),
        outputs: { associationId: "member-association" },
      },
    ]);
    expect(await appliedStackOutputs(database.db, org!.id)).toEqual({ associationId: "home-association" });
  });
});

describe("each stack's discovery answers for its own account's assets", () => {
  const record = (assetId: string, region = "us-east-1") => ({
    assetType: "ec2",
    assetId,
    region,
    tags: {},
    assetData: { state: "running" },
    priority: "medium" as const,
    agentCompatible: true,
  });

  it("records assets in the account scanned, and a scan finds gone only its own account's assets", async () => {
    const [org] = await database.db.insert(organizations).values({ slug: "assets-co", name: "Assets", awsAccountId: "111100001111" }).returning();
    const id = org!.id;
    await database.db.insert(tenantAwsAccounts).values({
      organizationId: id,
      accountId: "222200002222",
      source: "organization",
      stackName: "tenant-assets-co_222200002222",
      status: "deploying",
    });
    const home = { kind: "home" as const, awsAccountId: "111100001111" };
    const member = { kind: "member" as const, awsAccountId: "222200002222" };
    await storeScan(database.db, { organizationId: id, stack: home, assets: [record("i-home1"), record("i-home2")], scannedRegions: ["us-east-1"] });
    await storeScan(database.db, { organizationId: id, stack: member, assets: [record("i-member1")], scannedRegions: ["us-east-1"] });
    const live = async () =>
      (
        await database.db
          .select()
          .from(cloudAssets)
          .where(and(eq(cloudAssets.organizationId, id), isNull(cloudAssets.removedAt)))
      )
        .map((asset) => `${asset.awsAccountId}/${asset.assetId}`)
        .sort();
    expect(await live()).toEqual(["111100001111/i-home1", "111100001111/i-home2", "222200002222/i-member1"]);

    // The home account's next scan no longer sees i-home2: only it is gone; the member account's asset is not the home's to judge.
    await storeScan(database.db, { organizationId: id, stack: home, assets: [record("i-home1")], scannedRegions: ["us-east-1"] });
    expect(await live()).toEqual(["111100001111/i-home1", "222200002222/i-member1"]);
    // The member account empty now: its asset is gone, the home account's stays.
    await storeScan(database.db, { organizationId: id, stack: member, assets: [], scannedRegions: ["us-east-1"] });
    expect(await live()).toEqual(["111100001111/i-home1"]);
    // Nothing is deleted: gone assets are marked.
    expect(await database.db.select().from(cloudAssets).where(eq(cloudAssets.organizationId, id))).toHaveLength(3);
  });
});

describe("the onboarding milestones of a tenant with organization accounts", () => {
  it("enters the cohort when its organization is connected, and completes when every account has", async () => {
    const [org] = await database.db.insert(organizations).values({ slug: "kpi-co", name: "KPI", onboardingStatus: "not_started" }).returning();
    const id = org!.id;
    const accountsOf = [
      { accountId: "333300003333", status: "completed" as const },
      { accountId: "444400004444", status: "deploying" as const },
    ];
    await database.db.insert(tenantAwsAccounts).values(
      accountsOf.map((account) => ({
        organizationId: id,
        source: "organization" as const,
        stackName: `tenant-kpi-co_${account.accountId}`,
        ...account,
      })),
    );
    await database.db
      .insert(auditLog)
      .values({ actor: "token:1", organizationId: id, action: ORGANIZATION_CONNECTED_ACTION, target: "tenant:kpi-co" });
    const organizationService = createOrganizationService({
      db: database.db,
      keyring: createKeyring({ key: randomBytes(32).toString("base64") }),
      runs: { requestForAccount: () => Promise.reject(new Error("no run is requested here")) },
      checkRole: () => Promise.reject(new Error("no role is checked here")),
      listOrganization: () => Promise.reject(new Error("nothing is listed here")),
      removeStack: () => Promise.resolve(),
      maxAccountsPerTenant: 1000,
    });
    const milestones = async () => (await onboardingOverview(database.db)).tenants.find((tenant) => tenant.slug === "kpi-co")!;
    expect(await organizationService.recordCompletionWhenAllDone(id)).toBe(false);
    expect(await milestones()).toMatchObject({ connectedAt: expect.any(Date), completedAt: null });

    await database.db.update(tenantAwsAccounts).set({ status: "completed" }).where(eq(tenantAwsAccounts.organizationId, id));
    expect(await organizationService.recordCompletionWhenAllDone(id)).toBe(true);
    // Written once: the first time the tenant completed is the milestone.
    expect(await organizationService.recordCompletionWhenAllDone(id)).toBe(false);
    const done = await milestones();
    expect(done.completedAt).toBeInstanceOf(Date);
    expect(done.secondsToOnboard).toBeGreaterThanOrEqual(0);
  });
});
