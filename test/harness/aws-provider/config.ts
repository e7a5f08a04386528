/**
 * Provider configuration and AWS clients, the way the real `pulumi-resource-aws` does it:
 * region from config (or AWS_REGION), base credentials from the standard chain (AWS_ACCESS_KEY_ID, ...),
 * or from `accessKey`/`secretKey`/`token` config, then the `assumeRoles` chain through STS AssumeRole; the
 * endpoint comes from the standard AWS_ENDPOINT_URL variable, which AWS SDK v3 honours by itself.
 *
 * How configuration arrives (checked against engine v3.259.0 and @pulumi/aws 7.48.0):
 * - `@pulumi/aws`'s Provider resource JSON-encodes every non-string input (`assumeRoles`, `allowedAccountIds`,
 *   `skipCredentialsValidation`, ...), so the inputs are strings holding JSON.
 * - ConfigureRequest.variables maps `aws:config:<key>` to those strings with secrets removed;
 *   ConfigureRequest.args holds the same inputs with secret markers. `assumeRoles` is a secret when any part of it
 *   (e.g. the external id) is, because the whole array is stringified inside an apply.
 * - `@pulumi/pulumi/provider`'s server ignores the request (it only answers accept-secrets/resources), so
 *   main.ts intercepts Configure and hands it to `configure()` here.
 */
import { EKSClient } from "@aws-sdk/client-eks";
import { IAMClient } from "@aws-sdk/client-iam";
import { SSMClient } from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@aws-sdk/types";
import { isObject, reveal, type Props } from "./values";

export interface AssumeRoleConfig {
  roleArn?: string;
  externalId?: string;
  sessionName?: string;
  duration?: string;
  policy?: string;
  policyArns?: string[];
  sourceIdentity?: string;
  tags?: Record<string, string>;
  transitiveTagKeys?: string[];
}

export interface ProviderConfig {
  region: string;
  assumeRoles: AssumeRoleConfig[];
  allowedAccountIds?: string[];
  forbiddenAccountIds?: string[];
  accessKey?: string;
  secretKey?: string;
  token?: string;
  skipCredentialsValidation: boolean;
  defaultTags?: Record<string, string>;
}

export interface AwsContext {
  config: ProviderConfig;
  /** Account the (possibly assumed) credentials belong to. */
  accountId: string;
  region(override?: unknown): string;
  iam(region?: string): IAMClient;
  ssm(region?: string): SSMClient;
  eks(region?: string): EKSClient;
}

/** Reads the configuration out of a ConfigureRequest's `variables` (plain strings) and `args` (typed, with secrets). */
export function parseConfig(variables: Map<string, string> | Record<string, string>, args: Props): ProviderConfig {
  const vars = variables instanceof Map ? Object.fromEntries(variables) : variables;
  const raw = (key: string): unknown => {
    const fromVars = vars[`aws:config:${key}`];
    if (fromVars !== undefined) return fromVars;
    return reveal(args[key]);
  };
  const json = <T>(key: string): T | undefined => {
    const value = raw(key);
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string") return value as T;
    try {
      return JSON.parse(value) as T;
    } catch {
      return value as unknown as T;
    }
  };
  const str = (key: string): string | undefined => {
    const value = raw(key);
    return typeof value === "string" && value !== "" ? value : undefined;
  };

  const region = str("region") ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new Error("The AWS provider needs a region: set `region` on the provider or AWS_REGION.");

  const assumeRoles = json<unknown>("assumeRoles");
  const assumeRole = json<unknown>("assumeRole"); // older single-block spelling, still accepted
  const chain = [
    ...(Array.isArray(assumeRoles) ? assumeRoles : assumeRoles ? [assumeRoles] : []),
    ...(isObject(assumeRole) ? [assumeRole] : []),
  ].filter(isObject) as AssumeRoleConfig[];

  return {
    region,
    assumeRoles: chain.filter((r) => r.roleArn),
    allowedAccountIds: json<string[]>("allowedAccountIds"),
    forbiddenAccountIds: json<string[]>("forbiddenAccountIds"),
    accessKey: str("accessKey"),
    secretKey: str("secretKey"),
    token: str("token"),
    skipCredentialsValidation: json<boolean>("skipCredentialsValidation") === true,
    defaultTags: json<{ tags?: Record<string, string> }>("defaultTags")?.tags,
  };
}

