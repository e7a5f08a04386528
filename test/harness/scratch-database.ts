/**
 * A scratch database on the PostgreSQL server of TEST_DATABASE_URL (npm test exports it from scripts/postgres.sh, the
 * embedded server; test/harness/global-setup.ts starts it when unset), for a service process or for a test's own
 * connection (test/harness/databases.ts).
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";

const quiet = { onnotice: () => undefined };

/** A scratch database on the PostgreSQL server of TEST_DATABASE_URL, dropped by cleanup(). */
export async function scratchDatabase(prefix = "mxdr_e2e"): Promise<{ databaseUrl: string; cleanup(): Promise<void> }> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    throw new Error(
      "TEST_DATABASE_URL is not set, so no scratch database can be made on a real PostgreSQL server. " +
        "Start a throwaway server and export its URL: export TEST_DATABASE_URL=$(bash scripts/postgres.sh start) " +
        "(npm test does this for you).",
    );
  }
  const scratch = `${prefix}_${process.pid}_${randomBytes(3).toString("hex")}`;
  const admin = postgres(url, { max: 1, ...quiet });
  await admin.unsafe(`create database "${scratch}"`);
  const scratchUrl = new URL(url);
  scratchUrl.pathname = `/${scratch}`;
  return {
    databaseUrl: scratchUrl.toString(),
    async cleanup() {
      await admin.unsafe(`drop database if exists "${scratch}" with (force)`);
      // The service's default Pulumi state database next to it (automation/state-backend.ts), when it made one.
      await admin.unsafe(`drop database if exists "${scratch}_state" with (force)`);
      await admin.end();
    },
  };
}
