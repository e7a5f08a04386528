/**
 * POST /v1/tenants/{slug}/permissions/check: each read-only call the platform makes in the tenant's account, tried
 * once per region the applied stack covers, with the tenant's own session (the XDR access role). One check per tenant
 * at a time (409 otherwise): it is at most four calls per region.
 */
import type { CredentialsProvider } from "../core/assume-role";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import type { Organization } from "../../db/schema";
import { mapBounded } from "../../lib/concurrency";
import { ConflictError } from "../../lib/errors";
import { accessDeniedDetail, upstreamFailureOf } from "../../lib/upstream-errors";
import { type Principal, requireTenantAdmin } from "../core/principal";
import { openTenantSession } from "../core/tenant-aws-session";
import { recordPermissionObservation } from "../core/permission-findings";
import {
  CHECKED_ACTIONS,
  permissionCell,
  regionPermissions,
  type CallOutcome,
  type CheckedAction,
  type RegionPermissions,
} from "./permission-check-fns";

type Call = (credentials: CredentialsProvider, region: string) => Promise<unknown>;

/** A client made for one call, and let go after it. */
async function sendOnce(client: { send(command: never): Promise<unknown>; destroy(): void }, command: unknown): Promise<unknown> {
  try {
    return await client.send(command as never);
  } finally {
    client.destroy();
  }
}

const clientOptions = (credentials: CredentialsProvider, region: string) => ({ region, credentials, maxAttempts: 2 });

const CALLS: Record<CheckedAction, Call> = {
  "ec2:DescribeInstances": async (credentials, region) => {
    const { EC2Client, DescribeInstancesCommand } = await import("@aws-sdk/client-ec2");
    return sendOnce(new EC2Client(clientOptions(credentials, region)), new DescribeInstancesCommand({ MaxResults: 5 }));
  },
  "rds:DescribeDBInstances": async (credentials, region) => {
    const { RDSClient, DescribeDBInstancesCommand } = await import("@aws-sdk/client-rds");
    return sendOnce(new RDSClient(clientOptions(credentials, region)), new DescribeDBInstancesCommand({ MaxRecords: 20 }));
  },
  "ssm:DescribeInstanceInformation": async (credentials, region) => {
    const { SSMClient, DescribeInstanceInformationCommand } = await import("@aws-sdk/client-ssm");
    return sendOnce(new SSMClient(clientOptions(credentials, region)), new DescribeInstanceInformationCommand({ MaxResults: 5 }));
  },
  "ssm:ListAssociations": async (credentials, region) => {
    const { SSMClient, ListAssociationsCommand } = await import("@aws-sdk/client-ssm");
    return sendOnce(new SSMClient(clientOptions(credentials, region)), new ListAssociationsCommand({ MaxResults: 1 }));
  },
};

async function outcomeOf(call: Call, credentials: CredentialsProvider, region: string): Promise<CallOutcome> {
  try {
    await call(credentials, region);
    return { status: "allowed" };
  } catch (error) {
    const denied = accessDeniedDetail(error);
    if (denied) return { status: "denied", ...denied };
    const failure = upstreamFailureOf(error);
    return { status: "failed", code: failure.code, message: failure.message };
  }
}

export function createPermissionCheck({ db, keyring }: { db: DrizzleDatabase; keyring: Keyring }) {
  const running = new Set<number>();
  return async function checkPermissions(principal: Principal, org: Organization): Promise<{ checkedAt: Date; regions: RegionPermissions[] }> {
    requireTenantAdmin(principal);
    if (running.has(org.id))
      throw new ConflictError("a permission check of this tenant is running: wait for its answer", { code: "check_in_progress" });
    running.add(org.id);
    try {
      const session = await openTenantSession(db, keyring, org.id);
      const regions = await mapBounded(session.applied.regions, 4, async (region) =>
        regionPermissions(
          region,
          await Promise.all(
            CHECKED_ACTIONS.map(async (action) => permissionCell(action, region, await outcomeOf(CALLS[action], session.credentials, region))),
          ),
        ),
      );
      await recordPermissionObservation(db, {
        organizationId: org.id,
        awsAccountId: session.stack.awsAccountId,
        source: "check",
        denied: regions.flatMap(({ region, checks }) =>
          checks.flatMap((check) =>
            check.status === "denied" ? [{ action: check.action, resource: null, region, cause: check.cause ?? "unknown" }] : [],
          ),
        ),
        allowed: (finding) =>
          regions.some(
            ({ region, checks }) =>
              region === finding.region && checks.some((check) => check.action === finding.action && check.status === "allowed"),
          ),
      });
      return { checkedAt: new Date(), regions };
    } finally {
      running.delete(org.id);
    }
  };
}
