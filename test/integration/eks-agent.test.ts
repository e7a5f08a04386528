/**
 * The agent on EKS clusters through the real tenant program (issue 21): for each cluster in its config the stack
 * creates an access entry for the access role with its access policy, then applies the agent with the real
 * Kubernetes provider to a real API server, authenticated by a token minted at run time (programs/tenant/eks-token.ts).
 *
 * Real parts: the Pulumi CLI and engine, pulumi-resource-kubernetes, kube-apiserver with RBAC, controller manager,
 * scheduler and kwok nodes (test/harness/kubernetes-cluster.ts), moto. Stand-ins, for what moto lacks: the EKS
 * stand-in (access entries; DescribeCluster answering the local API server; the API server's token webhook, which
 * replays the token's presigned GetCallerIdentity against STS and maps the caller through the access entries), the
 * STS stand-in (trust policies, and the presigned GetCallerIdentity moto answers for its default user), the stand-in
 * pulumi-resource-aws performing the AWS resources.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CreateClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configureTenantStack,
  destroyTenantStack,
  openTenantStack,
  removeTenantStack,
  stackNameFor,
  upTenantStack,
  type AutomationSettings,
} from "../../automation";
import { AGENT_ACCESS_POLICY_ARN } from "../../programs/tenant/eks-kubeconfig";
import { createBootstrapRole, customerAccountCredentials } from "../harness/customer-account";
import { startEksStandIn, type EksStandIn } from "../harness/eks-standin";
import { assertKubernetesToolchain, type KubernetesCluster, startKubernetesCluster } from "../harness/kubernetes-cluster";
import { REPO_ROOT } from "../harness/moto";
import { temporaryAutomationSettings } from "../harness/pulumi-project";
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";
import { miniCorpTenantConfig, PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";

const SLUG = "eks-agent-it";
const base = miniCorpTenantConfig({ tenantSlug: SLUG });
const ACCOUNT = base.customerAccountId;
const REGION = "us-east-1";
const CLUSTER = { accountId: ACCOUNT, region: REGION, name: "payments-prod" };
const ACCESS_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/MiniXdrAccess-${SLUG}`;
const NODES = ["ip-10-0-1-17.ec2.internal", "ip-10-0-2-33.ec2.internal"];
const saved = { eks: process.env.AWS_ENDPOINT_URL_EKS, sts: process.env.AWS_ENDPOINT_URL_STS };

let sts: StsStandIn;
let eks: EksStandIn;
let cluster: KubernetesCluster;
let settings: AutomationSettings;
let workDir: string;

/** What the Kubernetes provider runs for a token: eks-token.ts as that exec plugin, here for any role. */
async function mintToken(roleArn: string, externalId: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--experimental-strip-types", "--no-warnings", join(REPO_ROOT, "programs/tenant/eks-token.ts")],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        MINI_XDR_EKS_CLUSTER: CLUSTER.name,
        MINI_XDR_EKS_REGION: REGION,
        MINI_XDR_EKS_ROLE_ARN: roleArn,
        MINI_XDR_EKS_EXTERNAL_ID: externalId,
        MINI_XDR_EKS_SESSION_NAME: "mini-xdr-test",
      },
    },
  );
  return (JSON.parse(stdout) as { status: { token: string } }).status.token;
}

