import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

export interface KubernetesAgentArgs {
  kubeconfig: pulumi.Input<string>;
  namespace: string;
  image: string;
  agentVersion: string;
  agentConfigJson: pulumi.Input<string>;
  tenantSlug: string;
}

/**
 * The XDR agent on one of the tenant's EKS clusters: a namespace, the agent's service account, a Secret with the
 * agent config (its enrollment token) and a DaemonSet that tolerates every taint, so every node runs it. The pod
 * shares the node's network and PID namespace: it reads the node's instance identity from instance metadata and
 * enrolls as that EC2 instance, so a node counts once however its agent came.
 */
export class KubernetesAgent extends pulumi.ComponentResource {
  readonly namespace: pulumi.Output<string>;
  readonly daemonSetName: pulumi.Output<string>;
  readonly desired: pulumi.Output<number>;
  readonly ready: pulumi.Output<number>;

  constructor(name: string, args: KubernetesAgentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("minixdr:tenant:KubernetesAgent", name, {}, opts);
    // A cluster deleted (or closed) since the last up leaves the stack without blocking every later up and destroy.
    const provider = new k8s.Provider(`${name}-cluster`, { kubeconfig: args.kubeconfig, deleteUnreachable: true }, { parent: this });
    const childOpts = { parent: this, provider };
    const labels = { "app.kubernetes.io/name": "mini-xdr-agent", "mini-xdr/tenant": args.tenantSlug };

    const namespace = new k8s.core.v1.Namespace(`${name}-namespace`, { metadata: { name: args.namespace, labels } }, childOpts);
    const serviceAccount = new k8s.core.v1.ServiceAccount(
      `${name}-service-account`,
      { metadata: { name: "mini-xdr-agent", namespace: namespace.metadata.name, labels }, automountServiceAccountToken: false },
      childOpts,
    );
    const secret = new k8s.core.v1.Secret(
      `${name}-config`,
      {
        metadata: { name: "mini-xdr-agent-config", namespace: namespace.metadata.name, labels },
        type: "Opaque",
        stringData: { "agent.json": pulumi.secret(args.agentConfigJson) },
      },
      childOpts,
    );
    const daemonSet = new k8s.apps.v1.DaemonSet(
      `${name}-daemonset`,
      {
        metadata: { name: "mini-xdr-agent", namespace: namespace.metadata.name, labels },
        spec: {
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: serviceAccount.metadata.name,
              automountServiceAccountToken: false,
              hostPID: true,
              hostNetwork: true,
              dnsPolicy: "ClusterFirstWithHostNet",
              tolerations: [{ operator: "Exists" }],
              // Every Linux node that runs a kubelet: not Windows nodes (another agent build) nor Fargate's (no DaemonSets).
              nodeSelector: { "kubernetes.io/os": "linux" },
              affinity: {
                nodeAffinity: {
                  requiredDuringSchedulingIgnoredDuringExecution: {
                    nodeSelectorTerms: [{ matchExpressions: [{ key: "eks.amazonaws.com/compute-type", operator: "NotIn", values: ["fargate"] }] }],
                  },
                },
              },
              containers: [
                {
                  name: "agent",
                  image: `${args.image}:${args.agentVersion}`,
                  args: ["run", "--config", "/etc/mini-xdr/agent.json"],
                  env: [{ name: "MINI_XDR_NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
                  volumeMounts: [{ name: "config", mountPath: "/etc/mini-xdr", readOnly: true }],
                  resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
                },
              ],
              volumes: [{ name: "config", secret: { secretName: secret.metadata.name } }],
            },
          },
        },
      },
      childOpts,
    );
    this.namespace = namespace.metadata.name;
    this.daemonSetName = daemonSet.metadata.name;
    this.desired = daemonSet.status.apply((status) => status?.desiredNumberScheduled ?? 0);
    this.ready = daemonSet.status.apply((status) => status?.numberReady ?? 0);
    this.registerOutputs({ namespace: this.namespace, daemonSetName: this.daemonSetName, desired: this.desired, ready: this.ready });
  }
}
