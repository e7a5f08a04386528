/** The database the tests run against: a scratch database on the PostgreSQL server of TEST_DATABASE_URL (exported by
 * npm test from scripts/postgres.sh, the embedded server; test/harness/global-setup.ts starts it when unset). */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, type Database } from "../../db/client";
import { scratchDatabase } from "./scratch-database";

export interface Backend {
  name: string;
  open(): Promise<{ database: Database; cleanup(): Promise<void> }>;
}

export const realPostgres: Backend = {
  name: "real PostgreSQL (TEST_DATABASE_URL)",
  async open() {
    // A scratch database per run: migrations are applied from empty, and parallel runs do not collide.
    const scratch = await scratchDatabase("mxdr_test");
    const dataDir = await mkdtemp(join(tmpdir(), "mxdr-db-test-"));
    try {
      const database = await openDatabase({ databaseUrl: scratch.databaseUrl, dataDir });
      return {
        database,
        async cleanup() {
          await database.close();
          await scratch.cleanup();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      await scratch.cleanup().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
      throw error;
    }
  },
};