async function asToken(token: string, path: string): Promise<number> {
  const { request } = await import("node:https");
  return new Promise((resolve, reject) => {
    const url = new URL(path, cluster.server);
    const req = request(url, { method: "GET", ca: cluster.caPem, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  assertKubernetesToolchain();
  sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
  eks = await startEksStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, accountOf: (key) => sts.accountOf(key) ?? ACCOUNT, stsUrl: sts.url });
  process.env.AWS_ENDPOINT_URL_STS = sts.url;
  process.env.AWS_ENDPOINT_URL_EKS = eks.url;
  // The STS stand-in admits the platform only as the role's trust says: the customer's bootstrap role, trusting it.
  await createBootstrapRole({ accountId: ACCOUNT, roleName: "MiniXdrBootstrap", externalId: base.externalId, trustedAccountId: "111122223333" });

  // The customer's cluster, created through EKS with access entries allowed, and the API server that stands for it.
  const customer = new EKSClient({ region: REGION, credentials: await customerAccountCredentials(ACCOUNT) });
  await customer.send(
    new CreateClusterCommand({
      name: CLUSTER.name,
      version: "1.33",
      roleArn: `arn:aws:iam::${ACCOUNT}:role/eks-cluster`,
      resourcesVpcConfig: { subnetIds: ["subnet-1"], endpointPublicAccess: true },
      accessConfig: { authenticationMode: "API_AND_CONFIG_MAP" },
    }),
  );
  customer.destroy();
  workDir = await mkdtemp(join(tmpdir(), "mxdr-eks-agent-"));
  const webhookConfig = join(workDir, "token-webhook.kubeconfig");
  await writeFile(webhookConfig, eks.tokenWebhookKubeconfig(CLUSTER));
  cluster = await startKubernetesCluster({ tokenWebhookConfigFile: webhookConfig });
  await cluster.createNodes(NODES);
  await eks.attachCluster(CLUSTER, cluster);
  settings = await temporaryAutomationSettings();
}, 180_000);

afterAll(async () => {
  process.env.AWS_ENDPOINT_URL_EKS = saved.eks;
  process.env.AWS_ENDPOINT_URL_STS = saved.sts;
  if (saved.eks === undefined) delete process.env.AWS_ENDPOINT_URL_EKS;
  if (saved.sts === undefined) delete process.env.AWS_ENDPOINT_URL_STS;
  await cluster?.stop();
  await eks?.stop();
  await sts?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("the tenant stack on an EKS cluster", () => {
  const config = () =>
    miniCorpTenantConfig({
      tenantSlug: SLUG,
      clusters: [
        { name: CLUSTER.name, region: REGION, endpoint: cluster.server, certificateAuthority: Buffer.from(cluster.caPem).toString("base64") },
      ],
    });

  it("grants the access role an access entry and applies the agent DaemonSet with a token minted at run time", async () => {
    const stack = await openTenantStack(settings, stackNameFor(SLUG), { create: true });
    await configureTenantStack(stack, config());
    const result = await upTenantStack(stack);

    expect(result.outputs.clusters).toEqual({
      [`${REGION}/${CLUSTER.name}`]: {
        name: CLUSTER.name,
        region: REGION,
        namespace: "mini-xdr",
        daemonSetName: "mini-xdr-agent",
        desired: 2,
        ready: 2,
      },
    });
    expect(eks.accessEntriesOf(CLUSTER)).toEqual({ [ACCESS_ROLE_ARN]: [AGENT_ACCESS_POLICY_ARN] });
    // The API server let the stack in as the access role's session, through the webhook.
    expect(eks.tokenReviews.filter((review) => review.authenticated).map((review) => review.arn)).toContain(
      `arn:aws:sts::${ACCOUNT}:assumed-role/MiniXdrAccess-${SLUG}/mini-xdr-onboarding-${SLUG}`,
    );

    const pods = (await cluster.request("GET", "/api/v1/namespaces/mini-xdr/pods")).body as {
      items: { spec: { nodeName?: string; tolerations?: unknown[] }; status: { phase?: string } }[];
    };
    expect(pods.items.map((pod) => pod.spec.nodeName).sort()).toEqual(NODES);
    expect(pods.items.every((pod) => pod.status.phase === "Running")).toBe(true);
    const account = await cluster.request("GET", "/api/v1/namespaces/mini-xdr/serviceaccounts/mini-xdr-agent");
    expect(account.status).toBe(200);
  });

  it("changes nothing on a second up (a fresh token, the same access)", async () => {
    const stack = await openTenantStack(settings, stackNameFor(SLUG), { create: false });
    const result = await upTenantStack(stack);
    expect(Object.keys(result.changeSummary ?? {})).toEqual(["same"]);
  });

  it("keeps no token and no external ID in the state in clear text", async () => {
    const stateDir = settings.backendUrl.slice("file://".length);
    const files = (await readdir(stateDir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    const state = (await Promise.all(files.map((entry) => readFile(join(entry.parentPath, entry.name), "utf8")))).join("\n");
    expect(state).toContain("mini-xdr-agent");
    expect(state).not.toContain("k8s-aws-v1.");
    expect(state).not.toContain(base.externalId);
  });

  it("refuses a token of a role the cluster has no access entry for", async () => {
    const accessToken = await mintToken(ACCESS_ROLE_ARN, base.externalId);
    expect(await asToken(accessToken, "/api/v1/namespaces/mini-xdr")).toBe(200);
    // The bootstrap role is assumable by the platform too, but it has no access entry on the cluster.
    const foreign = await mintToken(base.bootstrapRoleArn, base.externalId);
    expect(await asToken(foreign, "/api/v1/namespaces/mini-xdr")).toBe(401);
    expect(eks.tokenReviews.at(-1)).toMatchObject({ authenticated: false, reason: "no access entry for the caller" });
    // Not a token of STS at all.
    const forged = `k8s-aws-v1.${Buffer.from("https://attacker.example.test/?Action=GetCallerIdentity").toString("base64url")}`;
    expect(await asToken(forged, "/api/v1/namespaces/mini-xdr")).toBe(401);
  });

  it("destroy removes the agent from the cluster, then the access entry", async () => {
    const stack = await openTenantStack(settings, stackNameFor(SLUG), { create: false });
    await destroyTenantStack(stack);
    const daemonSet = await cluster.request("GET", "/apis/apps/v1/namespaces/mini-xdr/daemonsets/mini-xdr-agent");
    expect(daemonSet.status).toBe(404);
    const namespace = await cluster.request("GET", "/api/v1/namespaces/mini-xdr");
    expect(namespace.status === 404 || (namespace.body as { status?: { phase?: string } }).status?.phase === "Terminating").toBe(true);
    expect(eks.accessEntriesOf(CLUSTER)).toEqual({});
    await removeTenantStack(stack);
  });
});
