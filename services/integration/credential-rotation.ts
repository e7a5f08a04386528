/**
 * Key rotation without downtime, row by row: every sealed value (integration credentials, external IDs, enrollment tokens, saved
 * plans, webhook secrets, stored Idempotency-Key answers) whose envelope names another key of the keyring than its
 * current one is decrypted and sealed again with the current key, one row per statement, each update conditional on
 * the envelope it read (a row rewritten meanwhile is left to the next pass). The keyring keeps the older keys, so
 * every row stays readable before, during and after. Rows under a key this keyring does not hold are left alone (and
 * counted by sealedRowsByKey). Work comes in batches along each table's primary key, so a pass can stop after any
 * batch and go on from its cursor (services/integration/credential-rotation-queue.ts does, on pg-boss).
 */
import { and, asc, count, eq, gt, inArray, isNotNull, sql, type SQL, type SQLWrapper } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { CredentialDecryptionError, decryptJson, encryptJson, type CredentialContext, type EncryptedValue, type Keyring } from "../../db/crypto";
import { enrollmentTokens, idempotencyKeys, integrationCredentials, runPlans, tenantExternalIds, webhooks } from "../../db/schema";
import { idempotencyResponseContext } from "../../lib/idempotency-context";
import { webhookSecretContext } from "../notification/webhook-service";
import { enrollmentTokenContext } from "../core/enrollment-tokens";
import { planContext } from "../run/run-plan-store";
import { externalIdContext } from "./external-ids";

export const SEALED_SOURCES = ["integration_credentials", "tenant_external_ids", "enrollment_tokens", "run_plans", "webhooks", "idempotency_keys"] as const;
export type SealedSource = (typeof SEALED_SOURCES)[number];

interface SealedRow {
  /** The primary key, as text: where the pass goes on from. */
  position: string[];
  envelope: string;
  context: CredentialContext;
  /** Columns the update must keep as they were (updated_at). */
  keep?: Record<string, unknown>;
}

interface SealedColumn {
  name: SealedSource;
  /** Up to `limit` rows after `after` (primary key order) whose envelope names one of `keyIds`. */
  select(db: DrizzleDatabase, keyIds: string[], after: string[] | undefined, limit: number): Promise<SealedRow[]>;
  /** Writes `sealed` when the row still holds the envelope it was read with; true when it did. */
  reseal(db: DrizzleDatabase, row: SealedRow, sealed: EncryptedValue): Promise<boolean>;
  /** Rows per key id named by their envelopes. */
  countByKey(db: DrizzleDatabase): Promise<{ keyId: string; rows: number }[]>;
}

/** The key id an envelope column names (`v1:<keyId>:...`), in SQL. */
const keyOf = (column: SQLWrapper): SQL<string> => sql<string>`split_part(${column}, ':', 2)`;

const countByKeyOf = (db: DrizzleDatabase, table: Parameters<ReturnType<DrizzleDatabase["select"]>["from"]>[0], column: SQLWrapper) =>
  db
    .select({ keyId: keyOf(column), rows: count() })
    .from(table)
    .where(isNotNull(column))
    .groupBy(keyOf(column));

