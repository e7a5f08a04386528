/**
 * One rule for stopped instances, through the API on real PostgreSQL: a tenant whose running instance has a healthy
 * agent and whose other targeted instances are stopped (one never got the agent, one's install failed before it
 * stopped, one has an agent whose heartbeats stopped with it) is completed, and every answer says so alike:
 * onboarding status, deployment health, validation, progress (v1 and v2).
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { agents, cloudAssets, discoveryScans, organizations } from "../../db/schema";
import { HEARTBEAT_STALE_AFTER_MS } from "../../services/rollout/enrollment";

import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { SEEDED_REGION, seedTenant, type SeededTenant } from "../harness/seeded-tenant";

let database: Database;
let service: TestPlatform | undefined;
let tenant: SeededTenant;

const instance = (assetId: string, state: string, agentStatus: "checked_in" | "pending" | "failed") => ({
  organizationId: tenant.organizationId,
  provider: "aws" as const,
  assetType: "ec2",
  assetId,
  region: SEEDED_REGION,
  tags: { Name: assetId },
  assetData: { state, platform: "linux" },
  agentCompatible: true,
  agentStatus,
  agentStatusAt: new Date(),
});

beforeAll(async () => {
  service = await startTestPlatform();
  database = service.platform.database;
  tenant = await seedTenant(service, { status: "validating", appliedUp: true });
  const { db } = database;
  await db.insert(discoveryScans).values({
    organizationId: tenant.organizationId,
    trigger: "after_up",
    actor: "test",
    status: "succeeded",
    startedAt: new Date(),
    finishedAt: new Date(),
    assetsFound: 4,
    regions: [{ region: SEEDED_REGION, status: "succeeded", assets: 4 }],
  });
  await db
    .insert(cloudAssets)
    .values([
      instance("i-running", "running", "checked_in"),
      instance("i-stopped-never", "stopped", "pending"),
      instance("i-stopped-failed", "stopped", "failed"),
      instance("i-stopping-agent", "stopping", "checked_in"),
    ]);
  const stale = new Date(Date.now() - 3 * HEARTBEAT_STALE_AFTER_MS);
  await db.insert(agents).values([
    { organizationId: tenant.organizationId, instanceId: "i-running", hostname: "run", version: "1.0.0", lastHeartbeatAt: new Date() },
    { organizationId: tenant.organizationId, instanceId: "i-stopping-agent", hostname: "stop", version: "1.0.0", lastHeartbeatAt: stale },
  ]);
});

afterAll(async () => {
  await service?.stop();
});

describe("stopped instances hold nothing up, in every answer", () => {
  it("a tenant whose running instances have healthy agents completes, with stopped ones left", async () => {
    await service!.platform.services.onboarding.afterRolloutChange(tenant.organizationId);
    const [org] = await database.db.select().from(organizations).where(eq(organizations.id, tenant.organizationId));
    expect(org!.onboardingStatus, JSON.stringify(org!.statusReasons)).toBe("completed");
    expect((await tenant.call("GET", `/v1/tenants/${tenant.slug}`)).body.onboarding_status).toBe("completed");
  });

  it("deployment health is healthy: stopped instances owe neither an agent nor heartbeats", async () => {
    const health = await tenant.call("GET", `/v1/tenants/${tenant.slug}/deployment/health`);
    expect(health.status, JSON.stringify(health.body)).toBe(200);
    expect(health.body).toMatchObject({ status: "healthy", targeted_without_agent: 0 });
    expect((await tenant.call("GET", "/api/onboarding/v2/deployment/health")).body.status).toBe("healthy");
  });

  it("validation passes every check", async () => {
    const validation = await tenant.call("GET", `/v1/tenants/${tenant.slug}/validation`);
    expect(validation.body.checks.filter((check: { status: string }) => check.status !== "passed")).toEqual([]);
  });

  it("progress shows deployment and validation completed, and the deployment summary counts the stopped ones apart", async () => {
    const progress = await tenant.call("GET", `/v1/tenants/${tenant.slug}/progress`);
    expect(progress.body.deployment).toMatchObject({ status: "completed", progress: 100, failed: 0 });
    expect(progress.body.validation.status).toBe("completed");
    expect(progress.body.onboarding_status).toBe("completed");
    const deployment = await tenant.call("GET", `/v1/tenants/${tenant.slug}/deployment?refresh=false`);
    expect(deployment.body).toMatchObject({ targeted: 4, installed: 2, stopped: 2, failed: 0, pending: 0 });
  });
});
