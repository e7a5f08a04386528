/**
 * The service's process configuration, read ONCE from the environment at the edge (api/server.ts)
 * and handed to everything else as a plain, validated object. Nothing below the edge reads
 * process.env.
 *
 * Secrets that may be absent at first start:
 * - ADMIN_TOKEN: when absent and no platform-admin token exists yet, api/bootstrap-admin.ts
 *   generates one, stores only its hash and prints it once to stderr.
 * - CREDENTIALS_ENCRYPTION_KEY: when absent, resolveCredentialsKey() generates one once into
 *   `<DATA_DIR>/credentials.key` (mode 600) with a warning, and reuses it afterwards.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { bootstrapPublishSettingsSchema } from "../services/integration/bootstrap-template-publisher";
import { parseEncryptionKey } from "../db/crypto";
import { principalArnSchema } from "../programs/tenant/config";
import { awsIdentityTrust, parseIdentityCertificates, type IdentityTrust } from "../services/rollout/instance-identity-fns";
import { DEFAULT_RUN_TIMEOUT_SECONDS, DEFAULT_STOP_GRACE_SECONDS } from "../services/run/run-timeouts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DEFAULT_DATA_DIR = join(REPO_ROOT, ".data");
export const CREDENTIALS_KEY_FILE = "credentials.key";
/** Variables of this service that are secrets: never passed to a child process. */
const SERVICE_SECRETS = new Set([
  "ADMIN_TOKEN",
  "DATABASE_URL",
  "CREDENTIALS_ENCRYPTION_KEY",
  "CREDENTIALS_PREVIOUS_ENCRYPTION_KEYS",
  "PULUMI_CONFIG_PASSPHRASE",
  "OIDC_CLIENT_SECRET",
  "SMTP_URL",
]);

const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === "" ? undefined : value.trim()));