const SEALED_COLUMNS: SealedColumn[] = [
  {
    name: "integration_credentials",
    async select(db, keyIds, after, limit) {
      const t = integrationCredentials;
      const rows = await db
        .select({ id: t.id, organizationId: t.organizationId, provider: t.provider, envelope: t.credentialData, updatedAt: t.updatedAt })
        .from(t)
        .where(and(inArray(keyOf(t.credentialData), keyIds), after ? gt(t.id, Number(after[0])) : undefined))
        .orderBy(asc(t.id))
        .limit(limit);
      return rows.map((row) => ({
        position: [String(row.id)],
        envelope: row.envelope,
        context: { organizationId: row.organizationId, provider: row.provider },
        keep: { updatedAt: row.updatedAt },
      }));
    },
    async reseal(db, row, sealed) {
      const t = integrationCredentials;
      const updated = await db
        .update(t)
        .set({ credentialData: sealed.envelope, encryptionKeyId: sealed.keyId, ...row.keep })
        .where(and(eq(t.id, Number(row.position[0])), eq(t.credentialData, row.envelope)))
        .returning({ id: t.id });
      return updated.length > 0;
    },
    countByKey: (db) => countByKeyOf(db, integrationCredentials, integrationCredentials.credentialData),
  },
  {
    name: "tenant_external_ids",
    async select(db, keyIds, after, limit) {
      const t = tenantExternalIds;
      const rows = await db
        .select({ organizationId: t.organizationId, envelope: t.externalIdSealed })
        .from(t)
        .where(and(inArray(keyOf(t.externalIdSealed), keyIds), after ? gt(t.organizationId, Number(after[0])) : undefined))
        .orderBy(asc(t.organizationId))
        .limit(limit);
      return rows.map((row) => ({ position: [String(row.organizationId)], envelope: row.envelope, context: externalIdContext(row.organizationId) }));
    },
    async reseal(db, row, sealed) {
      const t = tenantExternalIds;
      const updated = await db
        .update(t)
        .set({ externalIdSealed: sealed.envelope })
        .where(and(eq(t.organizationId, Number(row.position[0])), eq(t.externalIdSealed, row.envelope)))
        .returning({ id: t.organizationId });
      return updated.length > 0;
    },
    countByKey: (db) => countByKeyOf(db, tenantExternalIds, tenantExternalIds.externalIdSealed),
  },
  {
    name: "enrollment_tokens",
    async select(db, keyIds, after, limit) {
      const t = enrollmentTokens;
      const rows = await db
        .select({ id: t.id, organizationId: t.organizationId, envelope: t.tokenSealed })
        .from(t)
        .where(and(inArray(keyOf(t.tokenSealed), keyIds), after ? gt(t.id, Number(after[0])) : undefined))
        .orderBy(asc(t.id))
        .limit(limit);
      return rows.map((row) => ({ position: [String(row.id)], envelope: row.envelope!, context: enrollmentTokenContext(row.organizationId) }));
    },
    async reseal(db, row, sealed) {
      const t = enrollmentTokens;
      const updated = await db
        .update(t)
        .set({ tokenSealed: sealed.envelope })
        .where(and(eq(t.id, Number(row.position[0])), eq(t.tokenSealed, row.envelope)))
        .returning({ id: t.id });
      return updated.length > 0;
    },
    countByKey: (db) => countByKeyOf(db, enrollmentTokens, enrollmentTokens.tokenSealed),
  },
  {
    name: "run_plans",
    async select(db, keyIds, after, limit) {
      const t = runPlans;
      const rows = await db
        .select({ id: t.id, organizationId: t.organizationId, envelope: t.planSealed })
        .from(t)
        .where(and(inArray(keyOf(t.planSealed), keyIds), after ? gt(t.id, after[0]!) : undefined))
        .orderBy(asc(t.id))
        .limit(limit);
      return rows.map((row) => ({ position: [row.id], envelope: row.envelope, context: planContext(row.organizationId, row.id) }));
    },
    async reseal(db, row, sealed) {
      const t = runPlans;
      const updated = await db
        .update(t)
        .set({ planSealed: sealed.envelope, keyId: sealed.keyId })
        .where(and(eq(t.id, row.position[0]!), eq(t.planSealed, row.envelope)))
        .returning({ id: t.id });
      return updated.length > 0;
    },
    countByKey: (db) => countByKeyOf(db, runPlans, runPlans.planSealed),
  },
  {
    name: "webhooks",
    async select(db, keyIds, after, limit) {
      const t = webhooks;
      const rows = await db
        .select({ id: t.id, organizationId: t.organizationId, envelope: t.secretSealed })
        .from(t)
        .where(and(inArray(keyOf(t.secretSealed), keyIds), after ? gt(t.id, after[0]!) : undefined))
        .orderBy(asc(t.id))
        .limit(limit);
      return rows.map((row) => ({ position: [row.id], envelope: row.envelope, context: webhookSecretContext(row.organizationId) }));
    },
    async reseal(db, row, sealed) {
      const t = webhooks;
      const updated = await db
        .update(t)
        .set({ secretSealed: sealed.envelope, encryptionKeyId: sealed.keyId })
        .where(and(eq(t.id, row.position[0]!), eq(t.secretSealed, row.envelope)))
        .returning({ id: t.id });
      return updated.length > 0;
    },
    countByKey: (db) => countByKeyOf(db, webhooks, webhooks.secretSealed),
  },
  {
    name: "idempotency_keys",
    async select(db, keyIds, after, limit) {
      const t = idempotencyKeys;
      const rows = await db
        .select({ actor: t.actor, key: t.key, envelope: t.responseBody })
        .from(t)
        .where(and(inArray(keyOf(t.responseBody), keyIds), after ? sql`(${t.actor}, ${t.key}) > (${after[0]}, ${after[1]})` : undefined))
        .orderBy(asc(t.actor), asc(t.key))
        .limit(limit);
      return rows.map((row) => ({ position: [row.actor, row.key], envelope: row.envelope!, context: idempotencyResponseContext(row.actor, row.key) }));
    },
    async reseal(db, row, sealed) {
      const t = idempotencyKeys;
      const updated = await db
        .update(t)
        .set({ responseBody: sealed.envelope })
        .where(and(eq(t.actor, row.position[0]!), eq(t.key, row.position[1]!), eq(t.responseBody, row.envelope)))
        .returning({ key: t.key });
      return updated.length > 0;
    },
    countByKey: (db) => countByKeyOf(db, idempotencyKeys, idempotencyKeys.responseBody),
  },
];

