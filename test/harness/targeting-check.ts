/**
 * Whether the associations and the access policy agree on an estate, decided by the IAM simulator: every instance an
 * association installs the agent on is one the platform may retry on (SendCommand), and no other. Tests only: the
 * simulator (@cloud-copilot/iam-simulate) is AGPL-3.0 and never part of what the service ships.
 */
import type { PolicyDocument } from "../../programs/tenant/policy-document";
import { associationInstalls, isGone, type AssociationModel, type EstateInstance } from "../../programs/tenant/targeting-fns";
import { isAllowed } from "./iam-simulation";

/**
 * Whether the access policy lets the platform run the agent document on an instance. AWS authorizes SendCommand against
 * the document and the instance; the document's answer is the same for every instance of a region, so it is asked once.
 */
export function sendCommandAllowed(
  policy: PolicyDocument,
  account: { accountId: string; documentName: string },
): (instance: Pick<EstateInstance, "instanceId" | "region" | "tags">) => Promise<boolean> {
  // The role holding the policy: identity policies decide alike for any principal of the account.
  const accessRole = { arn: `arn:aws:iam::${account.accountId}:role/MiniXdrAccess`, policies: [policy] };
  const onDocument = new Map<string, Promise<boolean>>();
  return async (instance) => {
    let document = onDocument.get(instance.region);
    if (!document) {
      document = isAllowed(accessRole, {
        action: "ssm:SendCommand",
        resources: [`arn:aws:ssm:${instance.region}:${account.accountId}:document/${account.documentName}`],
      });
      onDocument.set(instance.region, document);
    }
    const tagContext = Object.fromEntries(Object.entries(instance.tags).map(([key, value]) => [`ssm:resourceTag/${key}`, value]));
    const onInstance = isAllowed(accessRole, {
      action: "ssm:SendCommand",
      resources: [`arn:aws:ec2:${instance.region}:${account.accountId}:instance/${instance.instanceId}`],
      context: tagContext,
    });
    const [documentAllowed, instanceAllowed] = await Promise.all([document, onInstance]);
    return documentAllowed && instanceAllowed;
  };
}

export interface TargetingComparison {
  /** Managed, not terminated instances: the ones either side can act on. */
  considered: string[];
  /** The association installs the agent there. */
  installed: string[];
  /** The platform may re-run the document there (retry). */
  retryable: string[];
  installedButNotRetryable: string[];
  retryableButNotInstalled: string[];
  agree: boolean;
}

/**
 * Checks that the associations and the access policy agree: every instance an association installs the agent on
 * is one the platform may retry on, and no other. Unmanaged and terminated instances are left out (neither the
 * association nor SendCommand can reach them).
 */
export async function compareTargeting(
  instances: readonly EstateInstance[],
  deployed: { associations: readonly AssociationModel[]; policy: PolicyDocument; accountId: string; documentName: string },
): Promise<TargetingComparison> {
  const considered = instances.filter((instance) => instance.managed && !isGone(instance.state));
  const installed = new Set(
    considered.filter((instance) => deployed.associations.some((a) => associationInstalls(a, instance))).map((i) => i.instanceId),
  );
  const allowed = await Promise.all(considered.map(sendCommandAllowed(deployed.policy, deployed)));
  const retryable = new Set(considered.filter((_, index) => allowed[index]).map((i) => i.instanceId));
  const installedButNotRetryable = [...installed].filter((id) => !retryable.has(id));
  const retryableButNotInstalled = [...retryable].filter((id) => !installed.has(id));
  return {
    considered: considered.map((instance) => instance.instanceId),
    installed: [...installed],
    retryable: [...retryable],
    installedButNotRetryable,
    retryableButNotInstalled,
    agree: installedButNotRetryable.length === 0 && retryableButNotInstalled.length === 0,
  };
}
