/**
 * The platform itself on Kubernetes (programs/platform): the program applied by the real engine and the real
 * Kubernetes provider to a real API server with kwok nodes, and the objects read back through the Kubernetes API.
 */
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shutdownDeadlineSeconds } from "../../lib/shutdown";
import { platformDeploymentConfigSchema } from "../../programs/platform/config";
import { PlatformOnKubernetes } from "../../programs/platform/platform-deployment";
import { assertKubernetesToolchain, KUBERNETES_PLUGIN_HOME, type KubernetesCluster, startKubernetesCluster } from "../harness/kubernetes-cluster";

const NAMESPACE = "mini-xdr-platform";
let cluster: KubernetesCluster;
let workDir: string;
let stack: Stack;

interface Container {
  env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  startupProbe: { httpGet: { path: string } };
  readinessProbe: { httpGet: { path: string } };
  livenessProbe: { httpGet: { path: string } };
}

beforeAll(async () => {
  assertKubernetesToolchain();
  cluster = await startKubernetesCluster();
  await cluster.createNodes(["kwok-platform-a", "kwok-platform-b"]);
  workDir = await mkdtemp(join(tmpdir(), "mxdr-platform-k8s-"));
  const pulumiHome = join(workDir, "pulumi-home");
  await mkdir(pulumiHome);
  await symlink(join(KUBERNETES_PLUGIN_HOME, "plugins"), join(pulumiHome, "plugins"));
  await mkdir(join(workDir, "state"));
  const kubeconfig = cluster.adminKubeconfig;
  const config = platformDeploymentConfigSchema.parse({
    image: "registry.example.test/mini-xdr/platform:1.4.0",
    replicas: 3,
    shutdownGraceSeconds: 120,
    publicUrl: "https://xdr.example.test",
    env: { PLATFORM_PRINCIPAL_ARN: "arn:aws:iam::111122223333:role/MiniXdrPlatform" },
  });
  stack = await LocalWorkspace.createOrSelectStack(
    {
      stackName: "platform",
      projectName: "mini-xdr-platform",
      program: async () => {
        const provider = new k8s.Provider("cluster", { kubeconfig: pulumi.secret(kubeconfig) });
        const platform = new PlatformOnKubernetes("mini-xdr", config, { providers: { kubernetes: provider } });
        return { deployment: platform.deploymentName, service: platform.serviceName };
      },
    },
    {
      pulumiHome,
      envVars: {
        PULUMI_BACKEND_URL: `file://${join(workDir, "state")}`,
        PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "test-passphrase",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_SKIP_UPDATE_CHECK: "true",
      },
    },
  );
}, 180_000);

afterAll(async () => {
  await stack?.destroy().catch(() => undefined);
  await cluster?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("the platform on Kubernetes (programs/platform)", () => {
  it("deploys N replicas with probes on /healthz, secrets by reference, a grace past the service's own deadline, a PDB and a Service", async () => {
    const result = await stack.up();
    expect(result.summary.result).toBe("succeeded");
    expect(result.outputs.deployment?.value).toBe("mini-xdr-platform");

    const deployment = (await cluster.request("GET", `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/mini-xdr-platform`)).body as {
      spec: { replicas: number; template: { spec: { terminationGracePeriodSeconds: number; containers: Container[] } } };
      status: { readyReplicas?: number };
    };
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.status.readyReplicas).toBe(3);
    const pod = deployment.spec.template.spec;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(shutdownDeadlineSeconds(120));
    const [container] = pod.containers;
    expect([container!.startupProbe, container!.readinessProbe, container!.livenessProbe].map((probe) => probe.httpGet.path)).toEqual([
      "/healthz",
      "/healthz",
      "/healthz",
    ]);
    const env = Object.fromEntries(container!.env.map((entry) => [entry.name, entry.value ?? entry.valueFrom?.secretKeyRef]));
    expect(env).toMatchObject({
      HOST: "0.0.0.0",
      SHUTDOWN_GRACE_SECONDS: "120",
      PUBLIC_URL: "https://xdr.example.test",
      PLATFORM_PRINCIPAL_ARN: "arn:aws:iam::111122223333:role/MiniXdrPlatform",
      DATABASE_URL: { name: "mini-xdr-platform", key: "DATABASE_URL" },
      ADMIN_TOKEN: { name: "mini-xdr-platform", key: "ADMIN_TOKEN" },
      CREDENTIALS_ENCRYPTION_KEY: { name: "mini-xdr-platform", key: "CREDENTIALS_ENCRYPTION_KEY" },
      PULUMI_CONFIG_PASSPHRASE: { name: "mini-xdr-platform", key: "PULUMI_CONFIG_PASSPHRASE" },
    });
    // No state on the pod that outlives it: replicas share nothing but PostgreSQL.
    expect(env).not.toHaveProperty("PULUMI_BACKEND_URL");

    const budget = (await cluster.request("GET", `/apis/policy/v1/namespaces/${NAMESPACE}/poddisruptionbudgets/mini-xdr-platform`)).body as {
      spec: { minAvailable: number };
    };
    expect(budget.spec.minAvailable).toBe(1);
    const service = (await cluster.request("GET", `/api/v1/namespaces/${NAMESPACE}/services/mini-xdr-platform`)).body as {
      spec: { ports: { port: number; targetPort: string }[] };
    };
    expect(service.spec.ports).toEqual([expect.objectContaining({ port: 80, targetPort: "http" })]);
  });

  it("refuses a configuration without an image, naming the field", () => {
    const parsed = platformDeploymentConfigSchema.safeParse({ replicas: 50 });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues.map((issue) => issue.path.join("."))).toEqual(["image", "replicas"]);
  });
});
