/**
 * The agent on a tenant's EKS clusters, through the service process (issue 21): discovery finds the clusters, the up
 * it starts by itself grants the access role an access entry and applies the agent DaemonSet with a token minted at
 * run time, the pods run on every node, the node agents enroll (as EC2 instances: a node counts once), onboarding
 * completes; a cluster created later is covered by the up the next discovery starts; a token of another role is
 * refused by the API server; offboarding removes the DaemonSets and the access entries.
 *
 * The estate: us-east-1 with a cluster on API_AND_CONFIG_MAP authentication and two nodes (its node group's EC2
 * instances) and one excluded by the tag xdr:monitor=false; eu-west-1 with a private-only cluster (action_required,
 * with the fix) and, later, a cluster with one node.
 *
 * Real parts: the service process, PostgreSQL, the Pulumi CLI and engine, pulumi-resource-kubernetes, one real
 * control plane per reachable cluster (kube-apiserver with RBAC, controller manager, scheduler, kwok nodes), moto's
 * EKS, EC2 and STS. Stand-ins, for what moto lacks (each says what it does as AWS): the EKS stand-in (authentication
 * modes, access entries, DescribeCluster answering the local API server, the API server's token webhook that replays
 * the token's presigned GetCallerIdentity against STS), the STS stand-in (trust policies, presigned
 * GetCallerIdentity), the SSM stand-in, and the stand-in pulumi-resource-aws.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CreateClusterCommand, CreateNodegroupCommand, EKSClient } from "@aws-sdk/client-eks";
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, describe, expect, it } from "vitest";
import { asInvitedAdmin, screenChecks } from "../harness/console-browser";
import { customerAccountCredentials } from "../harness/customer-account";
import { startEksStandIn, type EksStandIn } from "../harness/eks-standin";
import { enrollmentBody } from "../harness/instance-identity";
import { assertKubernetesToolchain, type KubernetesCluster, startKubernetesCluster } from "../harness/kubernetes-cluster";
import { REPO_ROOT } from "../harness/moto";
import { serviceUnderTest } from "../harness/service-under-test";
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";
import { newTenantRecord, PLATFORM_PRINCIPAL_ARN } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const tenant = newTenantRecord(`eks-${randomBytes(3).toString("hex")}`, { firstAccount: 600_000_000_000 });
const { slug, account } = tenant;
const WAIT = { timeoutMs: 240_000, intervalMs: 500, retryErrors: true };
const waitFor = waitForWith(WAIT);

interface ReachableCluster {
  accountId: string;
  region: string;
  name: string;
  nodes: { name: string; instanceId: string }[];
  apiServer?: KubernetesCluster;
}
const payments: ReachableCluster = { accountId: account, region: "us-east-1", name: "payments-prod", nodes: [] };
const checkout: ReachableCluster = { accountId: account, region: "eu-west-1", name: "checkout-eu", nodes: [] };

let sts: StsStandIn;
let eks: EksStandIn;
let workDir: string;

/** The customer's EKS, through the stand-in (which keeps what moto drops: the authentication mode). */
const customerEks = async (region: string) => new EKSClient({ region, endpoint: eks.url, credentials: await customerAccountCredentials(account) });

/** The customer creates a cluster through EKS (and its node group's instances in EC2). */
async function createCluster(
  region: string,
  name: string,
  options: { mode: "API" | "API_AND_CONFIG_MAP" | "CONFIG_MAP"; publicEndpoint: boolean; tags?: Record<string, string>; nodes?: number },
): Promise<string[]> {
  const client = await customerEks(region);
  try {
    await client.send(
      new CreateClusterCommand({
        name,
        version: "1.33",
        roleArn: `arn:aws:iam::${account}:role/eks-cluster`,
        resourcesVpcConfig: { subnetIds: ["subnet-1"], endpointPublicAccess: options.publicEndpoint, endpointPrivateAccess: true },
        accessConfig: { authenticationMode: options.mode },
        tags: options.tags,
      }),
    );
    if (!options.nodes) return [];
    await client.send(
      new CreateNodegroupCommand({
        clusterName: name,
        nodegroupName: `${name}-default`,
        nodeRole: `arn:aws:iam::${account}:role/eks-node`,
        subnets: ["subnet-1"],
        scalingConfig: { minSize: 1, maxSize: 5, desiredSize: options.nodes },
      }),
    );
  } finally {
    client.destroy();
  }
  const ec2 = new EC2Client({ region, credentials: await customerAccountCredentials(account) });
  try {
    const launched = await ec2.send(
      new RunInstancesCommand({
        ImageId: "ami-12c6146b",
        MinCount: options.nodes,
        MaxCount: options.nodes,
        InstanceType: "m6i.large",
        TagSpecifications: [
          {
            ResourceType: "instance",
            Tags: [
              { Key: "eks:cluster-name", Value: name },
              { Key: "eks:nodegroup-name", Value: `${name}-default` },
            ],
          },
        ],
      }),
    );
    return (launched.Instances ?? []).map((instance) => instance.InstanceId!);
  } finally {
    ec2.destroy();
  }
}

