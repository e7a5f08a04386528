/**
 * A customer estate the tests were not designed around, onboarded through the HTTP API of the service process with
 * default settings: three regions, mostly untagged instances, Linux and Windows, stopped and terminated ones, two SSM
 * cannot reach (no instance profile; no SSM agent), unicode names, a 50-tag instance, an excluded one
 * (test/harness/estates.ts). The agent must reach every running managed instance in every region, every state that
 * needs a person must say so (action_required, with the fix), a settings change must show as pending until an up
 * applies it, and onboarding must end `completed` once the customer fixed what was named.
 *
 * Real parts: the service process, PostgreSQL, the Pulumi CLI with the stand-in AWS provider on moto, moto's EC2, SSM
 * parameters and documents. moto has no DescribeInstanceInformation, DescribeInstanceAssociationsStatus or
 * GetServiceSetting: test/harness/ssm-standin.ts answers exactly those, per region, from its managed-instance registry
 * and the stand-in provider's association store (an association applies only to the managed instances of its own
 * region that match its targets, minus those the document's exclusion check skips); everything else goes to moto.
 * Agents enroll as the install script does: with the enrollment token read from their region's SecureString.
 */
import { randomBytes } from "node:crypto";
import { CreateTagsCommand, EC2Client } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { agentEnroller } from "../harness/agent-hosts";
import { customerAccountCredentials } from "../harness/customer-account";
import { planEstate, seedEstate, type SeededEstate, type SeededInstance } from "../harness/estates";
import { serviceUnderTest } from "../harness/service-under-test";
import { newTenantRecord } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"];
const HOME = REGIONS[0]!;
const customer = newTenantRecord(`estate-${randomBytes(3).toString("hex")}`, { firstAccount: 500_000_000_000 });
const { slug, account } = customer;

const WAIT = { timeoutMs: 180_000, intervalMs: 300 };
const waitFor = waitForWith(WAIT);

let estate: SeededEstate;
const service = serviceUnderTest({
  name: "estate",
  workspace: "database-state",
  ssmStandIn: { accountId: account },
  wait: WAIT,
  beforeServerStart: async () => {
    estate = await seedEstate(planEstate({ regions: REGIONS, size: 24, seed: 7 }), {
      credentials: await customerAccountCredentials(account),
      ssmStandIn: service.ssm,
    });
  },
});
const { call } = service;

async function up(): Promise<any> {
  const requested = await call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
  expect(requested.status, requested.text).toBe(202);
  const run = await service.settledRun(slug, requested.body.run_id);
  expect(run.status, JSON.stringify(run.error)).toBe("succeeded");
  return run;
}

/** Discovery after the up, then the rollout read from SSM (what the service does by itself after every scan). */
async function settledDeployment(): Promise<any> {
  await waitFor("discovery", async () => {
    const scans = await call("GET", `/v1/tenants/${slug}/discovery/scans`);
    const latest = scans.body.scans[0];
    return latest && !["queued", "running"].includes(latest.status) ? latest : undefined;
  });
  const deployment = await call("GET", `/v1/tenants/${slug}/deployment`);
  expect(deployment.status, deployment.text).toBe(200);
  expect(deployment.body.refreshed, deployment.body.refresh_error).toBe(true);
  return deployment.body;
}

/** What the install script does on each host: enroll with its region's enrollment token and the instance's signed identity. */
async function enroll(instances: SeededInstance[]): Promise<void> {
  const enrollAgent = agentEnroller(call, customer);
  for (const instance of instances) {
    const enrolled = await enrollAgent(instance);
    expect(enrolled.status, enrolled.text).toBe(201);
  }
}

const byId = (deployment: any) => new Map<string, any>(deployment.instances.map((instance: any) => [instance.asset_id, instance]));

