/**
 * Executes one recorded discovery scan: assume the tenant's XDR role (its ARN from the stack's outputs, the external
 * ID from the tenant's sealed credential), scan, store, and record per-region results on the scan's row.
 */
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { discoveryScans, type DiscoveryScan, type DiscoveryScanStatus } from "../../db/schema";
import { openStackSession } from "../core/tenant-aws-session";
import { discoverTenant } from "./discover";
import { recordPermissionObservation } from "../core/permission-findings";
import { deniedCallsIn, excludedByOrganization } from "../core/permission-findings-fns";
import { noopTelemetry, type Telemetry } from "../../lib/telemetry";
import { DomainError } from "../../lib/errors";
import { neutralUpstreamText, upstreamFailureOf } from "../../lib/upstream-errors";

export interface ScanRunnerDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  /** Told when a scan's row is final. */
  onScanFinished?(scan: DiscoveryScan): Promise<void>;
  log?(message: string): void;
  /** Scan lifecycle log lines and per-region discovery metrics. */
  telemetry?: Telemetry;
}

/** The calls a region scan makes: a scan that went through shows them allowed there. */
const DISCOVERY_ACTIONS = new Set(["ec2:DescribeInstances", "rds:DescribeDBInstances"]);
const CLUSTER_ACTIONS = new Set(["eks:ListClusters", "eks:DescribeCluster", "eks:ListNodegroups", "eks:DescribeNodegroup"]);

export async function executeScan(deps: ScanRunnerDeps, scanId: string): Promise<void> {
  const { db } = deps;
  const [scan] = await db
    .update(discoveryScans)
    .set({ status: "running", startedAt: new Date() })
    .where(and(eq(discoveryScans.id, scanId), eq(discoveryScans.status, "queued")))
    .returning();
  if (!scan) return;
  const { log, metrics } = deps.telemetry ?? noopTelemetry;
  const fields = { scanId, tenantId: scan.organizationId, trigger: scan.trigger, ...(scan.awsAccountId ? { awsAccountId: scan.awsAccountId } : {}) };
  log.info({ event: "scan.started", ...fields }, "discovery scan started");
  let outcome: Partial<DiscoveryScan>;
  try {
    const session = await openStackSession(db, deps.keyring, scan.organizationId, scan.awsAccountId);
    const summary = await discoverTenant({ db, organizationId: scan.organizationId, credentials: session.credentials, stack: session.stack });
    const scanned = summary.regions.filter((region): region is typeof region & { status: "succeeded" | "failed" } => region.status !== "not_enabled");
    for (const region of scanned) metrics.discoveryRegionScanned(region.region, region.status, region.durationMs / 1000);
    const denials = new Map(
      scanned.map((region) => [region.region, region.status === "failed" ? deniedCallsIn(region.error ?? "", region.region) : []]),
    );
    const clusterDenials = scanned.flatMap((region) => (region.clustersError ? deniedCallsIn(region.clustersError, region.region) : []));
    await recordPermissionObservation(db, {
      organizationId: scan.organizationId,
      awsAccountId: session.stack.awsAccountId,
      source: "discovery",
      denied: [...[...denials.values()].flat(), ...clusterDenials],
      allowed: (finding) =>
        scanned.some(
          (region) =>
            region.region === finding.region &&
            region.status === "succeeded" &&
            (DISCOVERY_ACTIONS.has(finding.action) || (CLUSTER_ACTIONS.has(finding.action) && !region.clustersError)),
        ),
    });
    // A region the organization's policy closes is not a failure of the scan: it is where the platform may not look.
    const excluded = new Set(scanned.filter((region) => excludedByOrganization(denials.get(region.region) ?? [])).map((region) => region.region));
    const failed = scanned.filter((region) => region.status === "failed" && !excluded.has(region.region)).length;
    const looked = scanned.length - excluded.size;
    const status: DiscoveryScanStatus = failed === 0 ? "succeeded" : failed === looked ? "failed" : "partial";
    outcome = {
      status,
      assetsFound: summary.assetsFound,
      changes: { inserted: summary.inserted, updated: summary.updated, removed: summary.removed },
      regions: summary.regions.map(({ durationMs: _durationMs, ...region }) =>
        excluded.has(region.region) ? { ...region, status: "excluded_by_organization" as const } : region,
      ),
      ...(status === "failed" ? { error: { message: "every region failed", kind: "DiscoveryFailed" } } : {}),
    };
  } catch (error) {
    outcome = {
      status: "failed",
      // The row is shown to the tenant: the service's own errors keep their text, anything from outside (STS, the
      // tenant's account, the network) is the neutral reason (lib/upstream-errors.ts).
      error:
        error instanceof DomainError
          ? { message: error.message, kind: error.name }
          : { message: neutralUpstreamText(error), kind: upstreamFailureOf(error).code },
    };
  }
  const [finished] = await db
    .update(discoveryScans)
    .set({ ...outcome, finishedAt: new Date() })
    .where(eq(discoveryScans.id, scanId))
    .returning();
  (finished!.status === "failed" ? log.warn : log.info)(
    {
      event: "scan.finished",
      ...fields,
      status: finished!.status,
      assetsFound: finished!.assetsFound,
      durationMs: finished!.finishedAt!.getTime() - finished!.startedAt!.getTime(),
      errorKind: finished!.error?.kind,
    },
    "discovery scan finished",
  );
  await deps
    .onScanFinished?.(finished!)
    .catch((error: unknown) =>
      (deps.log ?? console.error)(`discovery ${scanId}: follow-up failed: ${error instanceof Error ? error.message : String(error)}`),
    );
}
