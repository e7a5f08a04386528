/**
 * The default Pulumi state backend: the CLI's `postgres://` DIY backend in the service's own PostgreSQL server, in a
 * database of its own named after the service's (`mini_xdr` -> `mini_xdr_state`), created when missing. An explicit
 * PULUMI_BACKEND_URL (file://, s3://, Pulumi Cloud, another postgres://) replaces it.
 *
 * The CLI creates its table on first use with CREATE TABLE IF NOT EXISTS, which PostgreSQL does not make safe against
 * a concurrent creator: several runs starting at once on a new state database fail with 42P07. So the service
 * creates the table itself, once, before any run, with the CLI's own schema (pkg/backend/diy/postgres/schema.sql).
 */
import postgres from "postgres";
import { createDatabaseIfMissing } from "../db/embedded-server";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** The state database for a service database URL: same server and role, database `<name>_state`. */
export function defaultStateBackendUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, "")) || "postgres";
  url.protocol = "postgres:";
  url.pathname = `/${encodeURIComponent(`${database}_state`)}`;
  // The CLI's driver (lib/pq) defaults to sslmode=require; a loopback server (the embedded one) has no TLS.
  if (!url.searchParams.has("sslmode") && LOOPBACK.has(url.hostname)) url.searchParams.set("sslmode", "disable");
  return url.toString();
}

/** Creates the database a postgres:// backend URL names, when missing, through the service's connection. */
export async function ensureStateDatabase(backendUrl: string, databaseUrl: string): Promise<void> {
  if (!/^postgres(ql)?:\/\//.test(backendUrl)) return;
  const database = decodeURIComponent(new URL(backendUrl).pathname.replace(/^\//, ""));
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
  try {
    await createDatabaseIfMissing(admin, database);
  } catch (error) {
    throw new Error(`cannot create the Pulumi state database "${database}" (${(error as Error).message}); create it, or set PULUMI_BACKEND_URL`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Creates the CLI's state table (and its index) in a postgres:// backend unless they exist; replicas may race. */
export async function ensureStateTable(backendUrl: string): Promise<void> {
  if (!/^postgres(ql)?:\/\//.test(backendUrl)) return;
  const url = new URL(backendUrl);
  const table = url.searchParams.get("table") || "pulumi_state";
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) throw new Error(`the Pulumi state table name "${table}" is not a plain identifier`);
  const sslmode = url.searchParams.get("sslmode");
  url.searchParams.delete("table");
  url.searchParams.delete("sslmode");
  const sql = postgres(url.toString(), { max: 1, onnotice: () => undefined, ssl: sslmode === "disable" ? false : sslmode ? "require" : "prefer" });
  try {
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext(${`pulumi-state-table:${table}`}))`;
      await tx.unsafe(`create table if not exists ${table} (
        key text primary key,
        data json not null,
        updated_at timestamp with time zone not null default now()
      )`);
      await tx.unsafe(`create index if not exists ${table}_key_prefix_idx on ${table} (key text_pattern_ops)`);
    });
  } catch (error) {
    throw new Error(`cannot prepare the Pulumi state table "${table}" (${(error as Error).message})`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The backend in effect: PULUMI_BACKEND_URL when set, else the state database next to the service's (created). */
export async function resolveStateBackend(explicit: string | undefined, databaseUrl: string): Promise<string> {
  const backendUrl = explicit ?? defaultStateBackendUrl(databaseUrl);
  if (!explicit) await ensureStateDatabase(backendUrl, databaseUrl);
  await ensureStateTable(backendUrl);
  return backendUrl;
}
