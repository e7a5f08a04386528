import { z } from "zod";

/** Keys of the platform's Kubernetes Secret the Deployment reads (created by the operator, never by this program). */
export const PLATFORM_SECRET_KEYS = {
  databaseUrl: "DATABASE_URL",
  adminToken: "ADMIN_TOKEN",
  credentialsEncryptionKey: "CREDENTIALS_ENCRYPTION_KEY",
  pulumiConfigPassphrase: "PULUMI_CONFIG_PASSPHRASE",
} as const;

/**
 * The platform service on a Kubernetes cluster (programs/platform): its image and replicas, the Secret that holds
 * the external PostgreSQL's URL and the keys, and how long a stopping replica may finish a stack run.
 */
export const platformDeploymentConfigSchema = z.object({
  namespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "must be a Kubernetes namespace name")
    .default("mini-xdr-platform"),
  image: z.string().min(1, "is required (the service's container image, e.g. registry.example.com/mini-xdr/platform:1.4.0)"),
  replicas: z.number().int().min(1).max(20, "must be at most 20").default(2),
  /** The Secret (in the namespace) with DATABASE_URL, ADMIN_TOKEN, CREDENTIALS_ENCRYPTION_KEY and PULUMI_CONFIG_PASSPHRASE. */
  secretName: z
    .string()
    .regex(/^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$/, "must be a Kubernetes Secret name")
    .default("mini-xdr-platform"),
  /** SHUTDOWN_GRACE_SECONDS of the service: how long a stopping replica lets running stack operations finish. */
  shutdownGraceSeconds: z.number().int().min(0).max(3600).default(60),
  publicUrl: z.url({ protocol: /^https$/, error: "must be an https:// URL" }).optional(),
  /** More environment (settings of platform/config.ts that are not secrets: PLATFORM_PRINCIPAL_ARN, AGENT_VERSION, ...). */
  env: z.record(z.string().regex(/^[A-Z][A-Z0-9_]*$/, "must be an environment variable name"), z.string()).default({}),
});

export type PlatformDeploymentConfig = z.output<typeof platformDeploymentConfigSchema>;
