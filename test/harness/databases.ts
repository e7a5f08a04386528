/** The database the tests run against: a scratch database on the PostgreSQL server of TEST_DATABASE_URL (exported by
 * npm test from scripts/postgres.sh, the embedded server; test/harness/global-setup.ts starts it when unset). */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { openDatabase, type Database } from "../../db/client";

const quiet = { onnotice: () => undefined };

export interface Backend {
  name: string;
  open(): Promise<{ database: Database; cleanup(): Promise<void> }>;
}

export const realPostgres: Backend = {
  name: "real PostgreSQL (TEST_DATABASE_URL)",
  async open() {
    const url = process.env.TEST_DATABASE_URL;
    if (!url) {
      throw new Error(
        "TEST_DATABASE_URL is not set, so the real-PostgreSQL half of this suite cannot run. " +
          "Start a throwaway server and export its URL: export TEST_DATABASE_URL=$(bash scripts/postgres.sh start) " +
          "(npm test does this for you).",
      );
    }
    // A scratch database per run: migrations are applied from empty, and parallel runs do not collide.
    const scratch = `mxdr_test_${process.pid}_${randomBytes(3).toString("hex")}`;
    const admin = postgres(url, { max: 1, ...quiet });
    await admin.unsafe(`create database "${scratch}"`);
    const scratchUrl = new URL(url);
    scratchUrl.pathname = `/${scratch}`;
    const dataDir = await mkdtemp(join(tmpdir(), "mxdr-db-test-"));
    try {
      const database = await openDatabase({ databaseUrl: scratchUrl.toString(), dataDir });
      return {
        database,
        async cleanup() {
          await database.close();
          await admin.unsafe(`drop database if exists "${scratch}" with (force)`);
          // The postgres:// Pulumi state database next to it (automation/state-backend.ts), when a test made one.
          await admin.unsafe(`drop database if exists "${scratch}_state" with (force)`);
          await admin.end();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      await admin.unsafe(`drop database if exists "${scratch}" with (force)`).catch(() => undefined);
      await admin.end();
      throw error;
    }
  },
};
