/**
 * Checks a tenant's bootstrap role before it is stored: the service's own identity (default credential chain) must be
 * able to assume it with the external ID. Endpoints come from the standard environment (AWS_ENDPOINT_URL).
 */

export interface BootstrapRoleCheck {
  roleArn: string;
  externalId: string;
  region: string;
  sessionName: string;
}

/** Resolves to undefined when the role can be assumed, else to the reason it cannot. */
export type BootstrapRoleVerifier = (check: BootstrapRoleCheck) => Promise<string | undefined>;

export const verifyBootstrapRoleWithSts: BootstrapRoleVerifier = async (check) => {
  const { AssumeRoleCommand, STSClient } = await import("@aws-sdk/client-sts");
  const sts = new STSClient({ region: check.region, maxAttempts: 2 });
  try {
    const assumed = await sts.send(
      new AssumeRoleCommand({
        RoleArn: check.roleArn,
        ExternalId: check.externalId,
        RoleSessionName: check.sessionName,
        DurationSeconds: 900,
      }),
    );
    return assumed.Credentials?.AccessKeyId ? undefined : "STS returned no credentials";
  } catch (error) {
    const name = (error as { name?: string }).name;
    return `${name ? `${name}: ` : ""}${error instanceof Error ? error.message : String(error)}`;
  } finally {
    sts.destroy();
  }
};