const postgresUrl = z.string().refine((value) => {
  try {
    return ["postgres:", "postgresql:"].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, "must be a postgres:// or postgresql:// URL");

function isEncryptionKey(value: string): boolean {
  try {
    parseEncryptionKey(value);
    return true;
  } catch {
    return false;
  }
}

const runTimeout = (defaultSeconds: number) =>
  z.coerce
    .number()
    .int("must be an integer")
    .min(1, "must be at least 1 second")
    .max(86_400, "must be at most 86400 (a day)")
    .default(defaultSeconds);
/** The defaults of the per-tenant caps and the authentication failure limit (the API's too, when built without a config). */
export const DEFAULT_LIMITS = {
  maxQueuedRunsPerTenant: 10,
  maxEventStreamsPerTenant: 10,
  authFailureLimit: 20,
  authFailureWindowSeconds: 60,
  trustedProxyHops: 0,
} as const;

export const serviceConfigSchema = z.object({
  PORT: z.coerce.number().int("must be an integer").min(0).max(65535, "must be a port number (0-65535)").default(8080),
  HOST: z.string().min(1).default("127.0.0.1"),
  DATABASE_URL: optionalString.pipe(postgresUrl.optional()),
  DATA_DIR: optionalString.transform((value) => (value === undefined ? DEFAULT_DATA_DIR : resolve(value))),
  ADMIN_TOKEN: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
  CREDENTIALS_ENCRYPTION_KEY: optionalString.pipe(
    z.string().refine(isEncryptionKey, "must be 32 bytes as 64 hex characters or base64 (openssl rand -base64 32)").optional(),
  ),
  /**
   * Keys this replica may still decrypt with but never seals with, comma-separated (key rotation: the old key after a
   * new CREDENTIALS_ENCRYPTION_KEY, the local key when moving to KMS, or the next key before it becomes current).
   */
  CREDENTIALS_PREVIOUS_ENCRYPTION_KEYS: optionalString.pipe(
    z
      .string()
      .transform((value) =>
        value
          .split(",")
          .map((key) => key.trim())
          .filter((key) => key !== ""),
      )
      .refine((keys) => keys.every(isEncryptionKey), "must be a comma-separated list of 32-byte keys (64 hex characters or base64)")
      .optional(),
  ),
  /** A KMS key (id, ARN or alias/...): credentials are then sealed with a data key from KMS (db/kms-keyring.ts), not a local key. */
  CREDENTIALS_KMS_KEY_ID: optionalString,
  CREDENTIALS_KMS_REGION: z.string().min(1).default("us-east-1"),
  /** How often a replica loads data keys other replicas added (a rotation to a new KMS key). Rotation waits twice this. */
  CREDENTIALS_KMS_REFRESH_SECONDS: z.coerce.number().int("must be an integer").min(1).max(3600).default(60),
  /** The platform's AWS principal that customer roles trust (with an external ID). */
  PLATFORM_PRINCIPAL_ARN: optionalString.pipe(principalArnSchema.optional()),
  /**
   * The platform's own AWS accounts, comma-separated, besides PLATFORM_PRINCIPAL_ARN's (always included): no tenant may
   * name one as its account or hand the platform a role in one (confused-deputy protection).
   */
  PLATFORM_ACCOUNT_IDS: optionalString.pipe(
    z
      .string()
      .transform((value) =>
        value
          .split(",")
          .map((id) => id.trim())
          .filter((id) => id !== ""),
      )
      .refine((ids) => ids.every((id) => /^\d{12}$/.test(id)), "must be a comma-separated list of 12-digit AWS account ids")
      .optional(),
  ),
  /** S3 bucket the bootstrap role's CloudFormation template is published to (quick-create links); it must let
   * CloudFormation in customer accounts read `bootstrap/*`. */
  BOOTSTRAP_TEMPLATE_BUCKET: optionalString.pipe(bootstrapPublishSettingsSchema.shape.bucket.optional()),
  BOOTSTRAP_TEMPLATE_BUCKET_REGION: bootstrapPublishSettingsSchema.shape.region.default("us-east-1"),
  /** How long the service waits for a customer's bootstrap role after the link was opened. */
  BOOTSTRAP_WAIT_SECONDS: z.coerce.number().int("must be an integer").min(10).max(86_400).default(900),
  /** Maximum request body, bytes. */
  BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** Pulumi state backend; default the postgres:// backend in the service's server, database `<name>_state` (automation/state-backend.ts). */
  PULUMI_BACKEND_URL: optionalString,
  /** "passphrase" (PULUMI_CONFIG_PASSPHRASE) or awskms://... */
  PULUMI_SECRETS_PROVIDER: z
    .string()
    .regex(/^(passphrase|awskms:\/\/.+)$/, "must be passphrase or awskms://...")
    .default("passphrase"),
  PULUMI_CONFIG_PASSPHRASE: optionalString,
  /** The folder holding Pulumi.yaml and stacks/ (default: this checkout). */
  PULUMI_PROJECT_DIR: optionalString.transform((value) => (value === undefined ? REPO_ROOT : resolve(value))),
  /**
   * Extra variables, comma-separated names, that the Pulumi CLI and its plugins get besides the allowlist
   * (automation/cli-environment.ts: PATH, HOME, PULUMI_*, AWS_*, NODE_*, proxies, locale, temp dirs). The service's
   * own secrets cannot be passed.
   */
  PULUMI_CLI_ENV_PASSTHROUGH: optionalString.pipe(
    z
      .string()
      .transform((value) =>
        value
          .split(",")
          .map((name) => name.trim())
          .filter((name) => name !== ""),
      )
      .refine((names) => names.every((name) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)), "must be a comma-separated list of variable names")
      .refine((names) => !names.some((name) => SERVICE_SECRETS.has(name)), "must not name the service's own secrets")
      .optional(),
  ),
  /**
   * On SIGTERM/SIGINT: how long running stack operations may take to finish before they are cancelled and their runs
   * marked interrupted (the supervisor's stop timeout should exceed it by SHUTDOWN_CANCEL_WINDOW_SECONDS and more).
   */
  SHUTDOWN_GRACE_SECONDS: z.coerce.number().int("must be an integer").min(0).max(86_400, "must be at most 86400 (a day)").default(60),
  /** Stack runs executing at once in this process (one per tenant stack regardless). */
  MAX_CONCURRENT_RUNS: z.coerce.number().int("must be an integer").min(1).max(64).default(4),
  /**
   * Connections of the pool that serves requests and jobs. Runs' liveness locks have a client of their own, sized from
   * MAX_CONCURRENT_RUNS; the start-up check refuses a total the PostgreSQL server cannot hold (db/connection-budget.ts).
   */
  DATABASE_POOL_MAX: z.coerce.number().int("must be an integer").min(2).max(200).default(10),
  /** Per run kind, seconds after which a run is stopped (CLI and plugins) and fails with kind Timeout. */
  RUN_TIMEOUT_PREVIEW_SECONDS: runTimeout(DEFAULT_RUN_TIMEOUT_SECONDS.preview),
  RUN_TIMEOUT_UP_SECONDS: runTimeout(DEFAULT_RUN_TIMEOUT_SECONDS.up),
  RUN_TIMEOUT_REFRESH_SECONDS: runTimeout(DEFAULT_RUN_TIMEOUT_SECONDS.refresh),
  RUN_TIMEOUT_DESTROY_SECONDS: runTimeout(DEFAULT_RUN_TIMEOUT_SECONDS.destroy),
  RUN_TIMEOUT_DRIFT_SECONDS: runTimeout(DEFAULT_RUN_TIMEOUT_SECONDS.drift),
  /** How long a timed-out or cancelled operation may cancel gracefully (SIGINT) before its processes are killed. */
  RUN_STOP_GRACE_SECONDS: z.coerce.number().int("must be an integer").min(1).max(600).default(DEFAULT_STOP_GRACE_SECONDS),
  /** false: this replica only serves the API and enqueues; other replicas execute. */
  RUN_WORKER: z
    .enum(["true", "false"])
    .default("true")
    .transform((value) => value === "true"),
  /** A browser session ends after this long without a request (services/identity). */
  SESSION_IDLE_SECONDS: z.coerce.number().int("must be an integer").min(60).max(86_400).default(1800),
  /** ... and this long after sign-in, whatever its activity. */
  SESSION_ABSOLUTE_SECONDS: z.coerce.number().int("must be an integer").min(300).max(2_592_000).default(43_200),
  /** How long the operator sign-in link printed at start stays usable (single use). */
  SIGN_IN_LINK_SECONDS: z.coerce.number().int("must be an integer").min(60).max(86_400).default(900),
  /** The console's address as browsers reach it (links in invitation mails, the identity provider's redirect URI); default: the request's. */
  PUBLIC_URL: optionalString.pipe(z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional()),
  /** Single sign-on: the OpenID Connect issuer (discovered at its /.well-known/openid-configuration); unset: sign-in links. */
  OIDC_ISSUER_URL: optionalString.pipe(z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional()),
  OIDC_CLIENT_ID: optionalString,
  OIDC_CLIENT_SECRET: optionalString,
  /** The scopes asked for, space-separated: add the one that releases the operator claim where the provider needs it (often `groups`). */
  OIDC_SCOPES: z
    .string()
    .regex(/^[\x21-\x7e]+( [\x21-\x7e]+)*$/, "must be scopes separated by single spaces")
    .refine((value) => value.split(" ").includes("openid"), "must include openid")
    .default("openid email profile"),
  /** What the sign-in page's button says: "Sign in with <name>". */
  OIDC_PROVIDER_NAME: z.string().min(1).max(60).default("your identity provider"),
  /** The claim (a string or a list, such as groups) whose value makes someone a platform operator... */
  OIDC_OPERATOR_CLAIM: z.string().min(1).default("groups"),
  /** ... and those values, comma-separated; unset: nobody becomes an operator through the identity provider. */
  OIDC_OPERATOR_VALUES: optionalString.transform((value) =>
    (value ?? "")
      .split(",")
      .map((item) => item.trim())
      .filter(Boolean),
  ),
  /** Invitation mails go through this SMTP server (smtp://user:password@host:port, smtps:// for TLS); unset: links shown once. */
  SMTP_URL: optionalString.pipe(z.url({ protocol: /^smtps?$/, error: "must be an smtp:// or smtps:// URL" }).optional()),
  SMTP_FROM: z.string().min(3).default("Mini-XDR <no-reply@mini-xdr.invalid>"),
  /** How long an invitation link stays usable (single use). */
  INVITATION_SECONDS: z.coerce.number().int("must be an integer").min(300).max(2_592_000).default(604_800),
  /** Members one tenant may have, and its invitations not yet accepted. */
  MAX_MEMBERS_PER_TENANT: z.coerce.number().int("must be an integer").min(1).max(10_000).default(200),
  MAX_PENDING_INVITATIONS_PER_TENANT: z.coerce.number().int("must be an integer").min(1).max(1000).default(50),
  /** How often a worker replica lists every connected AWS Organization and starts what may start (services/organization). */
  ORGANIZATION_RECONCILE_SECONDS: z.coerce.number().int("must be an integer").min(1).max(86_400).default(300),
  /** AWS accounts one tenant may cover; accounts of its organization past this are not registered (and logged). */
  MAX_ACCOUNTS_PER_TENANT: z.coerce.number().int("must be an integer").min(1).max(5000).default(1000),
  /** How often a worker replica looks for runs whose executor died in another replica (services/run/recovery.ts). */
  RECOVERY_SWEEP_SECONDS: z.coerce.number().int("must be an integer").min(1).max(3600).default(30),
  /**
   * A JSON file of more certificates that sign EC2 instance identity documents, in the format of
   * services/rollout/aws-instance-identity-certificates.json (AWS's, always trusted): a region or rotation AWS
   * published after this release, or a test CA. Read and checked at start-up.
   */
  AGENT_IDENTITY_CERTIFICATES_FILE: optionalString.transform((value) => (value === undefined ? undefined : resolve(value))),
  /** Where agents download from and report to, for tenants whose settings name none (integration_settings.agent_public_base_url). */
  AGENT_PUBLIC_BASE_URL: optionalString.pipe(z.url({ protocol: /^https$/, error: "must be an https:// URL" }).optional()),
  /** Agent version the tenant stacks install. */
  AGENT_VERSION: z
    .string()
    .regex(/^\d+\.\d+\.\d+([-+][\w.]+)?$/, "must be a semantic version such as 1.4.2")
    .default("1.0.0"),
  /** Cron (UTC) of the scheduled discovery of tenants with auto_discovery_enabled. */
  DISCOVERY_SCHEDULE: z.string().min(9).default("*/30 * * * *"),
  /** Cron (UTC) of the drift sweep (a fleet run of kind drift over every tenant); unset: no scheduled drift checks. */
  DRIFT_SCHEDULE: optionalString.pipe(z.string().min(9, "must be a cron expression such as 0 */6 * * *").optional()),
  /** Tenant drift checks at once in a scheduled sweep. */
  DRIFT_MAX_CONCURRENCY: z.coerce.number().int("must be an integer").min(1).max(64).default(2),
  /**
   * Platform webhooks (created with the admin token on /v1/webhooks, no tenant) may target loopback, also over plain
   * http (a local receiver, tests). Tenants' webhooks never reach loopback, private or other non-public addresses.
   */
  WEBHOOK_PLATFORM_ALLOW_LOOPBACK: z
    .enum(["true", "false"])
    .default("false")
    .transform((value) => value === "true"),
  /** Renamed: it opened loopback to tenants' webhooks too. Refused, so a deployment that sets it learns the new name. */
  WEBHOOK_ALLOW_HTTP_LOOPBACK: z
    .undefined({
      error: "was renamed to WEBHOOK_PLATFORM_ALLOW_LOOPBACK, which opens loopback to platform webhooks only; tenants' webhooks never reach it",
    })
    .optional(),
  /** Live webhooks per tenant; creating one more answers 409 webhook_limit_reached. */
  WEBHOOK_MAX_PER_TENANT: z.coerce.number().int("must be an integer").min(1).max(1000).default(10),
  /** Delivery attempts in flight per replica. */
  WEBHOOK_MAX_CONCURRENT_DELIVERIES: z.coerce.number().int("must be an integer").min(1).max(64).default(8),
  /** Delivery attempts in flight per receiver host:port, over every replica. */
  WEBHOOK_MAX_CONCURRENT_PER_HOST: z.coerce.number().int("must be an integer").min(1).max(64).default(2),
  /** Delivery attempts in flight per tenant in a replica (platform webhooks count as one); keep it well under WEBHOOK_MAX_CONCURRENT_DELIVERIES. */
  WEBHOOK_MAX_CONCURRENT_PER_TENANT: z.coerce.number().int("must be an integer").min(1).max(64).default(2),
  /** One attempt, from connecting to the receiver's status line (seconds). */
  WEBHOOK_TIMEOUT_SECONDS: z.coerce.number().min(1).max(120).default(10),
  /** Connecting to the receiver (seconds); at most WEBHOOK_TIMEOUT_SECONDS takes effect. */
  WEBHOOK_CONNECT_TIMEOUT_SECONDS: z.coerce.number().min(0.5).max(60).default(5),
  /** Attempts per webhook delivery before it is marked failed. */
  WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int("must be an integer").min(1).max(50).default(10),
  /** First retry delay of a failed delivery (seconds); doubles per attempt up to WEBHOOK_RETRY_MAX_SECONDS. */
  WEBHOOK_RETRY_BASE_SECONDS: z.coerce.number().min(0.1).max(3600).default(2),
  WEBHOOK_RETRY_MAX_SECONDS: z.coerce.number().min(1).max(86_400).default(300),
  /** Runs of one tenant waiting in the queue at once; a run request beyond it answers 429 (queued_run_limit). */
  MAX_QUEUED_RUNS_PER_TENANT: z.coerce.number().int("must be an integer").min(1).max(1000).default(DEFAULT_LIMITS.maxQueuedRunsPerTenant),
  /**
   * Server-sent event streams open at once per tenant (tenant tokens) or per platform-admin token, in this replica;
   * one more answers 429 (event_stream_limit).
   */
  MAX_EVENT_STREAMS_PER_TENANT: z.coerce.number().int("must be an integer").min(1).max(1000).default(DEFAULT_LIMITS.maxEventStreamsPerTenant),
  /**
   * Failed authentications (bearer tokens; agent enrollment tokens counted apart) one client address may make within
   * AUTH_FAILURE_WINDOW_SECONDS, in this replica; past it every authentication from that address answers 429
   * (too_many_auth_failures) until the window has room again.
   */
  AUTH_FAILURE_LIMIT: z.coerce.number().int("must be an integer").min(1).max(1_000_000).default(DEFAULT_LIMITS.authFailureLimit),
  AUTH_FAILURE_WINDOW_SECONDS: z.coerce.number().int("must be an integer").min(1).max(86_400).default(DEFAULT_LIMITS.authFailureWindowSeconds),
  /**
   * Proxies in front of the service that append to X-Forwarded-For (0: none; the client is the socket's address). With
   * N, the client is the N-th address from the right of X-Forwarded-For; never set it without such proxies, or
   * clients choose their own address.
   */
  TRUSTED_PROXY_HOPS: z.coerce.number().int("must be an integer").min(0).max(10).default(DEFAULT_LIMITS.trustedProxyHops),
  /** How long one connection of a server-sent-event stream lasts at most; clients reconnect (api/sse.ts). */
  EVENT_STREAM_MAX_SECONDS: z.coerce.number().int("must be an integer").min(1).max(86_400).default(300),
  /** Cron (UTC) of the retention job (services/retention/retention.ts). */
  RETENTION_SCHEDULE: z.string().min(9, "must be a cron expression such as 17 * * * *").default("17 * * * *"),
  /** Idempotency keys older than this are deleted (a retry after that is a new request). */
  RETENTION_IDEMPOTENCY_KEY_HOURS: z.coerce.number().int("must be an integer").min(1).max(8760).default(24),
  /** Engine events of runs finished longer ago than this are deleted (the runs stay), but see RETENTION_KEEP_RUNS_PER_TENANT. */
  RETENTION_RUN_EVENT_DAYS: z.coerce.number().int("must be an integer").min(1).max(3650).default(30),
  /** Each tenant's last this many runs (and its latest up) keep their events whatever their age. */
  RETENTION_KEEP_RUNS_PER_TENANT: z.coerce.number().int("must be an integer").min(0).max(10_000).default(10),
  /** Delivered or failed webhook deliveries (with their attempts) older than this are deleted; pending ones never. */
  RETENTION_WEBHOOK_DELIVERY_DAYS: z.coerce.number().int("must be an integer").min(1).max(3650).default(30),
  /** Rows per delete statement; a job runs at most 100 of them per table and leaves the rest for the next tick. */
  RETENTION_BATCH_SIZE: z.coerce.number().int("must be an integer").min(10).max(100_000).default(1000),
});

/** The retention policy of services/retention/retention.ts from the configuration. */
export const retentionPolicyOf = (config: ServiceConfig) => ({
  idempotencyKeyHours: config.RETENTION_IDEMPOTENCY_KEY_HOURS,
  runEventDays: config.RETENTION_RUN_EVENT_DAYS,
  keepRunsPerTenant: config.RETENTION_KEEP_RUNS_PER_TENANT,
  webhookDeliveryDays: config.RETENTION_WEBHOOK_DELIVERY_DAYS,
  batchSize: config.RETENTION_BATCH_SIZE,
  maxBatches: 100,
});

export type ServiceConfig = z.output<typeof serviceConfigSchema>;
export type ServiceEnv = z.input<typeof serviceConfigSchema>;

export class ServiceConfigError extends Error {
  override readonly name = "ServiceConfigError";
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(`invalid service configuration:\n${problems.map((problem) => `  - ${problem.variable}: ${problem.message}`).join("\n")}`);
  }
}

