/**
 * An AWS Organization onboarded through the service (issue 19): ORG_ACCOUNTS member accounts (default 50) in OUs two
 * levels deep, each with 20 instances in each of 2 regions, from the customer creating the organization stack to
 * every account `completed`, at max_concurrent_accounts 2, 4 and 8 (a new organization each time). Offline: moto (its
 * Organizations, CloudFormation, IAM, EC2), the STS stand-in, the stand-in AWS provider and the SSM stand-in on
 * loopback, the real Pulumi CLI, the service as a process on a scratch database of the test PostgreSQL server.
 *
 *   npm run bench:organization            (ORG_ACCOUNTS=50, ORG_INSTANCES=20 per account and region)
 *   BENCH_PARTS=memory npm run bench:organization       only the memory figure
 *
 * Prints per variant: wall seconds from the stack's creation to the last account completed (with the StackSet's
 * deployment, which test/harness/aws-organization.ts performs account by account as AWS would), of which the
 * service's part (from connect to the last account completed), accounts per minute, CPU seconds per account onboarded
 * (the service process and everything it ran: Pulumi CLIs, the provider plugins; from /proc utime+stime+cutime+cstime),
 * and the service's peak memory. Then the service's resident memory with 500 accounts' rows in its database, after
 * it served their accounts views.
 *
 * An account is completed once its own discovery found its instances and SSM says the agent is on every one of them:
 * the instances are SSM managed instances in the SSM stand-in, and the association the account's stack created
 * applies the agent there, as AWS's would.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import setupHarness from "../test/harness/global-setup";
import { createCustomerOrganization, deployBootstrapStackSet } from "../test/harness/aws-organization";
import { launchMonitoredInstances } from "../test/harness/customer-account";
import { createStackFromQuickCreateLink, customerAccount } from "../test/harness/customer-cloudformation";
import { processMemory } from "../test/harness/process-tree";
import { startServiceUnderTest } from "../test/harness/service-under-test";

const ACCOUNTS = Number(process.env.ORG_ACCOUNTS ?? 50);
const INSTANCES = Number(process.env.ORG_INSTANCES ?? 20);
const CONCURRENCIES = [2, 4, 8];
const REGIONS = ["us-east-1", "eu-west-1"];
const BUCKET = "mini-xdr-bench-organization";
const ROWS_FOR_MEMORY = 500;
/** BENCH_PARTS=memory: only the memory figure (a minute). */
const PARTS = (process.env.BENCH_PARTS ?? "onboarding,memory").split(",");
const CLOCK_TICKS = 100; // USER_HZ on Linux
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (value: number, digits = 1) => value.toFixed(digits);

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

const teardown = await setupHarness();
const s3 = new S3Client({ region: "us-east-1" });
await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
const service = await startServiceUnderTest({
  name: "bench_organization",
  workspace: "database-state",
  ssmStandIn: true,
  startAtSetUp: false,
  env: {
    BOOTSTRAP_TEMPLATE_BUCKET: BUCKET,
    BOOTSTRAP_TEMPLATE_BUCKET_REGION: "us-east-1",
    ORGANIZATION_RECONCILE_SECONDS: "2",
    MAX_CONCURRENT_RUNS: "8",
  },
});
const { call } = service;

/** A new organization: ACCOUNTS members over 5 OUs under 2 parents, INSTANCES instances per account and region. */
async function customerOrganization() {
  const managementAccountId = `7${String(randomBytes(6).readUIntBE(0, 6)).padStart(11, "0").slice(0, 11)}`;
  const management = await customerAccount(managementAccountId, "us-east-1");
  const organization = await createCustomerOrganization(management);
  const parents = [await organization.createOu("Workloads", organization.rootId), await organization.createOu("Platform", organization.rootId)];
  const ous: string[] = [];
  for (const [index, name] of ["Prod", "Dev", "Test", "Data", "Shared"].entries()) ous.push(await organization.createOu(name, parents[index % 2]!));
  const accounts: string[] = [];
  for (let index = 0; index < ACCOUNTS; index++) accounts.push(await organization.createAccount(`acct-${index}`, ous[index % ous.length]!));
  for (const accountId of accounts) {
    for (const region of REGIONS) {
      const ids = await launchMonitoredInstances(accountId, { region, count: INSTANCES });
      service.ssm.addInstances(
        ids.map((instanceId) => ({
          instanceId,
          region,
          accountId,
          platformType: "Linux" as const,
          tags: { Name: "web", "xdr:monitor": "true" },
          metadataTags: true,
        })),
      );
    }
  }
  return { management, organization, accounts };
}

