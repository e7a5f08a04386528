/**
 * Checks a tenant's bootstrap role before it is stored: the service's own identity (default credential chain) must be
 * able to assume it with the tenant's external ID, AND must NOT be able to assume it with a wrong external ID or with
 * none. The second half is the confused-deputy check: a role whose trust policy lacks the `sts:ExternalId` condition
 * lets anyone who knows its ARN make the platform act in that account. Endpoints come from the standard environment
 * (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS).
 *
 * STS's own words (caller ARNs, request ids) never reach a tenant: a refusal is a neutral reason and a code; the
 * detail goes to the server log.
 */
import { randomBytes } from "node:crypto";

export interface BootstrapRoleCheck {
  roleArn: string;
  /** Undefined: AssumeRole without an external ID. */
  externalId: string | undefined;
  region: string;
  sessionName: string;
}

/** One AssumeRole: granted, or refused (`denied`: STS said AccessDenied; otherwise it failed for another reason). */
export type RoleAssumption = { assumed: true } | { assumed: false; denied: boolean; detail: string };

export type BootstrapRoleVerifier = (check: BootstrapRoleCheck) => Promise<RoleAssumption>;

export const verifyBootstrapRoleWithSts: BootstrapRoleVerifier = async (check) => {
  const { AssumeRoleCommand, STSClient } = await import("@aws-sdk/client-sts");
  const sts = new STSClient({ region: check.region, maxAttempts: 2 });
  try {
    const assumed = await sts.send(
      new AssumeRoleCommand({
        RoleArn: check.roleArn,
        ...(check.externalId === undefined ? {} : { ExternalId: check.externalId }),
        RoleSessionName: check.sessionName,
        DurationSeconds: 900,
      }),
    );
    return assumed.Credentials?.AccessKeyId ? { assumed: true } : { assumed: false, denied: false, detail: "STS returned no credentials" };
  } catch (error) {
    const name = (error as { name?: string }).name;
    return {
      assumed: false,
      denied: name === "AccessDenied" || name === "AccessDeniedException",
      detail: `${name ? `${name}: ` : ""}${error instanceof Error ? error.message : String(error)}`,
    };
  } finally {
    sts.destroy();
  }
};

export type BootstrapRoleVerdict =
  | { ok: true }
  | {
      ok: false;
      /** credentials_rejected: not assumable with the external ID; external_id_not_required: assumable without it;
       * sts_unavailable: STS failed otherwise, nothing could be concluded. */
      code: "credentials_rejected" | "external_id_not_required" | "sts_unavailable";
      /** Neutral, for the tenant. */
      reason: string;
      /** STS's words, for the server log only. */
      detail: string;
    };

export const ROLE_REFUSALS = {
  credentials_rejected:
    "the role could not be assumed with the tenant's external ID: it does not exist (yet), or its trust policy does not let the platform in with this external ID",
  external_id_not_required: "the role's trust policy does not require the external ID",
  sts_unavailable: "AWS STS could not check the role just now; try again",
} as const;

/** True for the service's own neutral reasons (stored as a bootstrap wait's last error), which are shown as they are. */
export const isRoleRefusalReason = (text: string): boolean => (Object.values(ROLE_REFUSALS) as string[]).includes(text);

const refusal = (code: keyof typeof ROLE_REFUSALS, detail: string): BootstrapRoleVerdict => ({
  ok: false,
  code,
  reason: ROLE_REFUSALS[code],
  detail,
});

/**
 * The role is acceptable when AssumeRole succeeds with the external ID and is DENIED with a wrong one and with none.
 * A probe that fails for another reason (throttling, STS unreachable) proves nothing, and the role is not accepted.
 */
export async function probeBootstrapRole(
  verify: BootstrapRoleVerifier,
  check: BootstrapRoleCheck & { externalId: string },
): Promise<BootstrapRoleVerdict> {
  const right = await verify(check);
  if (!right.assumed) return refusal(right.denied ? "credentials_rejected" : "sts_unavailable", right.detail);
  const wrongId = `mxdr-probe_${randomBytes(24).toString("base64url")}`;
  for (const externalId of [wrongId, undefined]) {
    const wrong = await verify({ ...check, externalId });
    if (wrong.assumed) {
      return refusal(
        "external_id_not_required",
        `AssumeRole succeeded ${externalId === undefined ? "without an external ID" : "with a wrong external ID"}`,
      );
    }
    if (!wrong.denied) return refusal("sts_unavailable", wrong.detail);
  }
  return { ok: true };
}
