/**
 * Credentials key rotation in the background, on the shared pg-boss. The target is one row
 * (credential_key_rotation): a replica starting with a current key other than the target makes its key the target
 * (the newest deployment wins), and so does an admin's request. One job at a time over all replicas (policy
 * `stately`) re-seals rows under older keys to the target, BATCHES_PER_JOB batches of `batchSize` rows, then queues
 * the next job with its cursor; a pass that re-sealed nothing marks the rotation complete. A cron job every ten
 * minutes starts a pass again, for rows a replica still on the old key sealed meanwhile.
 *
 * Downtime-free: every update is conditional on the envelope it read, and nothing is re-sealed before the target key
 * can have reached every running replica (`propagationSeconds` after the target was set: KMS data keys are picked up
 * by the periodic refresh). A replica that does not hold the target key (a local key it is not configured with) puts
 * the job back for another replica.
 */
import type { PgBoss } from "pg-boss";
import { eq, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { credentialKeyRotation, type CredentialKeyRotation } from "../../db/schema";
import { rotateBatch, SEALED_SOURCES, type RotationCursor } from "./credential-rotation";

export const CREDENTIAL_ROTATION_QUEUE = "credential-rotation";
const BATCHES_PER_JOB = 10;
const RETRY_ELSEWHERE_SECONDS = 30;
const SWEEP_SCHEDULE = "*/10 * * * *";
export const STARTUP_ACTOR = "system:startup";

export interface RotationKeyring extends Keyring {
  refresh(): Promise<void>;
  readonly propagationSeconds: number;
}

export interface CredentialRotationDeps {
  db: DrizzleDatabase;
  keyring: RotationKeyring;
  log?(message: string): void;
}

interface RotationJob {
  targetKeyId?: string;
  cursor?: RotationCursor;
  /** Rows re-sealed so far in this pass. */
  passResealed?: number;
}

export interface CredentialRotationQueue {
  /** Makes this replica's current key the target (when it is not already) and queues a pass now. */
  request(actor: string): Promise<void>;
}

export async function readRotationTarget(db: DrizzleDatabase): Promise<CredentialKeyRotation | undefined> {
  const [row] = await db.select().from(credentialKeyRotation);
  return row;
}

/** Sets the target to `keyId`; a new target starts over (requested now, nothing re-sealed, not complete). */
async function setTarget(db: DrizzleDatabase, keyId: string, actor: string): Promise<void> {
  await db
    .insert(credentialKeyRotation)
    .values({ targetKeyId: keyId, requestedBy: actor })
    .onConflictDoUpdate({
      target: credentialKeyRotation.id,
      set: {
        targetKeyId: keyId,
        requestedBy: actor,
        requestedAt: sql`case when ${credentialKeyRotation.targetKeyId} = ${keyId} then ${credentialKeyRotation.requestedAt} else now() end`,
        rowsResealed: sql`case when ${credentialKeyRotation.targetKeyId} = ${keyId} then ${credentialKeyRotation.rowsResealed} else 0 end`,
        completedAt: null,
      },
      // At start-up only a different key changes anything; an admin's request always opens a new pass.
      ...(actor === STARTUP_ACTOR ? { setWhere: sql`${credentialKeyRotation.targetKeyId} <> ${keyId}` } : {}),
    });
}

export async function startCredentialRotation(
  boss: PgBoss,
  deps: CredentialRotationDeps,
  options: { work: boolean; batchSize?: number },
): Promise<CredentialRotationQueue> {
  const { db, keyring } = deps;
  const log = deps.log ?? (() => undefined);
  const batchSize = options.batchSize ?? 100;
  await boss.createQueue(CREDENTIAL_ROTATION_QUEUE, { policy: "stately", retryLimit: 0, expireInSeconds: 900 });
  const send = (job: RotationJob, delaySeconds = 0) =>
    boss.send(CREDENTIAL_ROTATION_QUEUE, job, { retryLimit: 0, ...(delaySeconds > 0 ? { startAfter: delaySeconds } : {}) });

  async function runJob(job: RotationJob): Promise<void> {
    const [target] = await db
      .select({
        keyId: credentialKeyRotation.targetKeyId,
        ageSeconds: sql<number>`extract(epoch from now() - ${credentialKeyRotation.requestedAt})::float8`,
      })
      .from(credentialKeyRotation);
    if (!target) return;
    if (!keyring.keys.has(target.keyId)) await keyring.refresh();
    const key = keyring.keys.get(target.keyId);
    if (!key) {
      log(`credentials rotation: this replica does not hold the target key ${target.keyId}; leaving the pass to another replica`);
      await send({}, RETRY_ELSEWHERE_SECONDS);
      return;
    }
    const wait = Math.ceil(keyring.propagationSeconds - target.ageSeconds);
    if (wait > 0) {
      await send({}, wait);
      return;
    }
    const sameTarget = job.targetKeyId === target.keyId;
    let cursor: RotationCursor | undefined = sameTarget && job.cursor ? job.cursor : { source: 0 };
    let passResealed = sameTarget ? (job.passResealed ?? 0) : 0;
    let resealed = 0;
    for (let batches = 0; cursor && batches < BATCHES_PER_JOB; batches++) {
      const batch = await rotateBatch(db, { current: key, keys: keyring.keys }, cursor, { limit: batchSize });
      resealed += SEALED_SOURCES.reduce((sum, name) => sum + batch.resealed[name], 0);
      for (const failure of batch.failed) log(`credentials rotation: a row of ${failure.source} did not open (${failure.reason}); left as it is`);
      cursor = batch.next;
    }
    passResealed += resealed;
    if (resealed > 0) {
      await db
        .update(credentialKeyRotation)
        .set({ rowsResealed: sql`${credentialKeyRotation.rowsResealed} + ${resealed}` })
        .where(eq(credentialKeyRotation.targetKeyId, target.keyId));
      log(`credentials rotation: re-sealed ${resealed} row(s) to key ${target.keyId}`);
    }
    if (cursor) {
      await send({ targetKeyId: target.keyId, cursor, passResealed });
    } else if (passResealed > 0) {
      // Once more from the start: rows sealed under an older key while this pass ran.
      await send({ targetKeyId: target.keyId });
    } else {
      const completed = await db
        .update(credentialKeyRotation)
        .set({ completedAt: sql`now()` })
        .where(sql`${credentialKeyRotation.targetKeyId} = ${target.keyId} and ${credentialKeyRotation.completedAt} is null`)
        .returning({ rows: credentialKeyRotation.rowsResealed });
      if (completed.length > 0) log(`credentials rotation to key ${target.keyId} complete: ${completed[0]!.rows} row(s) re-sealed`);
    }
  }

  await setTarget(db, keyring.current.id, STARTUP_ACTOR);
  if (options.work) {
    await boss.work<RotationJob>(CREDENTIAL_ROTATION_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async ([job]) => {
      if (job) await runJob(job.data ?? {});
    });
    await boss.schedule(CREDENTIAL_ROTATION_QUEUE, SWEEP_SCHEDULE, {}, { tz: "UTC" });
  }
  await send({});

  return {
    async request(actor) {
      await setTarget(db, keyring.current.id, actor);
      await send({});
    },
  };
}
