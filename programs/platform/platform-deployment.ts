import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { shutdownDeadlineSeconds } from "../../lib/shutdown";
import { PLATFORM_SECRET_KEYS, type PlatformDeploymentConfig } from "./config";

const PORT = 8080;

/**
 * The platform service on Kubernetes, for when one machine is outgrown: N replicas of the same image that share
 * nothing but the external PostgreSQL (runs, queues, Pulumi state and saved plans all live there), so any replica
 * serves any request and picks up any run. Secrets come by reference from a Secret the operator keeps; a stopping
 * pod outlives the service's own shutdown deadline (grace for running stack operations, cancel window, margin), so a
 * run ends cleanly; a PodDisruptionBudget keeps one replica serving through node drains.
 */
export class PlatformOnKubernetes extends pulumi.ComponentResource {
  readonly namespace: pulumi.Output<string>;
  readonly deploymentName: pulumi.Output<string>;
  readonly serviceName: pulumi.Output<string>;

  constructor(name: string, config: PlatformDeploymentConfig, opts?: pulumi.ComponentResourceOptions) {
    super("minixdr:platform:PlatformOnKubernetes", name, {}, opts);
    const labels = { "app.kubernetes.io/name": "mini-xdr-platform", "app.kubernetes.io/instance": name };
    const child = { parent: this };
    const namespace = new k8s.core.v1.Namespace(`${name}-namespace`, { metadata: { name: config.namespace, labels } }, child);
    const fromSecret = (key: string) => ({ name: key, valueFrom: { secretKeyRef: { name: config.secretName, key } } });
    const probe = (failureThreshold: number, periodSeconds: number) => ({
      httpGet: { path: "/healthz", port: "http" },
      periodSeconds,
      timeoutSeconds: 5,
      failureThreshold,
    });

    const deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: { name: "mini-xdr-platform", namespace: namespace.metadata.name, labels },
        spec: {
          replicas: config.replicas,
          selector: { matchLabels: labels },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels },
            spec: {
              // Past the service's own deadline: it exits by itself before the kubelet would kill it.
              terminationGracePeriodSeconds: shutdownDeadlineSeconds(config.shutdownGraceSeconds) + 5,
              securityContext: { runAsNonRoot: true, runAsUser: 10001, fsGroup: 10001 },
              containers: [
                {
                  name: "platform",
                  image: config.image,
                  ports: [{ name: "http", containerPort: PORT }],
                  env: [
                    { name: "HOST", value: "0.0.0.0" },
                    { name: "PORT", value: String(PORT) },
                    { name: "DATA_DIR", value: "/data" },
                    { name: "SHUTDOWN_GRACE_SECONDS", value: String(config.shutdownGraceSeconds) },
                    ...(config.publicUrl ? [{ name: "PUBLIC_URL", value: config.publicUrl }] : []),
                    ...Object.entries(config.env).map(([key, value]) => ({ name: key, value })),
                    ...Object.values(PLATFORM_SECRET_KEYS).map(fromSecret),
                  ],
                  startupProbe: probe(30, 5),
                  readinessProbe: probe(3, 10),
                  livenessProbe: probe(6, 20),
                  resources: { requests: { cpu: "250m", memory: "512Mi" }, limits: { memory: "2Gi" } },
                  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
                  volumeMounts: [{ name: "data", mountPath: "/data" }],
                },
              ],
              // Per-replica scratch (Pulumi workspaces, the CLI's plugin cache): nothing there outlives the pod.
              volumes: [{ name: "data", emptyDir: {} }],
            },
          },
        },
      },
      child,
    );
    new k8s.policy.v1.PodDisruptionBudget(
      `${name}-disruption-budget`,
      {
        metadata: { name: "mini-xdr-platform", namespace: namespace.metadata.name, labels },
        spec: { minAvailable: 1, selector: { matchLabels: labels } },
      },
      child,
    );
    const service = new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: { name: "mini-xdr-platform", namespace: namespace.metadata.name, labels },
        spec: { selector: labels, ports: [{ name: "http", port: 80, targetPort: "http" }] },
      },
      child,
    );
    this.namespace = namespace.metadata.name;
    this.deploymentName = deployment.metadata.name;
    this.serviceName = service.metadata.name;
    this.registerOutputs({ namespace: this.namespace, deploymentName: this.deploymentName, serviceName: this.serviceName });
  }
}
