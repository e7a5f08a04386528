/**
 * The default Pulumi state backend: the CLI's `postgres://` DIY backend in the service's own PostgreSQL server, in a
 * database of its own named after the service's (`mini_xdr` -> `mini_xdr_state`), created when missing. The CLI
 * creates its table (`pulumi_state`) there. An explicit PULUMI_BACKEND_URL (file://, s3://, Pulumi Cloud, another
 * postgres://) replaces it.
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
    throw new Error(
      `cannot create the Pulumi state database "${database}" (${(error as Error).message}); create it, or set PULUMI_BACKEND_URL`,
    );
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** The backend in effect: PULUMI_BACKEND_URL when set, else the state database next to the service's (created). */
export async function resolveStateBackend(explicit: string | undefined, databaseUrl: string): Promise<string> {
  if (explicit) return explicit;
  const backendUrl = defaultStateBackendUrl(databaseUrl);
  await ensureStateDatabase(backendUrl, databaseUrl);
  return backendUrl;
}
