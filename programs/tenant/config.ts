import { z } from "zod";

/** Keys of the tenant stack's configuration (namespace: the Pulumi project name). */
export const SECRET_CONFIG_KEYS = ["externalId", "enrollmentToken", "kubeconfig"] as const;

const awsRegion = z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, "must be an AWS region such as us-east-1");
const accountId = z.string().regex(/^\d{12}$/, "must be a 12-digit AWS account id");

export const tenantSlugSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,38}[a-z0-9]$/, "must be 3-40 lowercase letters, digits or dashes, starting with a letter");

export const roleArnSchema = z
  .string()
  .regex(/^arn:aws:iam::\d{12}:role\/[\w+=,.@\/-]{1,512}$/, "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)");

export const externalIdSchema = z
  .string()
  .regex(/^[\w+=,.@:\/-]{16,1224}$/, "must be 16-1224 characters of letters, digits and +=,.@:/-_");

export const principalArnSchema = z
  .string()
  .regex(
    /^arn:aws:iam::\d{12}:(root|role\/[\w+=,.@\/-]+|user\/[\w+=,.@\/-]+)$/,
    "must be an IAM principal ARN (account root, role or user)",
  );

/**
 * The characters an https URL may have here. The URL ends up inside single-quoted shell and PowerShell strings of
 * the agent install document, so quotes, spaces and other metacharacters are refused, not escaped.
 */
export const SAFE_HTTPS_URL = /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~\/-]*)?$/;

export const httpsUrlSchema = z
  .string()
  .url("must be a URL")
  .refine((value) => value.startsWith("https://"), "must be an https:// URL")
  .refine((value) => !value.startsWith("https://") || SAFE_HTTPS_URL.test(value), "must be an https URL of a host and a plain path (letters, digits, . _ ~ / -)")
  .transform((value) => value.replace(/\/+$/, ""));

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
export const SAFE_TAG_VALUE = /^[A-Za-z0-9+=.,_:@\/ -]{1,256}$/;

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
    homeRegion: awsRegion,
    regions: z.array(awsRegion).min(1, "must list at least one region").optional(),
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
    kubeconfig: z.string().min(1).optional(),
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
]);

export interface ConfigProblem {
  key: string;
  message: string;
}

export class TenantConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(
      `invalid tenant configuration:\n${problems.map((problem) => `  - ${problem.key}: ${problem.message}`).join("\n")}`,
    );
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