export type RotationCounts = Record<SealedSource, number>;

const zeroCounts = (): RotationCounts => Object.fromEntries(SEALED_SOURCES.map((name) => [name, 0])) as RotationCounts;

/** Where a pass goes on: the table (index in SEALED_SOURCES) and the last primary key done there. */
export interface RotationCursor {
  source: number;
  after?: string[];
}

export interface RotationBatch {
  resealed: RotationCounts;
  /** Rows that did not open with the key their envelope names (tampered, or another context): left as they are. */
  failed: { source: SealedSource; position: string[]; reason: string }[];
  /** Where the next batch starts; undefined when this pass went through every table. */
  next?: RotationCursor;
}

/** Rows under the keyring's older keys, up to `limit` of them from `cursor` on, re-sealed with its current key. */
export async function rotateBatch(
  db: DrizzleDatabase,
  keyring: Keyring,
  cursor: RotationCursor,
  { limit, afterRow }: { limit: number; afterRow?: () => Promise<void> },
): Promise<RotationBatch> {
  const batch: RotationBatch = { resealed: zeroCounts(), failed: [] };
  const olderKeys = [...keyring.keys.keys()].filter((id) => id !== keyring.current.id);
  if (olderKeys.length === 0) return batch;
  let left = limit;
  for (let source = cursor.source; source < SEALED_COLUMNS.length; source++) {
    const column = SEALED_COLUMNS[source]!;
    let after = source === cursor.source ? cursor.after : undefined;
    const rows = await column.select(db, olderKeys, after, left);
    for (const row of rows) {
      after = row.position;
      let sealed: EncryptedValue;
      try {
        sealed = encryptJson(decryptJson(row.envelope, row.context, keyring), row.context, keyring);
      } catch (error) {
        if (!(error instanceof CredentialDecryptionError)) throw error;
        batch.failed.push({ source: column.name, position: row.position, reason: error.reason });
        continue;
      }
      if (await column.reseal(db, row, sealed)) batch.resealed[column.name]++;
      await afterRow?.();
    }
    left -= rows.length;
    if (left === 0) return { ...batch, next: { source, after } };
  }
  return batch;
}

/** A whole pass, batch after batch; answers what was re-sealed. */
export async function rotateSealedRows(
  db: DrizzleDatabase,
  keyring: Keyring,
  { afterRow, batchSize = 100 }: { afterRow?: () => Promise<void>; batchSize?: number } = {},
): Promise<RotationCounts> {
  const total = zeroCounts();
  let cursor: RotationCursor | undefined = { source: 0 };
  while (cursor) {
    const batch = await rotateBatch(db, keyring, cursor, { limit: batchSize, afterRow });
    for (const name of SEALED_SOURCES) total[name] += batch.resealed[name];
    cursor = batch.next;
  }
  return total;
}

export interface SealedRowsOfKey {
  source: SealedSource;
  keyId: string;
  rows: number;
}

/** How many rows each table holds under each key id. */
export async function sealedRowsByKey(db: DrizzleDatabase): Promise<SealedRowsOfKey[]> {
  const perTable = await Promise.all(
    SEALED_COLUMNS.map(async (column) => (await column.countByKey(db)).map(({ keyId, rows }) => ({ source: column.name, keyId, rows }))),
  );
  return perTable.flat();
}
