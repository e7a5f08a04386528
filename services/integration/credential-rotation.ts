/**
 * Key rotation without downtime, row by row: every sealed value (integration credentials, external IDs, enrollment tokens, saved
 * plans, webhook secrets, stored Idempotency-Key answers) whose envelope names another key of the keyring than its
 * current one is decrypted and sealed again with the current key, one row per statement, each update conditional on
 * the envelope it read (a row rewritten meanwhile is left to the next pass). The keyring keeps the older keys, so
 * every row stays readable before, during and after. Rows under a key this keyring does not hold are left alone (and
 * counted by sealedRowsByKey). Work comes in batches along each table's primary key, so a pass can stop after any
 * batch and go on from its cursor (services/integration/credential-rotation-queue.ts does, on pg-boss).
 */
import { and, asc, count, eq, getTableColumns, inArray, isNotNull, sql, type SQL, type SQLWrapper } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { DrizzleDatabase } from "../../db/client";
import { CredentialDecryptionError, decryptJson, encryptJson, type CredentialContext, type EncryptedValue, type Keyring } from "../../db/crypto";
import { enrollmentTokens, idempotencyKeys, integrationCredentials, runPlans, tenantExternalIds, webhooks } from "../../db/schema";
import { idempotencyResponseContext } from "../../lib/idempotency-context";
import { enrollmentTokenContext } from "../core/enrollment-tokens";
import { planContext, webhookSecretContext } from "../core/sealed-contexts";
import { externalIdContext } from "../core/tenant-external-id";

export const SEALED_SOURCES = [
  "integration_credentials",
  "tenant_external_ids",
  "enrollment_tokens",
  "run_plans",
  "webhooks",
  "idempotency_keys",
] as const;
export type SealedSource = (typeof SEALED_SOURCES)[number];

interface SealedRow {
  /** The primary key, as text: where the pass goes on from. */
  position: string[];
  envelope: string;
  context: CredentialContext;
  /** Columns the update must keep as they were (updated_at). */
  keep?: Record<string, unknown>;
}

type ColumnName<T extends PgTable> = keyof T["_"]["columns"] & string;

/** A table holding sealed values, by its columns' property names. */
interface SealedTable<T extends PgTable, C extends ColumnName<T>> {
  name: SealedSource;
  table: T;
  /** The primary key, in order. */
  key: ColumnName<T>[];
  /** The envelope. */
  sealed: ColumnName<T>;
  /** The column naming the key that sealed the envelope, written with it. */
  keyId?: ColumnName<T>;
  /** Columns a re-seal must leave as they were (an updated_at that $onUpdate would move). */
  keep?: ColumnName<T>[];
  /** The columns the row's encryption context is built from. */
  contextColumns: C[];
  context(row: Pick<T["$inferSelect"], C>): CredentialContext;
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

function sealedColumn<T extends PgTable, C extends ColumnName<T>>(spec: SealedTable<T, C>): SealedColumn {
  const columns: Record<string, PgColumn> = getTableColumns(spec.table);
  const key = spec.key.map((name) => columns[name]!);
  const sealed = columns[spec.sealed]!;
  const read = Object.fromEntries([...spec.key, ...spec.contextColumns, ...(spec.keep ?? [])].map((name) => [name, columns[name]!]));
  /** A position (text) back to the key's values: integer keys compare as numbers. */
  const keyValues = (position: string[]) => key.map((column, i) => (column.dataType === "number" ? Number(position[i]) : position[i]!));
  const list = (parts: SQLWrapper[]) => sql.join(parts, sql`, `);
  return {
    name: spec.name,
    async select(db, keyIds, after, limit) {
      const rows: Record<string, unknown>[] = await db
        .select({ ...read, envelope: sealed })
        .from(spec.table as PgTable)
        .where(
          and(
            inArray(keyOf(sealed), keyIds),
            after ? sql`(${list(key)}) > (${list(keyValues(after).map((value, i) => sql.param(value, key[i])))})` : undefined,
          ),
        )
        .orderBy(...key.map((column) => asc(column)))
        .limit(limit);
      return rows.map((row) => ({
        position: spec.key.map((name) => String(row[name])),
        // Not null: the key-id filter above left out rows without an envelope.
        envelope: row.envelope as string,
        context: spec.context(row as Pick<T["$inferSelect"], C>),
        keep: spec.keep && Object.fromEntries(spec.keep.map((name) => [name, row[name]])),
      }));
    },
    async reseal(db, row, resealed) {
      const values = keyValues(row.position);
      const updated = await db
        .update(spec.table as PgTable)
        .set({ [spec.sealed]: resealed.envelope, ...(spec.keyId && { [spec.keyId]: resealed.keyId }), ...row.keep })
        .where(and(...key.map((column, i) => eq(column, values[i])), eq(sealed, row.envelope)))
        .returning({ key: key[0]! });
      return updated.length > 0;
    },
    countByKey: (db) =>
      db
        .select({ keyId: keyOf(sealed), rows: count() })
        .from(spec.table as PgTable)
        .where(isNotNull(sealed))
        .groupBy(keyOf(sealed)),
  };
}

/** In SEALED_SOURCES order: a pass's cursor names a table by its index here. */
const SEALED_COLUMNS: SealedColumn[] = [
  sealedColumn({
    name: "integration_credentials",
    table: integrationCredentials,
    key: ["id"],
    sealed: "credentialData",
    keyId: "encryptionKeyId",
    keep: ["updatedAt"],
    contextColumns: ["organizationId", "provider"],
    context: ({ organizationId, provider }) => ({ organizationId, provider }),
  }),
  sealedColumn({
    name: "tenant_external_ids",
    table: tenantExternalIds,
    key: ["organizationId"],
    sealed: "externalIdSealed",
    contextColumns: ["organizationId"],
    context: (row) => externalIdContext(row.organizationId),
  }),
  sealedColumn({
    name: "enrollment_tokens",
    table: enrollmentTokens,
    key: ["id"],
    sealed: "tokenSealed",
    contextColumns: ["organizationId"],
    context: (row) => enrollmentTokenContext(row.organizationId),
  }),
  sealedColumn({
    name: "run_plans",
    table: runPlans,
    key: ["id"],
    sealed: "planSealed",
    keyId: "keyId",
    contextColumns: ["organizationId", "id"],
    context: (row) => planContext(row.organizationId, row.id),
  }),
  sealedColumn({
    name: "webhooks",
    table: webhooks,
    key: ["id"],
    sealed: "secretSealed",
    keyId: "encryptionKeyId",
    contextColumns: ["organizationId"],
    context: (row) => webhookSecretContext(row.organizationId),
  }),
  sealedColumn({
    name: "idempotency_keys",
    table: idempotencyKeys,
    key: ["actor", "key"],
    sealed: "responseBody",
    contextColumns: ["actor", "key"],
    context: (row) => idempotencyResponseContext(row.actor, row.key),
  }),
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