/** The API server that stands for a reachable cluster, its token webhook the EKS stand-in, and its kwok nodes. */
async function startApiServer(cluster: ReachableCluster, instanceIds: string[]): Promise<void> {
  const webhookConfig = join(workDir, `${cluster.name}.webhook.kubeconfig`);
  await writeFile(webhookConfig, eks.tokenWebhookKubeconfig(cluster));
  cluster.apiServer = await startKubernetesCluster({ tokenWebhookConfigFile: webhookConfig });
  cluster.nodes = instanceIds.map((instanceId, index) => ({
    name: `ip-10-0-${index + 1}-${10 + index}.${cluster.region}.compute.internal`,
    instanceId,
  }));
  await cluster.apiServer.createNodes(cluster.nodes.map((node) => node.name));
  await eks.attachCluster(cluster, cluster.apiServer);
}

const service = serviceUnderTest({
  name: "eks-clusters",
  ssmStandIn: { accountId: account },
  wait: WAIT,
  env: () => ({ AWS_ENDPOINT_URL_STS: sts.url, AWS_ENDPOINT_URL_EKS: eks.url }),
  beforeServerStart: async () => {
    assertKubernetesToolchain();
    sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
    eks = await startEksStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, accountOf: (key) => sts.accountOf(key) ?? account, stsUrl: sts.url });
    workDir = await mkdtemp(join(tmpdir(), "mxdr-eks-e2e-"));
    const paymentsNodes = await createCluster("us-east-1", payments.name, { mode: "API_AND_CONFIG_MAP", publicEndpoint: true, nodes: 2 });
    await createCluster("us-east-1", "lab-sandbox", { mode: "API", publicEndpoint: true, tags: { "xdr:monitor": "false" } });
    await createCluster("eu-west-1", "ledger-internal", { mode: "API", publicEndpoint: false });
    await startApiServer(payments, paymentsNodes);
  },
});
const { call } = service;

const { screenshots, checkScreen } = screenChecks();

/** The tenant's admin, signed in through an invitation, sees every cluster on the onboarding page: covered, or why not. */
async function clustersOnTheProgressPage(): Promise<void> {
  await asInvitedAdmin(call, slug, async (page) => {
    await page.getByRole("button", { name: "Quick start" }).click();
    await page.getByRole("heading", { name: "Kubernetes clusters (2 of 4 protected)" }).waitFor();
    expect(await page.locator('[data-cluster="us-east-1/payments-prod"]').innerText()).toContain("protected, agent ready on 2 of 2 nodes");
    const privateOnly = await page.locator('[data-cluster="eu-west-1/ledger-internal"]').innerText();
    expect(privateOnly).toContain("needs your action");
    expect(privateOnly).toContain("How to fix: aws eks update-cluster-config --region eu-west-1 --name ledger-internal");
    expect(await page.locator('[data-cluster="us-east-1/lab-sandbox"]').innerText()).toContain("excluded");
    await checkScreen(page, "31-kubernetes-clusters");
  });
}

