import { z } from "zod";
import { AWS_REGIONS, isAwsRegion } from "../../lib/aws-regions";

/** Keys of the tenant stack's configuration (namespace: the Pulumi project name). */
export const SECRET_CONFIG_KEYS = ["externalId", "enrollmentToken"] as const;

/** At most this much of a refused value is echoed back in a message. */
const quoted = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);

/** A region code of lib/aws-regions.ts (the one list). */
export const awsRegionSchema = z
  .string()
  .refine((value): boolean => isAwsRegion(value), {
    error: (issue) => `must be an AWS region code such as us-east-1; ${quoted(String(issue.input))} is not one`,
  })
  // The OpenAPI document states the list (the refine's message is the more useful one).
  .meta({ enum: [...AWS_REGIONS] });

/** A tenant's regions: known, each once. */
export const awsRegionListSchema = z
  .array(awsRegionSchema)
  .min(1, "must list at least one region")
  .max(AWS_REGIONS.length, `must list at most ${AWS_REGIONS.length} regions`)
  .superRefine((regions, ctx) => {
    const repeated = regions.filter((region, index) => regions.indexOf(region) !== index);
    if (repeated.length > 0) {
      ctx.addIssue({ code: "custom", message: `must list each region once; repeats ${[...new Set(repeated)].map(quoted).join(", ")}` });
    }
  })
  .meta({ uniqueItems: true });

const accountId = z.string().regex(/^[0-9]{12}$/, "must be a 12-digit AWS account id");

/**
 * Slugs that read as something else in a URL, a log line or a client's code (`/v1/tenants/new`, a slug `null` from a
 * serialised missing value): refused even though they are valid DNS labels.
 */
export const RESERVED_TENANT_SLUGS: ReadonlySet<string> = new Set([
  "null",
  "undefined",
  "nil",
  "none",
  "true",
  "false",
  "nan",
  "admin",
  "api",
  "new",
  "root",
  "system",
  "default",
  "self",
  "all",
  "www",
  "docs",
  "openapi",
  "healthz",
]);

/** A DNS label (3-40 lowercase letters, digits, dashes; a letter first, no dash last), not a reserved word. */
export const tenantSlugSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,38}[a-z0-9]$/, "must be 3-40 lowercase letters, digits or dashes, starting with a letter")
  .refine((slug) => !RESERVED_TENANT_SLUGS.has(slug), { error: (issue) => `${quoted(String(issue.input))} is a reserved word; choose another slug` })
  .meta({ not: { enum: [...RESERVED_TENANT_SLUGS] } });

export const roleArnSchema = z
  .string()
  .regex(/^arn:aws:iam::[0-9]{12}:role\/[A-Za-z0-9_+=,.@/-]{1,512}$/, "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)");

export const externalIdSchema = z.string().regex(/^[A-Za-z0-9_+=,.@:/-]{16,1224}$/, "must be 16-1224 characters of letters, digits and +=,.@:/-_");

export const principalArnSchema = z
  .string()
  .regex(
    /^arn:aws:iam::[0-9]{12}:(root|role\/[A-Za-z0-9_+=,.@/-]+|user\/[A-Za-z0-9_+=,.@/-]+)$/,
    "must be an IAM principal ARN (account root, role or user)",
  );

/**
 * The characters an https URL may have here. The URL ends up inside single-quoted shell and PowerShell strings of
 * the agent install document, so quotes, spaces and other metacharacters are refused, not escaped.
 */
export const SAFE_HTTPS_URL = /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~/-]*)?$/;

/**
 * The whole rule as one regular expression, for the OpenAPI document: an https URL in normal form of a lowercase
 * host name whose last label starts with a letter (a numeric last label would be read as an IPv4 address) or of a
 * dotted-quad IPv4 address, a port other than 443 without leading zeros, and path segments of the safe characters
 * that are neither . nor .. (no empty segment, no trailing slash). Every URL it matches passes the checks of
 * httpsUrlProblem, which also refuses any URL it does not match: the document and the server agree.
 */
const LABEL = "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?";
const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const PORT =
  "(?:[1-9]|[1-9][0-9]|[1-35-9][0-9][0-9]|4[0-35-9][0-9]|44[0-24-9]|[1-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
const SEGMENT = "(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\\.\\.[A-Za-z0-9._~-]+)";
export const NORMAL_HTTPS_URL = new RegExp(
  `^https://(?:(?:${LABEL}\\.)*[a-z](?:[a-z0-9-]*[a-z0-9])?|(?:${OCTET}\\.){3}${OCTET})(?::${PORT})?(?:/${SEGMENT})*$`,
);