describe("a multi-region, mostly untagged estate with default settings", () => {
  it("a. the agent reaches every running managed instance in every region; every other instance says why, and what needs a person is action_required", async () => {
    const created = await service.createTenant(customer, { name: "Estate GmbH — Zürich", regions: REGIONS });
    // The default targeting is visible, not `{}`.
    expect(created.body.effective_rollout).toMatchObject({
      targeting_mode: "all_managed",
      exclusion_tag: { key: "xdr:monitor", value: "false" },
      regions: REGIONS,
    });
    const connected = await service.connectAws(customer);
    expect(connected.status, connected.text).toBe(201);

    const run = await up();
    expect(Object.keys(run.outputs.regions).sort()).toEqual([...REGIONS].sort());
    const deployment = await settledDeployment();
    const instances = byId(deployment);

    const running = estate.instances.filter((i) => i.state === "running");
    const excluded = (i: SeededInstance) => i.tags["xdr:monitor"] === "false" && i.metadataTags;
    const reached = running.filter((i) => !i.unmanaged && !excluded(i));
    expect(new Set(reached.map((i) => i.region))).toEqual(new Set(REGIONS));
    for (const instance of reached)
      expect(instances.get(instance.instanceId), instance.key).toMatchObject({ agent_status: "installed", targeted: true });
    for (const instance of running.filter(excluded)) {
      expect(instances.get(instance.instanceId), instance.key).toMatchObject({
        agent_status: "not_targeted",
        reason: expect.stringContaining("xdr:monitor=false"),
      });
    }
    for (const instance of estate.instances.filter((i) => i.state === "stopped")) {
      expect(instances.get(instance.instanceId), instance.key).toMatchObject({
        agent_status: "pending",
        reason: "stopped: the association runs when it starts",
      });
    }
    for (const instance of running.filter((i) => i.unmanaged && !excluded(i))) {
      expect(instances.get(instance.instanceId), instance.key).toMatchObject({
        agent_status: "pending",
        reason: expect.stringMatching(/not an SSM managed instance.*instance profile/),
      });
    }
    // Terminated instances are not listed by discovery; nothing without an agent lacks a reason.
    for (const instance of estate.instances.filter((i) => i.state === "terminated")) expect(instances.has(instance.instanceId)).toBe(false);
    for (const instance of deployment.instances) {
      if (!["installed", "checked_in"].includes(instance.agent_status)) expect(instance.reason, instance.asset_id).toEqual(expect.any(String));
    }
    expect(deployment.change_pending).toBeNull();
    expect(deployment.targeting).toContain("every SSM-managed instance");

    const tenant = await call("GET", `/v1/tenants/${slug}`);
    expect(tenant.body.onboarding_status).toBe("action_required");
    expect(tenant.body.action_required).toEqual([
      {
        reason: expect.stringMatching(/^\d+ targeted instances? SSM does not manage/),
        fix: expect.stringContaining("enable_default_host_management"),
      },
    ]);
    const progress = await call("GET", `/v1/tenants/${slug}/progress`);
    expect(progress.body).toMatchObject({ onboarding_status: "action_required", action_required: tenant.body.action_required });

    await enroll(reached);
  });

  it("b (after a). a settings change shows as pending until an up applies it; Default Host Management then brings the instances without a profile in", async () => {
    const patched = await call("PATCH", `/v1/tenants/${slug}`, { body: { integration_settings: { enable_default_host_management: true } } });
    expect(patched.status, patched.text).toBe(200);
    const pending = await call("GET", `/v1/tenants/${slug}/deployment?refresh=false`);
    expect(pending.body.change_pending).toMatch(/^change pending: run an up .*Default Host Management: applied off; requested on/);
    expect((await call("GET", `/v1/tenants/${slug}/validation`)).body.change_pending).toBe(pending.body.change_pending);
    expect((await call("GET", `/v1/tenants/${slug}/progress`)).body.change_pending).toBe(pending.body.change_pending);

    const run = await up();
    expect(run.outputs.rollout.defaultHostManagement).toBe(true);
    // In AWS the instances without an instance profile register with SSM once the setting is on.
    service.ssm.addInstances(estate.managedInstances({ defaultHostManagement: true }));
    const deployment = await settledDeployment();
    expect(deployment.change_pending).toBeNull();
    const instances = byId(deployment);
    const profileless = estate.instances.filter(
      (i) => i.state === "running" && i.unmanaged === "no_instance_profile" && !(i.tags["xdr:monitor"] === "false" && i.metadataTags),
    );
    for (const instance of profileless) expect(instances.get(instance.instanceId), instance.key).toMatchObject({ agent_status: "installed" });
    await enroll(profileless);
    // The instance without an SSM agent still needs the customer.
    expect((await call("GET", `/v1/tenants/${slug}`)).body.onboarding_status).toBe("action_required");
  });

  it("c (after a, b). once the customer installs the SSM agent on the last instance, every check is green and onboarding completes by itself", async () => {
    const agentless = estate.instances.filter(
      (i) => i.state === "running" && i.unmanaged === "no_ssm_agent" && !(i.tags["xdr:monitor"] === "false" && i.metadataTags),
    );
    service.ssm.addInstances(
      agentless.map((i) => ({
        instanceId: i.instanceId,
        region: i.region,
        platformType: i.platform === "windows" ? "Windows" : "Linux",
        tags: i.tags,
        metadataTags: i.metadataTags,
      })),
    );
    const deployment = await call("GET", `/v1/tenants/${slug}/deployment`);
    for (const instance of agentless)
      expect(byId(deployment.body).get(instance.instanceId), instance.key).toMatchObject({ agent_status: "installed" });
    await enroll(agentless);

    // b's up discovers the estate again: its scan may still be running (assets_discovered pending) until it is done.
    const validation = await waitFor("the after-up discovery of b settled", async () => {
      const answer = await call("GET", `/v1/tenants/${slug}/validation`);
      return answer.body.checks.some((check: any) => check.reason === "discovery is running") ? undefined : answer;
    });
    expect(validation.body.checks.map((check: any) => [check.name, check.status, check.reason])).toEqual(
      ["integration_healthy", "assets_discovered", "agents_targeted", "agents_installed", "agents_checked_in"].map((name) => [
        name,
        "passed",
        undefined,
      ]),
    );
    const tenant = await call("GET", `/v1/tenants/${slug}`);
    expect(tenant.body).toMatchObject({ onboarding_status: "completed", action_required: [] });
    expect((await call("GET", `/v1/tenants/${slug}/progress`)).body.overall_progress).toBe(100);
  });

  it("d (after a). an instance tagged for exclusion after its agent checked in stays checked in: the agent is the customer's to remove", async () => {
    const [target] = estate.instances.filter(
      (i) => i.state === "running" && i.region === REGIONS[1] && !i.unmanaged && i.tags["xdr:monitor"] === undefined,
    );
    const ec2 = new EC2Client({ region: target!.region, credentials: await customerAccountCredentials(account) });
    await ec2.send(new CreateTagsCommand({ Resources: [target!.instanceId], Tags: [{ Key: "xdr:monitor", Value: "false" }] }));
    ec2.destroy();
    const scan = await call("POST", `/v1/tenants/${slug}/discovery/scans`);
    expect(scan.status).toBe(202);
    const deployment = await settledDeployment();
    // It enrolled before: an agent that checked in stays checked in (it is the customer's to uninstall).
    expect(byId(deployment).get(target!.instanceId)).toMatchObject({ agent_status: "checked_in" });
  });

  it("e (after a). after offboarding, health, validation and progress say the tenant is offboarded; no agent is reported healthy", async () => {
    const offboard = await call("POST", `/v1/tenants/${slug}/offboard`);
    expect(offboard.status, offboard.text).toBe(202);
    await waitFor("offboarding", async () => {
      const got = await call("GET", `/v1/tenants/${slug}`);
      return got.body.onboarding_status === "offboarded" ? got.body : undefined;
    });
    const health = await call("GET", `/v1/tenants/${slug}/deployment/health`);
    expect(health.body).toMatchObject({ status: "offboarded", agents_healthy: 0 });
    expect(health.body.agents.every((agent: any) => agent.healthy === false)).toBe(true);
    const validation = await call("GET", `/v1/tenants/${slug}/validation`);
    expect(validation.body.passed).toBe(0);
    for (const check of validation.body.checks) expect(check).toMatchObject({ status: "failed", reason: expect.stringContaining("offboarded") });
    const progress = await call("GET", `/v1/tenants/${slug}/progress`);
    expect(progress.body).toMatchObject({ onboarding_status: "offboarded", overall_progress: 0 });
  });
});