afterAll(async () => {
  if (screenshots.length) console.log(`eks screenshots:\n${screenshots.map((file) => `  ${file}`).join("\n")}`);
  for (const cluster of [payments, checkout]) await cluster.apiServer?.stop();
  await eks?.stop();
  await sts?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const deployment = async () => {
  const answer = await call("GET", `/v1/tenants/${slug}/deployment`);
  expect(answer.status, answer.text).toBe(200);
  return answer.body;
};
const clusterNamed = (body: any, name: string) => body.clusters.find((cluster: any) => cluster.name === name);

async function daemonSetOf(cluster: ReachableCluster) {
  return cluster.apiServer!.request("GET", "/apis/apps/v1/namespaces/mini-xdr/daemonsets/mini-xdr-agent");
}

/** The enrollment token in the agent config Secret the pods mount. */
async function enrollmentTokenOn(cluster: ReachableCluster): Promise<string> {
  const secret = await cluster.apiServer!.request("GET", "/api/v1/namespaces/mini-xdr/secrets/mini-xdr-agent-config");
  expect(secret.status).toBe(200);
  return JSON.parse(Buffer.from((secret.body as { data: Record<string, string> }).data["agent.json"]!, "base64").toString("utf8")).enrollmentToken;
}

/** The node agents enrolled so far: instance id -> the agent's own credential (for its heartbeats). */
const nodeAgents = new Map<string, string>();

/** The tenant once it is completed, the node agents sending their heartbeats meanwhile, as running agents do. */
function completedWhileAgentsRun(what: string): Promise<any> {
  return waitFor(what, async () => {
    for (const [instanceId, credential] of nodeAgents) {
      const beat = await call("POST", "/v1/agents/heartbeat", { token: null, body: { agent_credential: credential, instance_id: instanceId } });
      expect(beat.status, beat.text).toBe(200);
    }
    // The rollout read, as an open console page asks for it: the status moves on with what it finds.
    await deployment();
    const got = await call("GET", `/v1/tenants/${slug}`);
    return got.body.onboarding_status === "completed" ? got.body : undefined;
  });
}

/** What the agent pod does on a node: read the enrollment token from the Secret it mounts, enroll as the node's instance. */
async function enrollNodeAgents(cluster: ReachableCluster): Promise<void> {
  const agentConfig = { enrollmentToken: await enrollmentTokenOn(cluster) };
  for (const node of cluster.nodes) {
    const body = enrollmentBody(
      agentConfig.enrollmentToken,
      { accountId: account, region: cluster.region, instanceId: node.instanceId },
      { hostname: node.name },
    );
    const enrolled = await call("POST", "/v1/agents/enroll", { token: null, body });
    expect(enrolled.status, enrolled.text).toBe(201);
    nodeAgents.set(node.instanceId, enrolled.body.agent_credential);
  }
}

async function mintToken(cluster: ReachableCluster, roleArn: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--experimental-strip-types", "--no-warnings", join(REPO_ROOT, "programs/tenant/eks-token.ts")],
    {
      env: {
        ...process.env,
        AWS_ENDPOINT_URL_STS: sts.url,
        MINI_XDR_EKS_CLUSTER: cluster.name,
        MINI_XDR_EKS_REGION: cluster.region,
        MINI_XDR_EKS_ROLE_ARN: roleArn,
        MINI_XDR_EKS_EXTERNAL_ID: tenant.externalId,
        MINI_XDR_EKS_SESSION_NAME: "mini-xdr-e2e",
      },
    },
  );
  return (JSON.parse(stdout) as { status: { token: string } }).status.token;
}

function statusWithToken(cluster: ReachableCluster, token: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, cluster.apiServer!.server),
      { ca: cluster.apiServer!.caPem, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("the agent on EKS clusters (service process, real API servers, moto)", () => {
  it("a. discovery finds the clusters; the up it starts covers the reachable one; its nodes' agents enroll; onboarding completes", async () => {
    await service.onboard(tenant, { regions: ["us-east-1", "eu-west-1"] });
    const first = await call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
    expect(first.status, first.text).toBe(202);
    expect((await service.settledRun(slug, first.body.run_id)).status).toBe("succeeded");

    // The after-up scan finds the clusters; the up it starts by itself covers the one that can be covered.
    const discovered = await waitFor("the clusters discovered", async () => {
      const body = await deployment();
      return body.clusters.length === 3 ? body : undefined;
    });
    const discoveredAt = Date.now();
    expect(clusterNamed(discovered, "lab-sandbox")).toMatchObject({ status: "excluded", reason: "tagged xdr:monitor=false" });
    expect(clusterNamed(discovered, "ledger-internal")).toMatchObject({
      status: "action_required",
      region: "eu-west-1",
      reason: expect.stringContaining("private"),
      fix: expect.stringContaining("aws eks update-cluster-config --region eu-west-1 --name ledger-internal"),
    });
    const ready = await waitFor("the agent DaemonSet ready on payments-prod", async () => {
      const cluster = clusterNamed(await deployment(), payments.name);
      return cluster?.status === "protected" ? cluster : undefined;
    });
    console.log(`eks: payments-prod from discovered to DaemonSet ready (2 nodes) in ${((Date.now() - discoveredAt) / 1000).toFixed(1)} s`);
    expect(ready).toMatchObject({ region: "us-east-1", aws_account_id: account, desired: 2, ready: 2, reason: null });
    const runs = (await call("GET", `/v1/tenants/${slug}/runs?kind=up`)).body.runs;
    expect(runs[0]).toMatchObject({ status: "succeeded", actor: "system:cluster-discovered" });

    const pods = (await payments.apiServer!.request("GET", "/api/v1/namespaces/mini-xdr/pods")).body as {
      items: { spec: { nodeName: string }; status: { phase: string } }[];
    };
    expect(pods.items.map((pod) => [pod.spec.nodeName, pod.status.phase]).sort()).toEqual(
      payments.nodes.map((node) => [node.name, "Running"]).sort(),
    );
    expect(eks.accessEntriesOf(payments)).toEqual({
      [`arn:aws:iam::${account}:role/MiniXdrAccess-${slug}`]: ["arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"],
    });
    expect(eks.accessEntriesOf({ accountId: account, region: "us-east-1", name: "lab-sandbox" })).toEqual({});

    await enrollNodeAgents(payments);
    const completed = await completedWhileAgentsRun("onboarding completed");
    expect(completed.action_required).toEqual([]);
    // Each node counts once: an agent per node instance, installed.
    const after = await deployment();
    for (const node of payments.nodes) {
      expect(after.instances.find((instance: any) => instance.asset_id === node.instanceId)).toMatchObject({ agent_status: "checked_in" });
    }
    // The same node's agent arriving another way (the SSM association's) does not make a second agent.
    const token = await enrollmentTokenOn(payments);
    const again = await call("POST", "/v1/agents/enroll", {
      token: null,
      body: enrollmentBody(token, { accountId: account, region: payments.region, instanceId: payments.nodes[0]!.instanceId }),
    });
    expect(again.status, again.text).toBe(409);
    const health = await call("GET", `/v1/tenants/${slug}/deployment/health`);
    expect(health.body.agents.map((agent: any) => agent.instance_id).sort()).toEqual(payments.nodes.map((node) => node.instanceId).sort());
    const progress = await call("GET", `/v1/tenants/${slug}/progress`);
    expect(clusterNamed(progress.body.deployment, payments.name)).toMatchObject({ status: "protected", desired: 2, ready: 2 });
    const validation = await call("GET", `/v1/tenants/${slug}/validation`);
    expect(validation.body.checks.find((check: any) => check.name === "clusters_protected")).toEqual({
      name: "clusters_protected",
      status: "passed",
    });
  });

  it("b (after a). the API server refuses a token of a role without an access entry", async () => {
    const own = await mintToken(payments, `arn:aws:iam::${account}:role/MiniXdrAccess-${slug}`);
    expect(await statusWithToken(payments, own, "/api/v1/namespaces/mini-xdr")).toBe(200);
    const foreign = await mintToken(payments, tenant.roleArn);
    expect(await statusWithToken(payments, foreign, "/api/v1/namespaces/mini-xdr")).toBe(401);
    expect(eks.tokenReviews.at(-1)).toMatchObject({ authenticated: false, reason: "no access entry for the caller" });
  });

  it("c (after a). a cluster created later is covered by the up its discovery starts", async () => {
    const instanceIds = await createCluster("eu-west-1", checkout.name, { mode: "API", publicEndpoint: true, nodes: 1 });
    await startApiServer(checkout, instanceIds);
    const scan = await call("POST", `/v1/tenants/${slug}/discovery/scans`);
    expect(scan.status, scan.text).toBe(202);
    const covered = await waitFor("checkout-eu protected", async () => {
      const cluster = clusterNamed(await deployment(), checkout.name);
      return cluster?.status === "protected" ? cluster : undefined;
    });
    expect(covered).toMatchObject({ region: "eu-west-1", desired: 1, ready: 1 });
    expect((await daemonSetOf(payments)).status).toBe(200);
    // Its node's agent enrolls; the tenant is whole again.
    await enrollNodeAgents(checkout);
    await completedWhileAgentsRun("onboarding completed again");
    await clustersOnTheProgressPage();
  });

  it("d (after a, c). offboarding removes the agent from every cluster, then the access entries", async () => {
    const offboard = await call("POST", `/v1/tenants/${slug}/offboard`);
    expect(offboard.status, offboard.text).toBe(202);
    await waitFor("offboarded", async () => ((await call("GET", `/v1/tenants/${slug}`)).body.onboarding_status === "offboarded" ? true : undefined));
    for (const cluster of [payments, checkout]) {
      expect((await daemonSetOf(cluster)).status, cluster.name).toBe(404);
      expect(eks.accessEntriesOf(cluster), cluster.name).toEqual({});
    }
  });
});