/**
 * A webhook receiver's URL, as the OpenAPI document states it and the API checks it first: https to a host name or
 * an IPv4 address (http only to loopback, which the service refuses unless WEBHOOK_ALLOW_HTTP_LOOPBACK is set: a
 * setting, so a 422), an optional port, path and query of URL characters; no user info, no fragment.
 */
const URL_CHARS = "[A-Za-z0-9._~!$&'()*+,;=:@%-]";
export const WEBHOOK_URL = new RegExp(
  `^(?:https://(?:(?:${LABEL.replace(/a-z/g, "A-Za-z")}\\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?|(?:${OCTET}\\.){3}${OCTET})|http://(?:127\\.0\\.0\\.1|localhost|\\[::1\\]))` +
    `(?::${PORT})?(?:/${URL_CHARS}*)*(?:\\?(?:${URL_CHARS}|[/?])*)?$`,
);

/** Why `value` is not an acceptable https base URL (the first, most useful reason), or undefined when it is. */
export function httpsUrlProblem(value: string): string | undefined {
  if (!/^https:\/\//i.test(value))
    return /^[a-z][a-z0-9+.-]*:/i.test(value) ? "must be an https:// URL" : "must be an absolute https:// URL such as https://agents.example.com";
  if (/^https:\/\/([/?#]|$)/i.test(value)) return "must name a host, such as https://agents.example.com";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be an https:// URL with a host, such as https://agents.example.com";
  }
  if (url.username || url.password || /^https:\/\/[^/]*@/i.test(value)) return "must not contain a user name or password";
  if (/[?#]/.test(value)) return "must not have a query or fragment";
  const rawPath = value.replace(/^https:\/\/[^/]*/i, "");
  if (rawPath.split("/").some((segment) => /^(\.|%2e){1,2}$/i.test(segment))) return "must not contain . or .. path segments";
  if (!SAFE_HTTPS_URL.test(value)) return "must be an https URL of a host and a plain path (letters, digits, . _ ~ / -)";
  const normal = normalHttpsUrl(url);
  if (normal !== value) return `must be written in its normal form ${JSON.stringify(normal)} (lowercase host, no default port, no trailing slash)`;
  if (!NORMAL_HTTPS_URL.test(value)) {
    return "must be https://<host name or IPv4 address>[:port][/path], the host's last label starting with a letter, no empty path segment";
  }
  return undefined;
}

/** The one spelling of an https base URL: lowercase host, no :443, no trailing slash. */
function normalHttpsUrl(url: URL): string {
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
}

/**
 * An https base URL: a host, no user name or password, no . or .. segments, no query or fragment, only characters
 * that are safe inside the install document's quoted strings (SAFE_HTTPS_URL), in its normal form. A URL that is not
 * in normal form is refused with the form to send, never rewritten: what is stored is exactly what was sent.
 */
export const httpsUrlSchema = z
  .string()
  .superRefine((value, ctx) => {
    const problem = httpsUrlProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .meta({ pattern: NORMAL_HTTPS_URL.source });

const tagSchema = z.object({
  key: z.string().min(1).max(128),
  value: z.string().max(256),
});

/**
 * The exclusion tag is read on the instance from instance metadata (IMDS) by the install document's steps, where it
 * lands inside single-quoted shell and PowerShell strings: the key is limited to the characters IMDS allows in tag
 * keys, the value to a set without quotes.
 */
export const IMDS_TAG_KEY = /^[A-Za-z0-9+=.,_:@-]{1,128}$/;
export const SAFE_TAG_VALUE = /^[A-Za-z0-9+=.,_:@/ -]{1,256}$/;

export const exclusionTagSchema = z.object({
  key: z.string().regex(IMDS_TAG_KEY, "must be 1-128 letters, digits or + - = . , _ : @ (a tag key instance metadata can serve)"),
  value: z.string().regex(SAFE_TAG_VALUE, "must be 1-256 letters, digits, spaces or + - = . , _ : @ /"),
});

/** SSM's own patterns for an association's MaxConcurrency and MaxErrors. */
export const maxConcurrencySchema = z
  .string()
  .regex(/^([1-9][0-9]{0,5}|[1-9][0-9]?%|100%)$/, "must be a number of instances (1, 2, ...) or a percentage (1%-100%)");
export const maxErrorsSchema = z
  .string()
  .regex(/^([0-9]|[1-9][0-9]{1,5}|[0-9]%|[1-9][0-9]%|100%)$/, "must be a number of errors (0, 1, ...) or a percentage (0%-100%)");

/** Per account: at most this many EKS clusters get the agent (a count a tenant controls, so capped). */
export const MAX_CLUSTERS_PER_ACCOUNT = 50;

/**
 * An EKS cluster the stack grants itself access to and deploys the agent DaemonSet on: discovery's DescribeCluster
 * answer. The endpoint and the CA are what AWS answered for the cluster (public data); the service picks the
 * clusters in scope (services/core/cluster-scope-fns.ts).
 */
export const eksClusterSchema = z.object({
  name: z.string().regex(/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/, "must be an EKS cluster name (1-100 letters, digits, - and _)"),
  region: awsRegionSchema,
  endpoint: z.string().regex(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/, "must be the cluster's https API server endpoint, without a path"),
  certificateAuthority: z
    .string()
    .max(16_384, "must be at most 16384 characters")
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, "must be the base64 certificate authority data DescribeCluster answers"),
});

export type EksCluster = z.infer<typeof eksClusterSchema>;

export const TARGETING_MODES = ["all_managed", "tag"] as const;
export const DEFAULT_TARGET_TAG = { key: "xdr:monitor", value: "true" } as const;
export const DEFAULT_EXCLUSION_TAG = { key: "xdr:monitor", value: "false" } as const;
export const DEFAULT_MAX_CONCURRENCY = "10%";
export const DEFAULT_MAX_ERRORS = "10%";

export const tenantConfigSchema = z
  .object({
    tenantSlug: tenantSlugSchema,
    tenantId: z.string().min(1, "is required"),
    customerAccountId: accountId,
    homeRegion: awsRegionSchema,
    regions: awsRegionListSchema.optional(),
    bootstrapRoleArn: roleArnSchema,
    externalId: externalIdSchema,
    platformPrincipalArn: principalArnSchema,
    agentPublicBaseUrl: httpsUrlSchema,
    agentVersion: z.string().regex(/^\d+\.\d+\.\d+([-+][\w.]+)?$/, "must be a semantic version such as 1.4.2"),
    enrollmentToken: z.string().min(32, "must be at least 32 characters"),
    /** `all_managed` (default): every SSM-managed instance but those with the exclusion tag; `tag`: only those with targetTag. */
    targetingMode: z.enum(TARGETING_MODES, { message: "must be all_managed or tag" }).optional(),
    /** The opt-in tag of `tag` mode. */
    targetTag: tagSchema.optional(),
    /** Instances carrying it are left alone in `all_managed` mode. */
    exclusionTag: exclusionTagSchema.default({ ...DEFAULT_EXCLUSION_TAG }),
    /** Before targetingMode: true meant all_managed, false (the old default) meant tag. Still read; targetingMode wins. */
    targetAllManagedInstances: z.boolean().optional(),
    associationMaxConcurrency: maxConcurrencySchema.default(DEFAULT_MAX_CONCURRENCY),
    associationMaxErrors: maxErrorsSchema.default(DEFAULT_MAX_ERRORS),
    /** Turn on SSM's Default Host Management Configuration in every region (a role for it, created once). */
    enableDefaultHostManagement: z.boolean().default(false),
    associationSchedule: z
      .string()
      .regex(/^(rate\(\d+ (minutes|hours|days)\)|cron\(.+\))$/, "must be rate(...) or cron(...)")
      .default("rate(30 minutes)"),
    maxSessionDurationSeconds: z.number().int().min(3600).max(43200).default(3600),
    agentImage: z.string().min(1).default("ghcr.io/mini-xdr/agent"),
    /** The EKS clusters in scope: each gets an access entry for the access role and the agent DaemonSet. */
    clusters: z.array(eksClusterSchema).max(MAX_CLUSTERS_PER_ACCOUNT, `must list at most ${MAX_CLUSTERS_PER_ACCOUNT} clusters`).default([]),
  })
  .superRefine((config, ctx) => {
    const bootstrapAccount = config.bootstrapRoleArn.split(":")[4];
    if (bootstrapAccount !== config.customerAccountId) {
      ctx.addIssue({
        code: "custom",
        path: ["bootstrapRoleArn"],
        message: `must belong to the customer account ${config.customerAccountId}`,
      });
    }
    if (config.regions && !config.regions.includes(config.homeRegion)) {
      ctx.addIssue({ code: "custom", path: ["regions"], message: "must include the home region" });
    }
    if (config.regions && new Set(config.regions).size !== config.regions.length) {
      ctx.addIssue({ code: "custom", path: ["regions"], message: "must not list a region twice" });
    }
    const regions = config.regions ?? [config.homeRegion];
    const seen = new Set<string>();
    config.clusters.forEach((cluster, index) => {
      if (!regions.includes(cluster.region)) {
        ctx.addIssue({ code: "custom", path: ["clusters", index, "region"], message: `must be one of the tenant's regions (${regions.join(", ")})` });
      }
      const key = `${cluster.region}/${cluster.name}`;
      if (seen.has(key)) ctx.addIssue({ code: "custom", path: ["clusters", index, "name"], message: `lists ${key} twice` });
      seen.add(key);
    });
    if (
      config.targetingMode !== undefined &&
      config.targetAllManagedInstances !== undefined &&
      (config.targetingMode === "all_managed") !== config.targetAllManagedInstances
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["targetAllManagedInstances"],
        message: `conflicts with targetingMode ${config.targetingMode} (targetAllManagedInstances is the old spelling: drop it)`,
      });
    }
  })
  .transform((config) => {
    const targetTag = config.targetTag ?? { ...DEFAULT_TARGET_TAG };
    const targeting: Targeting = {
      mode: resolveTargetingMode(config),
      targetTag,
      exclusionTag: config.exclusionTag,
    };
    return { ...config, regions: config.regions ?? [config.homeRegion], targetTag, targeting };
  });

/**
 * The targeting mode of a config. Old stack configs have no targetingMode: targetAllManagedInstances true means
 * all_managed; false, or a targetTag alone (the old default mode was the tag), means tag; nothing means all_managed.
 */
export function resolveTargetingMode(config: {
  targetingMode?: TargetingMode;
  targetAllManagedInstances?: boolean;
  targetTag?: unknown;
}): TargetingMode {
  if (config.targetingMode) return config.targetingMode;
  if (config.targetAllManagedInstances === true) return "all_managed";
  if (config.targetAllManagedInstances === false || config.targetTag !== undefined) return "tag";
  return "all_managed";
}

export type TargetingMode = (typeof TARGETING_MODES)[number];

export interface Tag {
  key: string;
  value: string;
}

/** Which instances the agent association covers (exclusionTag applies in all_managed mode only). */
export interface Targeting {
  mode: TargetingMode;
  targetTag: Tag;
  exclusionTag: Tag;
}

export type TenantConfigInput = z.input<typeof tenantConfigSchema>;
export type TenantConfig = z.output<typeof tenantConfigSchema>;

export const TENANT_CONFIG_KEYS = Object.keys(tenantConfigSchema.in.shape) as (keyof TenantConfigInput)[];

/** Keys whose values are JSON in the stack config (objects, arrays, numbers, booleans). */
export const STRUCTURED_CONFIG_KEYS: ReadonlySet<string> = new Set([
  "regions",
  "targetTag",
  "exclusionTag",
  "targetAllManagedInstances",
  "maxSessionDurationSeconds",
  "enableDefaultHostManagement",
  "clusters",
]);

export interface ConfigProblem {
  key: string;
  message: string;
}

export class TenantConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(`invalid tenant configuration:\n${problems.map((problem) => `  - ${problem.key}: ${problem.message}`).join("\n")}`);
    this.name = "TenantConfigError";
  }
}

/** Validates raw stack config values (strings, as Pulumi stores them) and reports every bad key at once. */
export function parseTenantConfig(raw: Readonly<Record<string, string | undefined>>): TenantConfig {
  const problems: ConfigProblem[] = [];
  const candidate: Record<string, unknown> = {};
  for (const key of TENANT_CONFIG_KEYS) {
    const value = raw[key];
    if (value === undefined || value === "") continue;
    if (!STRUCTURED_CONFIG_KEYS.has(key)) {
      candidate[key] = value;
      continue;
    }
    try {
      candidate[key] = JSON.parse(value);
    } catch {
      problems.push({ key, message: "must be valid JSON" });
    }
  }
  const parsed = tenantConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = issue.path.length > 0 ? issue.path.join(".") : "(config)";
      // zod 4 leaves the input out of issues: a missing key is one the candidate does not have.
      const missing = issue.code === "invalid_type" && issue.path.length === 1 && candidate[String(issue.path[0])] === undefined;
      const message = missing ? "is required" : issue.code === "invalid_type" ? `must be a ${issue.expected}` : issue.message;
      problems.push({ key, message });
    }
  }
  if (problems.length > 0 || !parsed.success) throw new TenantConfigError(problems);
  return parsed.data;
}

/** The stack config entries for a tenant: what the automation layer writes and the program reads back. */
export function toStackConfigEntries(config: TenantConfigInput): { key: string; value: string; secret: boolean }[] {
  const entries: { key: string; value: string; secret: boolean }[] = [];
  for (const key of TENANT_CONFIG_KEYS) {
    const value = config[key];
    if (value === undefined) continue;
    entries.push({
      key,
      value: typeof value === "string" ? value : JSON.stringify(value),
      secret: (SECRET_CONFIG_KEYS as readonly string[]).includes(key),
    });
  }
  return entries;
}