/** Validates the environment; throws one ServiceConfigError naming every bad variable. */
export function loadServiceConfig(env: Readonly<Record<string, string | undefined>>): ServiceConfig {
  const candidate: Record<string, string | undefined> = {};
  for (const key of Object.keys(serviceConfigSchema.shape)) {
    const value = env[key];
    // An empty variable means "unset" (so PORT= falls back to the default instead of 0).
    candidate[key] = value === undefined || value.trim() === "" ? undefined : value;
  }
  const parsed = serviceConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    throw new ServiceConfigError(
      parsed.error.issues.map((issue) => ({
        variable: String(issue.path[0] ?? "(environment)"),
        // Never echo the value: some of these variables are secrets.
        message: issue.message,
      })),
    );
  }
  const oidc = {
    OIDC_ISSUER_URL: parsed.data.OIDC_ISSUER_URL,
    OIDC_CLIENT_ID: parsed.data.OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET: parsed.data.OIDC_CLIENT_SECRET,
  };
  const missing = Object.entries(oidc).filter(([, value]) => value === undefined);
  if (missing.length > 0 && missing.length < 3) {
    throw new ServiceConfigError(
      missing.map(([variable]) => ({ variable, message: "single sign-on needs OIDC_ISSUER_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET together" })),
    );
  }
  if (parsed.data.SMTP_URL && !parsed.data.PUBLIC_URL) {
    // Mailed links must not be built from a request's Host header, which its sender chooses.
    throw new ServiceConfigError([
      { variable: "PUBLIC_URL", message: "is required with SMTP_URL: invitation mails carry links to the console's address" },
    ]);
  }
  return parsed.data;
}