/** Builds the clients; assumes the role chain and checks the account the way the real provider does at Configure. */
export async function connect(config: ProviderConfig): Promise<AwsContext> {
  let credentials: AwsCredentialIdentityProvider | AwsCredentialIdentity | undefined =
    config.accessKey && config.secretKey
      ? { accessKeyId: config.accessKey, secretAccessKey: config.secretKey, sessionToken: config.token }
      : undefined; // undefined: the SDK's default chain (environment first)

  for (const role of config.assumeRoles) credentials = assumeRoleProvider(config.region, credentials, role);

  const sts = new STSClient({ region: config.region, credentials });
  // The real provider asks STS for the account id at Configure (unless skipRequestingAccountId); so do we: it also
  // validates the credentials and runs the assume-role chain once, so a bad role ARN fails at Configure.
  let accountId = "";
  try {
    accountId = (await sts.send(new GetCallerIdentityCommand({}))).Account ?? "";
  } catch (error) {
    throw new Error(
      error instanceof Error && error.message.startsWith("configuring the AWS provider")
        ? error.message
        : `configuring the AWS provider: validating credentials: ${awsMessage(error)}`,
    );
  }
  if (config.allowedAccountIds?.length && !config.allowedAccountIds.includes(accountId)) {
    throw new Error(`AWS account ID not allowed: ${accountId} (allowed: ${config.allowedAccountIds.join(", ")})`);
  }
  if (config.forbiddenAccountIds?.includes(accountId)) {
    throw new Error(`AWS account ID not allowed: ${accountId} (forbidden)`);
  }

  const clients = new Map<string, IAMClient | SSMClient | EKSClient>();
  const client = <T extends IAMClient | SSMClient | EKSClient>(kind: string, region: string, make: () => T): T => {
    const key = `${kind}:${region}`;
    if (!clients.has(key)) clients.set(key, make());
    return clients.get(key) as T;
  };
  const regionOf = (override?: unknown) => (typeof override === "string" && override ? override : config.region);
  return {
    config,
    accountId,
    region: regionOf,
    // IAM is global; the signing region does not matter to moto or AWS.
    iam: (region) => client("iam", regionOf(region), () => new IAMClient({ region: regionOf(region), credentials })),
    ssm: (region) => client("ssm", regionOf(region), () => new SSMClient({ region: regionOf(region), credentials })),
    eks: (region) => client("eks", regionOf(region), () => new EKSClient({ region: regionOf(region), credentials })),
  };
}

function assumeRoleProvider(
  region: string,
  base: AwsCredentialIdentityProvider | AwsCredentialIdentity | undefined,
  role: AssumeRoleConfig,
): AwsCredentialIdentityProvider {
  const sts = new STSClient({ region, credentials: base });
  let cached: AwsCredentialIdentity | undefined;
  return async () => {
    if (cached?.expiration && cached.expiration.getTime() - Date.now() > 5 * 60_000) return cached;
    try {
      const response = await sts.send(
        new AssumeRoleCommand({
          RoleArn: role.roleArn,
          RoleSessionName: role.sessionName || `pulumi-${Date.now()}`,
          ExternalId: role.externalId || undefined,
          DurationSeconds: parseDuration(role.duration),
          Policy: role.policy || undefined,
          PolicyArns: role.policyArns?.map((arn) => ({ arn })),
          SourceIdentity: role.sourceIdentity || undefined,
          Tags: role.tags ? Object.entries(role.tags).map(([Key, Value]) => ({ Key, Value })) : undefined,
          TransitiveTagKeys: role.transitiveTagKeys,
        }),
      );
      const c = response.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error("STS AssumeRole returned no credentials");
      cached = {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        sessionToken: c.SessionToken,
        expiration: c.Expiration,
      };
      return cached;
    } catch (error) {
      throw new Error(`configuring the AWS provider: assuming IAM Role (${role.roleArn}): ${awsMessage(error)}`);
    }
  };
}

/** `"1h"`, `"15m"`, `"3600s"` → seconds (the provider's duration syntax). */
function parseDuration(duration: string | undefined): number | undefined {
  if (!duration) return undefined;
  let seconds = 0;
  for (const [, amount, unit] of duration.matchAll(/(\d+)([hms])/g)) {
    seconds += Number(amount) * (unit === "h" ? 3600 : unit === "m" ? 60 : 1);
  }
  return seconds || undefined;
}

/** `<Code>: <message>` of an AWS SDK error, e.g. `EntityAlreadyExists: Role with name x already exists.` */
export function awsMessage(error: unknown): string {
  if (error instanceof Error) {
    const e = error as Error & { Code?: string; $metadata?: { httpStatusCode?: number } };
    const code = (e.Code ?? e.name ?? "Error").replace(/Exception$/, "");
    const status = e.$metadata?.httpStatusCode ? `StatusCode: ${e.$metadata.httpStatusCode}, ` : "";
    return `${status}${code}: ${e.message}`;
  }
  return String(error);
}

export function errorCode(error: unknown): string {
  const e = error as { Code?: string; name?: string } | undefined;
  return e?.Code ?? e?.name ?? "";
}
