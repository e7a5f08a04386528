/**
 * Time from connecting AWS to `completed` on a multi-region customer estate (issue 9), through the service process
 * with default settings, against moto (offline; loopback only) with the real Pulumi CLI, the stand-in AWS provider
 * and the SSM stand-in (test/harness/ssm-standin.ts: the calls moto lacks, per region).
 *
 * The estate is test/harness/estates.ts's (three regions, mostly untagged, Linux and Windows, stopped, terminated,
 * unicode names, a 50-tag instance, an excluded one), every instance SSM-managed, so nothing needs a person. The
 * agents are simulated as the install script behaves: an instance whose association installed the agent enrolls with
 * its region's enrollment token (read from the SecureString) and its identity document (signed by the test CA of
 * test/harness/instance-identity.ts, which the service trusts) as soon as the rollout shows it installed.
 *
 *   npm run bench:estate                  (BENCH_SIZE instances, default 60; BENCH_ROUNDS rounds, default 1)
 *
 * Prints each phase's time from connect: up finished, discovery finished, rollout installed, completed.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import setupHarness from "../test/harness/global-setup";
import { planEstate, seedEstate } from "../test/harness/estates";
import { agentEnroller } from "../test/harness/agent-hosts";
import { createBootstrapRole, customerAccountCredentials } from "../test/harness/customer-account";
import { startServiceUnderTest } from "../test/harness/service-under-test";
import { BOOTSTRAP_ROLE_NAME, newTenantRecord, tenantExternalIdThroughApi, TERMINAL_RUN_STATUSES } from "../test/harness/tenants";

const SIZE = Number(process.env.BENCH_SIZE ?? 60);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"];
const POLL_MS = 100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const teardown = await setupHarness();
const service = await startServiceUnderTest({ name: "bench-estate", database: "embedded", ssmStandIn: true });
try {
  const { call } = service;
  console.log(`estate onboarding: ${SIZE} instances in ${REGIONS.length} regions, default settings, ${ROUNDS} round(s)`);

  for (let round = 1; round <= ROUNDS; round++) {
    const tenant = newTenantRecord(`bench-${randomBytes(3).toString("hex")}`, { firstAccount: 700_000_000_000 });
    const { slug, account } = tenant;
    const credentials = await customerAccountCredentials(account);
    const plan = planEstate({ regions: REGIONS, size: SIZE, seed: round });
    // Every instance SSM-managed: this measures the automatic path, not a person fixing instance profiles.
    const estate = await seedEstate(
      { ...plan, instances: plan.instances.map(({ unmanaged: _, ...instance }) => instance) },
      { credentials, ssmStandIn: service.ssm },
    );
    await service.createTenant(tenant, { name: slug, regions: REGIONS });
    // The customer's role trusts the external ID the service generated for the tenant.
    await createBootstrapRole({ accountId: account, roleName: BOOTSTRAP_ROLE_NAME, externalId: await tenantExternalIdThroughApi(call, slug) });

    const started = performance.now();
    const marks: Record<string, number> = {};
    const connected = await call("PUT", `/v1/tenants/${slug}/integrations/aws`, { body: { bootstrap_role_arn: tenant.roleArn } });
    if (connected.status !== 201) throw new Error(`connect: ${connected.status} ${connected.text}`);
    const up = await call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
    if (up.status !== 202) throw new Error(`up: ${up.status} ${up.text}`);

    const enrollAgent = agentEnroller(call, tenant);
    const enrolled = new Set<string>();
    const region = new Map(estate.instances.map((instance) => [instance.instanceId, instance.region]));
    for (;;) {
      const now = performance.now() - started;
      if (!marks.up) {
        const run = await call("GET", `/v1/tenants/${slug}/runs/${up.body.run_id}`);
        if (run.body.status === "succeeded") marks.up = now;
        else if (TERMINAL_RUN_STATUSES.includes(run.body.status)) throw new Error(`up ${run.body.status}: ${JSON.stringify(run.body.error)}`);
      } else if (!marks.discovery) {
        const scans = await call("GET", `/v1/tenants/${slug}/discovery/scans`);
        if (scans.body.scans[0] && !["queued", "running"].includes(scans.body.scans[0].status)) marks.discovery = now;
      } else {
        const deployment = await call("GET", `/v1/tenants/${slug}/deployment?refresh=false`);
        const installed = deployment.body.instances.filter(
          (instance: any) => instance.agent_status === "installed" && !enrolled.has(instance.asset_id),
        );
        if (!marks.installed && deployment.body.installed > 0 && deployment.body.installed + deployment.body.stopped >= deployment.body.targeted)
          marks.installed = now;
        // The agents: each host that got the agent enrolls with its region's token (the install script's last step).
        for (const instance of installed) {
          const answer = await enrollAgent({ region: region.get(instance.asset_id)!, instanceId: instance.asset_id });
          if (answer.status !== 201) throw new Error(`enroll ${instance.asset_id}: ${answer.status} ${answer.text}`);
          enrolled.add(instance.asset_id);
        }
        const tenant = await call("GET", `/v1/tenants/${slug}`);
        if (tenant.body.onboarding_status === "completed") {
          marks.completed = performance.now() - started;
          break;
        }
        if (tenant.body.onboarding_status === "action_required") throw new Error(`action required: ${JSON.stringify(tenant.body.action_required)}`);
      }
      if (performance.now() - started > 600_000) throw new Error("not completed within 10 minutes");
      await sleep(POLL_MS);
    }
    const reachable = estate.instances.filter((instance) => instance.state === "running").length;
    console.log(
      `round ${round}: connect -> up ${seconds(marks.up!)}, -> discovery ${seconds(marks.discovery!)}, -> agents installed ${seconds(marks.installed ?? marks.completed!)}, ` +
        `-> completed ${seconds(marks.completed!)} (${enrolled.size} agents enrolled of ${reachable} running instances, ${estate.instances.length} in the estate)`,
    );
    const offboard = await call("POST", `/v1/tenants/${slug}/offboard`);
    if (offboard.status !== 202) throw new Error(`offboard: ${offboard.status}`);
    for (let i = 0; i < 600; i++) {
      if ((await call("GET", `/v1/tenants/${slug}`)).body.onboarding_status === "offboarded") break;
      await sleep(200);
    }
  }
} finally {
  await service.close();
  await teardown();
}