export interface ResolvedKey {
  key: string;
  source: "environment" | "file" | "generated";
  path?: string;
}

/**
 * The credentials encryption key: CREDENTIALS_ENCRYPTION_KEY, else `<DATA_DIR>/credentials.key`,
 * generated (32 random bytes, base64, mode 600) on first use with a warning.
 */
export async function resolveCredentialsKey(
  config: Pick<ServiceConfig, "CREDENTIALS_ENCRYPTION_KEY" | "DATA_DIR">,
  warn: (message: string) => void = (message) => process.stderr.write(`${message}\n`),
): Promise<ResolvedKey> {
  if (config.CREDENTIALS_ENCRYPTION_KEY) return { key: config.CREDENTIALS_ENCRYPTION_KEY, source: "environment" };
  const path = isAbsolute(config.DATA_DIR) ? join(config.DATA_DIR, CREDENTIALS_KEY_FILE) : resolve(config.DATA_DIR, CREDENTIALS_KEY_FILE);
  try {
    const key = (await readFile(path, "utf8")).trim();
    parseEncryptionKey(key); // a corrupt key file fails loudly here, at start-up
    return { key, source: "file", path };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  // Traversable (the embedded PostgreSQL server, run as its own user, lives under DATA_DIR) but not listable; the key is 0600.
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  const key = randomBytes(32).toString("base64");
  // flag "wx": two processes starting together cannot both write a key; the loser reads the winner's.
  try {
    await writeFile(path, `${key}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return resolveCredentialsKey(config, warn);
    throw error;
  }
  await chmod(path, 0o600);
  warn(
    `warning: CREDENTIALS_ENCRYPTION_KEY is not set; generated a credentials encryption key in ${path} (mode 600). ` +
      `Back it up: credentials stored with it cannot be decrypted without it. In production set CREDENTIALS_ENCRYPTION_KEY (or use KMS).`,
  );
  return { key, source: "generated", path };
}

/** AWS's instance identity certificates plus those of AGENT_IDENTITY_CERTIFICATES_FILE; a bad file stops start-up. */
export async function loadIdentityTrust(config: Pick<ServiceConfig, "AGENT_IDENTITY_CERTIFICATES_FILE">): Promise<IdentityTrust> {
  const file = config.AGENT_IDENTITY_CERTIFICATES_FILE;
  if (!file) return awsIdentityTrust();
  const problem = (message: string) => new ServiceConfigError([{ variable: "AGENT_IDENTITY_CERTIFICATES_FILE", message }]);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw problem(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    return awsIdentityTrust(parseIdentityCertificates(JSON.parse(text), file));
  } catch (error) {
    throw problem(error instanceof SyntaxError ? `${file} is not JSON (${error.message})` : (error as Error).message);
  }
}
