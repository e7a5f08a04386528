/**
 * Tenant credentials: the XDR role in the customer's account, assumed with STS and the tenant's
 * external ID, in short sessions that are cached and refreshed before they expire.
 *
 * `assumeRoleCredentials()` returns a provider function the AWS SDK accepts as `credentials`, so
 * every client of a tenant signs with that tenant's session, never with the service's own
 * identity (the service's identity is only used to call sts:AssumeRole). Concurrent callers share
 * one in-flight AssumeRole call. Endpoints come from the standard environment (the SDK honours
 * AWS_ENDPOINT_URL); an explicit `stsEndpoint` overrides it.
 */
import type { AssumeRoleCommandOutput, STSClient } from "@aws-sdk/client-sts";

/** Structurally the SDK's AwsCredentialIdentity. */
export interface TenantCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export type CredentialsProvider = () => Promise<TenantCredentials>;

/** STS's minimum session length, and what we ask for: a stolen session is short-lived. */
export const DEFAULT_SESSION_SECONDS = 900;
/** Refresh this long before the session expires, so no request is signed with a dying session. */
export const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;

export interface AssumeRoleOptions {
  roleArn: string;
  externalId: string;
  /** Shows up in the customer's CloudTrail; name the tenant. Default `mini-xdr-discovery`. */
  sessionName?: string;
  durationSeconds?: number;
  refreshMarginMs?: number;
  /** Region of the STS client (the tenant's home region). Default us-east-1. */
  region?: string;
  /** STS endpoint override (config at the edge); default from the environment. */
  stsEndpoint?: string;
  /** An STS client to use instead of creating one (tests, shared pools). */
  stsClient?: Pick<STSClient, "send">;
  /** Clock, for tests. */
  now?: () => number;
}

export class AssumeRoleError extends Error {
  override readonly name = "AssumeRoleError";
  constructor(
    message: string,
    readonly roleArn: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The role session name: [\w+=,.@-]{2,64}. */
export function sessionNameFor(tenant: string): string {
  const cleaned = `mini-xdr-${tenant}`.replace(/[^\w+=,.@-]/g, "-");
  return cleaned.slice(0, 64);
}

export function assumeRoleCredentials(options: AssumeRoleOptions): CredentialsProvider {
  const durationSeconds = options.durationSeconds ?? DEFAULT_SESSION_SECONDS;
  const margin = Math.min(options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS, (durationSeconds * 1000) / 2);
  const now = options.now ?? Date.now;
  // The STS SDK is loaded with the first assumption, not at start-up.
  let sts = options.stsClient;

  let cached: TenantCredentials | undefined;
  let inFlight: Promise<TenantCredentials> | undefined;

  const fresh = (credentials: TenantCredentials | undefined): credentials is TenantCredentials =>
    credentials !== undefined && (credentials.expiration === undefined || credentials.expiration.getTime() - margin > now());

  const assume = async (): Promise<TenantCredentials> => {
    let response: AssumeRoleCommandOutput;
    const { AssumeRoleCommand, STSClient } = await import("@aws-sdk/client-sts");
    sts ??= new STSClient({
      region: options.region ?? "us-east-1",
      ...(options.stsEndpoint ? { endpoint: options.stsEndpoint } : {}),
    });
    try {
      response = await sts.send(
        new AssumeRoleCommand({
          RoleArn: options.roleArn,
          ExternalId: options.externalId,
          RoleSessionName: options.sessionName ?? "mini-xdr-discovery",
          DurationSeconds: durationSeconds,
        }),
      );
    } catch (error) {
      throw new AssumeRoleError(`could not assume ${options.roleArn}: ${error instanceof Error ? error.message : String(error)}`, options.roleArn, {
        cause: error,
      });
    }
    const c = response.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) {
      throw new AssumeRoleError(`STS returned no credentials for ${options.roleArn}`, options.roleArn);
    }
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: c.Expiration ?? new Date(now() + durationSeconds * 1000),
    };
  };

  return async () => {
    if (fresh(cached)) return cached;
    inFlight ??= assume().finally(() => {
      inFlight = undefined;
    });
    cached = await inFlight;
    return cached;
  };
}
