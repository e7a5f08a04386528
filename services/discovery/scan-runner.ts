/**
 * Executes one recorded discovery scan: assume the tenant's XDR role (its ARN from the stack's outputs, the external
 * ID from the tenant's sealed credential), scan, store, and record per-region results on the scan's row.
 */
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { appliedStackOutputs } from "../run/applied-outputs";
import { discoveryScans, type DiscoveryScan, type DiscoveryScanStatus } from "../../db/schema";
import { loadAwsCredential } from "../integration/aws-credential-store";
import { discoverTenant } from "./discover";

export interface ScanRunnerDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  /** Told when a scan's row is final. */
  onScanFinished?(scan: DiscoveryScan): Promise<void>;
  log?(message: string): void;
}

export class TenantNotProvisionedError extends Error {
  override readonly name = "TenantNotProvisionedError";
}

/** The XDR access role the tenant's last successful `up` created. */
export async function provisionedRoleArn(db: DrizzleDatabase, organizationId: number): Promise<string | undefined> {
  const roleArn = (await appliedStackOutputs(db, organizationId))?.roleArn;
  return typeof roleArn === "string" ? roleArn : undefined;
}

export async function executeScan(deps: ScanRunnerDeps, scanId: string): Promise<void> {
  const { db } = deps;
  const [scan] = await db
    .update(discoveryScans)
    .set({ status: "running", startedAt: new Date() })
    .where(and(eq(discoveryScans.id, scanId), eq(discoveryScans.status, "queued")))
    .returning();
  if (!scan) return;
  let outcome: Partial<DiscoveryScan>;
  try {
    const roleArn = await provisionedRoleArn(db, scan.organizationId);
    if (!roleArn) throw new TenantNotProvisionedError("the tenant's stack has not been applied yet (no successful up)");
    const credential = await loadAwsCredential(db, deps.keyring, scan.organizationId);
    if (!credential) throw new TenantNotProvisionedError("the tenant has no AWS integration");
    const summary = await discoverTenant({
      db,
      organizationId: scan.organizationId,
      roleArn,
      externalId: credential.data.externalId,
    });
    const failed = summary.regions.filter((region) => region.status === "failed").length;
    const status: DiscoveryScanStatus = failed === 0 ? "succeeded" : failed === summary.regions.length ? "failed" : "partial";
    outcome = {
      status,
      assetsFound: summary.assetsFound,
      changes: { inserted: summary.inserted, updated: summary.updated, removed: summary.removed },
      regions: summary.regions,
      ...(status === "failed" ? { error: { message: "every region failed", kind: "DiscoveryFailed" } } : {}),
    };
  } catch (error) {
    outcome = {
      status: "failed",
      error: { message: error instanceof Error ? error.message : String(error), kind: (error as Error).name ?? "Error" },
    };
  }
  const [finished] = await db
    .update(discoveryScans)
    .set({ ...outcome, finishedAt: new Date() })
    .where(eq(discoveryScans.id, scanId))
    .returning();
  await deps.onScanFinished?.(finished!).catch((error: unknown) =>
    (deps.log ?? console.error)(`discovery ${scanId}: follow-up failed: ${error instanceof Error ? error.message : String(error)}`),
  );
}
