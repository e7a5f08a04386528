/**
 * Waiting for the bootstrap role the customer creates with the quick-create link: AssumeRole with the tenant's
 * external ID is tried with backoff until it succeeds or the wait's deadline passes. Each attempt is one job on the
 * shared pg-boss (one wait per tenant, keyed by organization), so the wait survives a restart and any replica can carry
 * it; its state is the credential row's `connection_check`, which the API shows.
 *
 * On success the credential becomes active and `onConnected` runs (the quick-start flow starts onboarding there). A role
 * that also answers without the external ID is not accepted: the wait goes on, saying why, until the customer fixes
 * its trust policy or time runs out.
 */
import type { PgBoss } from "pg-boss";
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, type Keyring } from "../../db/crypto";
import { auditLog, integrationCredentials, organizations, type ConnectionCheck } from "../../db/schema";
import { awsCredentialContext, type AwsCredentialData } from "../core/aws-credential-store";
import { probeBootstrapRole, type BootstrapRoleVerifier } from "./verify-bootstrap-role";

export const BOOTSTRAP_WAIT_QUEUE = "bootstrap-waits";
const MAX_BACKOFF_SECONDS = 30;

export interface BootstrapWaitDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  verifyBootstrapRole: BootstrapRoleVerifier;
  /** After the role was assumed and the credential activated. */
  onConnected(organizationId: number): Promise<void>;
  /** After the deadline passed without the role. */
  onTimedOut?(organizationId: number): Promise<void>;
  log?(message: string): void;
  /** Where STS's own words about a refused role go (never to the tenant); default: nowhere. */
  warn?(message: string): void;
}

export interface BootstrapWaitQueue {
  /** Schedules the next attempt of the tenant's wait (now, or after `delaySeconds`). */
  schedule(organizationId: number, delaySeconds?: number): Promise<void>;
}

/** Seconds before attempt n+1: 1, 2, 4, ... capped, and never past the deadline. */
export function backoffSeconds(attempts: number, now: number, deadline: number): number {
  const wanted = Math.min(2 ** Math.max(0, attempts - 1), MAX_BACKOFF_SECONDS);
  return Math.max(0, Math.min(wanted, Math.ceil((deadline - now) / 1000)));
}

/** A wait queue whose workers start apart: scheduling is needed before what follows a connect exists. */
export interface OpenedBootstrapWaitQueue extends BootstrapWaitQueue {
  /** Starts this process's worker (options.work). */
  work(deps: BootstrapWaitDeps): Promise<void>;
}

export async function openBootstrapWaitQueue(boss: PgBoss, options: { work: boolean }): Promise<OpenedBootstrapWaitQueue> {
  await boss.createQueue(BOOTSTRAP_WAIT_QUEUE, { policy: "stately", retryLimit: 0, expireInSeconds: 120 });
  const queue: OpenedBootstrapWaitQueue = {
    async schedule(organizationId, delaySeconds = 0) {
      await boss.send(
        BOOTSTRAP_WAIT_QUEUE,
        { organizationId },
        { singletonKey: String(organizationId), retryLimit: 0, ...(delaySeconds > 0 ? { startAfter: delaySeconds } : {}) },
      );
    },
    async work(deps) {
      if (!options.work) return;
      await boss.work<{ organizationId: number }>(BOOTSTRAP_WAIT_QUEUE, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
        if (!job) return;
        const next = await attemptConnection(deps, job.data.organizationId);
        if (next !== undefined) await queue.schedule(job.data.organizationId, next);
      });
    },
  };
  return queue;
}

/** One AssumeRole attempt; returns the delay before the next one, or undefined when the wait is over. */
export async function attemptConnection(deps: BootstrapWaitDeps, organizationId: number, now = new Date()): Promise<number | undefined> {
  const { db } = deps;
  const [row] = await db
    .select()
    .from(integrationCredentials)
    .where(and(eq(integrationCredentials.organizationId, organizationId), eq(integrationCredentials.provider, "aws")));
  const check = row?.connectionCheck;
  if (!row || !check || check.status !== "waiting") return undefined;
  const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
  if (!org) return undefined;
  const data = decryptJson<AwsCredentialData>(row.credentialData, awsCredentialContext(organizationId), deps.keyring);
  // The same check as a direct connect: assumable with the external ID, refused with a wrong one and with none.
  const verdict = await probeBootstrapRole(deps.verifyBootstrapRole, {
    roleArn: data.bootstrapRoleArn,
    externalId: data.externalId,
    region: org.integrationSettings.homeRegion ?? "us-east-1",
    sessionName: `mini-xdr-verify-${org.slug}`.slice(0, 64),
  });
  const attempted: ConnectionCheck = { ...check, attempts: check.attempts + 1, lastCheckedAt: now.toISOString() };
  if (verdict.ok) {
    await db.transaction(async (tx) => {
      await tx
        .update(integrationCredentials)
        .set({ status: "active", updatedAt: now, connectionCheck: { ...attempted, status: "connected", lastError: undefined } })
        .where(eq(integrationCredentials.id, row.id));
      await tx.insert(auditLog).values({
        actor: "system:bootstrap-wait",
        organizationId,
        action: "integration.aws.connect",
        target: `tenant:${org.slug}/integrations/aws`,
        details: { bootstrapRoleArn: data.bootstrapRoleArn, attempts: attempted.attempts },
      });
    });
    await deps
      .onConnected(organizationId)
      .catch((error: unknown) =>
        (deps.log ?? console.error)(
          `bootstrap wait ${org.slug}: connected, but starting onboarding failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    return undefined;
  }
  // The tenant sees the neutral reason (shown by the API); STS's words stay in the server log.
  deps.warn?.(`bootstrap wait ${org.slug}: ${data.bootstrapRoleArn} refused (${verdict.code}): ${verdict.detail}`);
  const rejection = verdict.reason;
  const deadline = Date.parse(check.deadline);
  const timedOut = now.getTime() >= deadline;
  // The row is shown to the tenant: it keeps the neutral reason, never STS's own text (lib/upstream-errors.ts).
  await db
    .update(integrationCredentials)
    .set({ connectionCheck: { ...attempted, status: timedOut ? "timed_out" : "waiting", lastError: rejection } })
    .where(eq(integrationCredentials.id, row.id));
  if (timedOut) {
    await deps.onTimedOut?.(organizationId);
    return undefined;
  }
  return backoffSeconds(attempted.attempts, now.getTime(), deadline);
}