describe("an estate where nothing can be targeted", () => {
  it("opt-in tag targeting on an untagged estate ends in action_required, naming the cause and the fix", async () => {
    const untagged = newTenantRecord(`untagged-${randomBytes(3).toString("hex")}`, { firstAccount: 600_000_000_000 });
    const other = untagged.slug;
    await seedEstate(
      { regions: [HOME], instances: planEstate({ regions: [HOME], size: 14, seed: 3 }).instances.filter((i) => i.tags["xdr:monitor"] === undefined) },
      {
        credentials: await customerAccountCredentials(untagged.account),
      },
    );
    await service.onboard(untagged, { name: "Untagged Ltd", regions: [HOME], settings: { targeting_mode: "tag" } });
    const requested = await call("POST", `/v1/tenants/${other}/runs`, { body: { kind: "up" } });
    await service.settledRun(other, requested.body.run_id);
    const tenant = await waitFor("action_required", async () => {
      const got = await call("GET", `/v1/tenants/${other}`);
      return got.body.onboarding_status === "action_required" ? got.body : undefined;
    });
    expect(tenant.action_required).toEqual(
      expect.arrayContaining([
        {
          reason: expect.stringMatching(/^nothing can be targeted: the applied targeting \(only instances tagged xdr:monitor=true\)/),
          fix: expect.stringContaining("all_managed"),
        },
      ]),
    );
    const validation = await call("GET", `/v1/tenants/${other}/validation`);
    expect(validation.body.checks.find((check: any) => check.name === "agents_targeted")).toMatchObject({
      status: "failed",
      reason: expect.stringContaining("covers none"),
    });
    const offboard = await call("POST", `/v1/tenants/${other}/offboard`);
    expect(offboard.status).toBe(202);
    await waitFor("offboarding", async () =>
      (await call("GET", `/v1/tenants/${other}`)).body.onboarding_status === "offboarded" ? true : undefined,
    );
  });
});
