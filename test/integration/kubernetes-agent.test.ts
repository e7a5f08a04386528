/**
 * The agent on Kubernetes through real parts: the KubernetesAgent component (programs/tenant/kubernetes-agent.ts)
 * applied by the real Pulumi engine and the real Kubernetes provider (pulumi-resource-kubernetes, the version
 * @pulumi/kubernetes asks for) to a real control plane whose nodes are kwok's (test/harness/kubernetes-cluster.ts),
 * checked through the Kubernetes API. The tools come from scripts/kubernetes-toolchain.sh; without them this fails.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { type EngineEvent, LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesAgent } from "../../programs/tenant/kubernetes-agent";
import { assertKubernetesToolchain, KUBERNETES_PLUGIN_HOME, type KubernetesCluster, startKubernetesCluster } from "../harness/kubernetes-cluster";
import { pulumiCli } from "../harness/pulumi-cli";
import { waitFor } from "../harness/wait-for";

const NAMESPACE = "mini-xdr-acme";
const NODES = ["kwok-node-a", "kwok-node-b"];
const ENROLLMENT_TOKEN = "k8s-enroll-tok-3f9d61c0a7"; // must never appear in clear text in the state
const AGENT_CONFIG = JSON.stringify({ backendUrl: "https://agents.example.test", enrollmentToken: ENROLLMENT_TOKEN, tenant: "acme" });

interface DaemonSetStatus {
  status?: { desiredNumberScheduled?: number; numberReady?: number; currentNumberScheduled?: number };
}
interface PodList {
  items: { spec: { nodeName?: string }; status: { phase?: string } }[];
}

describe("KubernetesAgent through the real Kubernetes provider", () => {
  let cluster: KubernetesCluster;
  let workDir: string;
  let stack: Stack;
  let pulumiHome: string;
  let engineEnv: Record<string, string>;
  const diagnostics: string[] = [];
  const onEvent = (event: EngineEvent) => {
    const diag = event.diagnosticEvent;
    if (diag && (diag.severity === "warning" || diag.severity === "error")) diagnostics.push(`${diag.severity}: ${diag.message.trim()}`);
  };

  beforeAll(async () => {
    assertKubernetesToolchain();
    cluster = await startKubernetesCluster();
    await cluster.createNodes(NODES);

    workDir = await mkdtemp(join(tmpdir(), "mxdr-k8s-agent-"));
    // The provider plugin that scripts/kubernetes-toolchain.sh installed, seen from this test's own Pulumi home.
    pulumiHome = join(workDir, "pulumi-home");
    await mkdir(pulumiHome);
    await symlink(join(KUBERNETES_PLUGIN_HOME, "plugins"), join(pulumiHome, "plugins"));
    await mkdir(join(workDir, "state"));
    engineEnv = {
      PULUMI_BACKEND_URL: `file://${join(workDir, "state")}`,
      PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "test-passphrase",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_SKIP_UPDATE_CHECK: "true",
    };
    const adminKubeconfig = cluster.adminKubeconfig;
    stack = await LocalWorkspace.createOrSelectStack(
      {
        stackName: "acme",
        projectName: "kubernetes-agent-test",
        program: async () => {
          const agent = new KubernetesAgent("acme-k8s-agent", {
            kubeconfig: pulumi.secret(adminKubeconfig),
            namespace: NAMESPACE,
            image: "registry.example.test/mini-xdr/agent",
            agentVersion: "1.4.2",
            agentConfigJson: AGENT_CONFIG,
            tenantSlug: "acme",
          });
          return { namespace: agent.namespace, daemonSetName: agent.daemonSetName, desired: agent.desired, ready: agent.ready };
        },
      },
      {
        pulumiHome,
        envVars: engineEnv,
      },
    );
  });

  afterAll(async () => {
    if (diagnostics.length) console.log(`engine diagnostics:\n${[...new Set(diagnostics)].join("\n")}`);
    // Leave nothing behind if a test failed half-way.
    await stack?.destroy().catch(() => undefined);
    await cluster?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("up creates the namespace, the config Secret and a DaemonSet that runs on every node", async () => {
    const result = await stack.up({ onEvent });
    expect(result.summary.result).toBe("succeeded");
    // stack, component, provider, namespace, service account, secret, daemonset
    expect(result.summary.resourceChanges).toMatchObject({ create: 7 });
    expect(result.outputs.namespace?.value).toBe(NAMESPACE);
    expect(result.outputs.daemonSetName?.value).toBe("mini-xdr-agent");
    // The provider awaits the DaemonSet's rollout: the outputs are its status when it was ready.
    expect([result.outputs.desired?.value, result.outputs.ready?.value]).toEqual([2, 2]);

    const namespace = await cluster.request("GET", `/api/v1/namespaces/${NAMESPACE}`);
    expect(namespace.status).toBe(200);
    expect(namespace.body).toMatchObject({ metadata: { labels: { "mini-xdr/tenant": "acme" } } });

    const secret = await cluster.request("GET", `/api/v1/namespaces/${NAMESPACE}/secrets/mini-xdr-agent-config`);
    expect(secret.status).toBe(200);
    const data = (secret.body as { data?: Record<string, string> }).data ?? {};
    expect(Buffer.from(data["agent.json"] ?? "", "base64").toString("utf8")).toBe(AGENT_CONFIG);

    const daemonSet = await cluster.request("GET", `/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/mini-xdr-agent`);
    expect(daemonSet.status).toBe(200);
    expect(daemonSet.body).toMatchObject({
      spec: { template: { spec: { hostPID: true, containers: [{ image: "registry.example.test/mini-xdr/agent:1.4.2" }] } } },
    });
    // The provider awaited the rollout; kwok's pods are Running and Ready on both nodes.
    const status = await waitFor(
      "the DaemonSet to be ready on both nodes",
      async () => {
        const { body } = await cluster.request("GET", `/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/mini-xdr-agent`);
        const s = (body as DaemonSetStatus).status;
        return s?.desiredNumberScheduled === 2 && s.numberReady === 2 ? s : false;
      },
      { timeoutMs: 30_000 },
    );
    expect(status).toMatchObject({ desiredNumberScheduled: 2, numberReady: 2 });
    const pods = (await cluster.request("GET", `/api/v1/namespaces/${NAMESPACE}/pods`)).body as PodList;
    expect(pods.items.map((pod) => pod.spec.nodeName).sort()).toEqual(NODES);
    expect(pods.items.every((pod) => pod.status.phase === "Running")).toBe(true);
  });

  it("the Secret's content and the cluster credentials are never in the state in clear text", async () => {
    // `pulumi stack export` as an operator would run it (the Automation API's exportStack adds --show-secrets).
    const exported = await pulumiCli(["stack", "export", "--stack", "acme", "--non-interactive"], {
      cwd: stack.workspace.workDir,
      env: { ...process.env, ...engineEnv, PULUMI_HOME: pulumiHome },
    });
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain('"ciphertext"');
    const stateFiles = await readdir(join(workDir, "state"), { recursive: true, withFileTypes: true });
    const raw = await Promise.all(stateFiles.filter((entry) => entry.isFile()).map((entry) => readFile(join(entry.parentPath, entry.name), "utf8")));
    const adminKey = /client-key-data": "([^"]+)"/.exec(cluster.adminKubeconfig)?.[1];
    expect(adminKey).toBeTruthy();
    for (const text of [exported.stdout, raw.join("\n")]) {
      expect(text).toContain("mini-xdr-agent-config"); // the Secret is in the state ...
      expect(text).not.toContain(ENROLLMENT_TOKEN); // ... its content is not
      expect(text).not.toContain(Buffer.from(AGENT_CONFIG).toString("base64"));
      expect(text).not.toContain(JSON.stringify(AGENT_CONFIG).slice(1, -1));
      expect(text).not.toContain(adminKey);
    }
  });

  it("destroy removes the DaemonSet, the Secret and the namespace", async () => {
    const result = await stack.destroy({ onEvent });
    expect(result.summary.result).toBe("succeeded");
    expect(result.summary.resourceChanges).toMatchObject({ delete: 7 });
    for (const path of [
      `/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/mini-xdr-agent`,
      `/api/v1/namespaces/${NAMESPACE}/secrets/mini-xdr-agent-config`,
      `/api/v1/namespaces/${NAMESPACE}`,
    ]) {
      await waitFor(`${path} to be gone`, async () => (await cluster.request("GET", path)).status === 404, { timeoutMs: 60_000 });
    }
    const pods = (await cluster.request("GET", `/api/v1/namespaces/${NAMESPACE}/pods`)).body as PodList | undefined;
    expect(pods?.items ?? []).toEqual([]);
  });
});
