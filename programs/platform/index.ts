import * as pulumi from "@pulumi/pulumi";
import { platformDeploymentConfigSchema } from "./config";
import { PlatformOnKubernetes } from "./platform-deployment";

/** `pulumi up` in programs/platform: the platform service on the cluster of the current kubeconfig (README, "Outgrowing one machine"). */
const config = new pulumi.Config();
const parsed = platformDeploymentConfigSchema.safeParse({
  namespace: config.get("namespace"),
  image: config.get("image"),
  replicas: config.getNumber("replicas"),
  secretName: config.get("secretName"),
  shutdownGraceSeconds: config.getNumber("shutdownGraceSeconds"),
  publicUrl: config.get("publicUrl"),
  env: config.getObject("env"),
});
if (!parsed.success) {
  throw new pulumi.RunError(`invalid platform configuration:\n${parsed.error.issues.map((i) => `  - ${i.path.join(".")}: ${i.message}`).join("\n")}`);
}
const platform = new PlatformOnKubernetes("mini-xdr", parsed.data);
export const namespace = platform.namespace;
export const deployment = platform.deploymentName;
export const service = platform.serviceName;
