import { fileURLToPath } from "node:url";
import type { EksCluster } from "./config";

/** The EKS access policy the access role's entry is associated with, cluster-wide (why this one: component.ts). */
export const AGENT_ACCESS_POLICY_ARN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";

/** The exec credential plugin (programs/tenant/eks-token.ts) that mints the cluster's token each time it is needed. */
const TOKEN_SCRIPT = fileURLToPath(new URL("./eks-token.ts", import.meta.url));

export interface EksKubeconfigArgs {
  cluster: EksCluster;
  /** The access role whose access entry lets it in. */
  roleArn: string;
  externalId: string;
  sessionName: string;
}

/**
 * A kubeconfig for one EKS cluster whose user is an exec credential plugin, as `aws eks update-kubeconfig` writes:
 * the Kubernetes provider runs it whenever it needs a token, so a short-lived token is minted at run time (also at
 * a destroy months later, which reads this kubeconfig from the state) and never stored. The plugin is this
 * repository's eks-token.ts (node, types stripped), because `aws eks get-token` cannot pass an external ID.
 */
export function eksKubeconfig({ cluster, roleArn, externalId, sessionName }: EksKubeconfigArgs): string {
  const name = `${cluster.region}/${cluster.name}`;
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster: { server: cluster.endpoint, "certificate-authority-data": cluster.certificateAuthority } }],
    users: [
      {
        name: "mini-xdr",
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: process.execPath,
            args: ["--experimental-strip-types", "--no-warnings", TOKEN_SCRIPT],
            env: [
              { name: "MINI_XDR_EKS_CLUSTER", value: cluster.name },
              { name: "MINI_XDR_EKS_REGION", value: cluster.region },
              { name: "MINI_XDR_EKS_ROLE_ARN", value: roleArn },
              { name: "MINI_XDR_EKS_EXTERNAL_ID", value: externalId },
              { name: "MINI_XDR_EKS_SESSION_NAME", value: sessionName },
            ],
            interactiveMode: "Never",
          },
        },
      },
    ],
    contexts: [{ name, context: { cluster: name, user: "mini-xdr" } }],
    "current-context": name,
  });
}