async function onboardOrganization(concurrency: number) {
  const { management, organization, accounts } = await customerOrganization();
  const slug = `borg${concurrency}-${randomBytes(2).toString("hex")}`;
  const created = await call("POST", "/v1/tenants", {
    body: {
      slug,
      name: `Bench organization ${concurrency}`,
      integration_settings: { home_region: "us-east-1", regions: REGIONS, agent_public_base_url: "https://agents.mini-xdr.example.com" },
    },
  });
  if (created.status !== 201) throw new Error(`tenant: ${created.status} ${created.text}`);
  const link = await call("GET", `/v1/tenants/${slug}/integrations/aws/organization/link?target_ous=${organization.rootId}`);
  if (link.status !== 200) throw new Error(`link: ${link.status} ${link.text}`);
  const externalId = new URLSearchParams(new URL(link.body.quick_create_url).hash.split("?")[1]).get("param_ExternalId")!;
  const template = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: new URL(link.body.template_url).pathname.slice(1) }));
  const organizationTemplate = JSON.parse(await template.Body!.transformToString());

  const pid = service.server.child.pid!;
  const cpuBefore = await cpuSeconds(pid);
  const started = performance.now();
  await createStackFromQuickCreateLink(management, link.body.quick_create_url);
  await deployBootstrapStackSet(management, organization, { organizationTemplate, tenantSlug: slug, externalId, targetOus: [organization.rootId] });
  const connectedAt = performance.now();
  const connected = await call("PUT", `/v1/tenants/${slug}/integrations/aws/organization`, {
    body: { management_account_id: management.accountId, max_concurrent_accounts: concurrency },
  });
  if (connected.status !== 200) throw new Error(`connect: ${connected.status} ${connected.text}`);
  for (;;) {
    const view = await call("GET", `/v1/tenants/${slug}/accounts`);
    const completed = view.body.by_status.completed ?? 0;
    if (completed === accounts.length) break;
    if (view.body.needs_action.length > 0) throw new Error(`accounts need action: ${JSON.stringify(view.body.needs_action.slice(0, 3))}`);
    await sleep(250);
  }
  const finished = performance.now();
  return {
    wall: (finished - started) / 1000,
    service: (finished - connectedAt) / 1000,
    cpu: (await cpuSeconds(pid)) - cpuBefore,
    hwmKiB: (await processMemory(pid))?.hwmKiB ?? 0,
  };
}

try {
  await service.start();
  console.log(
    `organization bench: ${ACCOUNTS} accounts x ${REGIONS.length} regions x ${INSTANCES} instances, max_concurrent_accounts ${CONCURRENCIES.join(", ")}`,
  );
  for (const concurrency of PARTS.includes("onboarding") ? CONCURRENCIES : []) {
    const result = await onboardOrganization(concurrency);
    console.log(
      `max_concurrent_accounts ${concurrency}: ${fmt(result.wall)} s from the management stack's creation to every account completed ` +
        `(the service's part, connect to the last account: ${fmt(result.service)} s, ${fmt((ACCOUNTS / result.service) * 60)} accounts/min), ` +
        `${fmt(result.cpu / ACCOUNTS, 2)} CPU s per account, service peak memory ${fmt(result.hwmKiB / 1024, 0)} MiB (VmHWM)`,
    );
  }

  // The service's memory with 500 accounts' rows: 10 tenants of 50 accounts each, every accounts view served, in a
  // service started afresh (what the runs above left in memory is theirs, not the rows').
  await service.stop();
  await service.start();
  const idle = await processMemory(service.server.child.pid!);
  const sql = service.sql;
  for (let tenant = 0; tenant < ROWS_FOR_MEMORY / 50; tenant++) {
    const slug = `bmem${tenant}-${randomBytes(2).toString("hex")}`;
    const [org] = await sql<{ id: number }[]>`insert into organizations (slug, name) values (${slug}, ${slug}) returning id`;
    const rows = Array.from({ length: 50 }, (_, index) => {
      const accountId = String(800_000_000_000 + tenant * 1000 + index);
      return {
        organization_id: org!.id,
        account_id: accountId,
        name: `account ${index}`,
        source: "organization",
        stack_name: `tenant-${slug}_${accountId}`,
        status: "completed",
      };
    });
    await sql`insert into tenant_aws_accounts ${sql(rows)}`;
    const view = await call("GET", `/v1/tenants/${slug}/accounts`);
    if (view.status !== 200 || view.body.total !== 50) throw new Error(`accounts of ${slug}: ${view.status}`);
  }
  const memory = await processMemory(service.server.child.pid!);
  console.log(
    `service memory, started afresh: ${fmt((idle?.rssKiB ?? 0) / 1024, 0)} MiB resident idle; with ${ROWS_FOR_MEMORY} more accounts' rows, ` +
      `every accounts view served: ${fmt((memory?.rssKiB ?? 0) / 1024, 0)} MiB (VmRSS)`,
  );
} finally {
  await service.close();
  s3.destroy();
  await teardown();
}
