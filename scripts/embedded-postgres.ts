/**
 * The embedded PostgreSQL server from the shell (db/embedded-server.ts); used by scripts/postgres.sh (the test
 * suite's throwaway server) and scripts/pulumi.sh (the Pulumi state backend of `npm run pulumi`).
 *
 *   node --import tsx scripts/embedded-postgres.ts start   --dir D --database NAME [--throwaway]   prints the URL
 *   node --import tsx scripts/embedded-postgres.ts status  --dir D --database NAME                  URL, or exit 3
 *   node --import tsx scripts/embedded-postgres.ts stop    --dir D [--if-idle]
 *   node --import tsx scripts/embedded-postgres.ts destroy --dir D
 *   node --import tsx scripts/embedded-postgres.ts state-url
 *       the service's configuration (platform/config.ts: PULUMI_BACKEND_URL, DATABASE_URL, DATA_DIR) decides the Pulumi
 *       state backend exactly as the service does: line 1 the URL, line 2 `started` when this call started the
 *       embedded server (the caller stops it afterwards with `stop --if-idle --dir <DATA_DIR>/postgres`), else `-`.
 *
 * Only URLs go to stdout; everything else to stderr.
 */
import { parseArgs } from "node:util";
import { EMBEDDED_DATABASE, embeddedServerDir } from "../db/client";
import { destroyEmbeddedServer, embeddedServerStatus, ensureEmbeddedServer, stopEmbeddedServer } from "../db/embedded-server";
import { loadServiceConfig } from "../platform/config";
import { resolveStateBackend } from "../automation/state-backend";

/** Test data only: durability off. */
const THROWAWAY_SETTINGS = { fsync: "off", synchronous_commit: "off", full_page_writes: "off" };

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      dir: { type: "string" },
      database: { type: "string", default: "postgres" },
      throwaway: { type: "boolean", default: false },
      "if-idle": { type: "boolean", default: false },
    },
  });
  const command = positionals[0] ?? "start";
  const dir = () => {
    if (!values.dir) throw new Error(`${command} needs --dir <cluster directory>`);
    return values.dir;
  };
  switch (command) {
    case "start": {
      const server = await ensureEmbeddedServer({
        dir: dir(),
        databases: [values.database!],
        settings: values.throwaway ? THROWAWAY_SETTINGS : undefined,
      });
      process.stdout.write(`${server.url(values.database!)}\n`);
      return 0;
    }
    case "status": {
      const server = await embeddedServerStatus(dir());
      if (!server) {
        process.stderr.write("not running\n");
        return 3;
      }
      process.stdout.write(`${server.url(values.database!)}\n`);
      return 0;
    }
    case "stop":
      if (!(await stopEmbeddedServer(dir(), { onlyIfIdle: values["if-idle"] }))) process.stderr.write("not stopped (not running, or in use)\n");
      return 0;
    case "destroy":
      await destroyEmbeddedServer(dir());
      return 0;
    case "state-url": {
      const config = loadServiceConfig(process.env);
      if (config.PULUMI_BACKEND_URL) {
        process.stdout.write(`${config.PULUMI_BACKEND_URL}\n-\n`);
        return 0;
      }
      let databaseUrl = config.DATABASE_URL;
      let started = false;
      if (!databaseUrl) {
        const server = await ensureEmbeddedServer({ dir: embeddedServerDir(config.DATA_DIR), databases: [EMBEDDED_DATABASE] });
        databaseUrl = server.url(EMBEDDED_DATABASE);
        started = server.started;
      }
      process.stdout.write(`${await resolveStateBackend(undefined, databaseUrl)}\n${started ? "started" : "-"}\n`);
      return 0;
    }
    default:
      process.stderr.write(`usage: embedded-postgres.ts start|status|stop|destroy|state-url [--dir D] [--database NAME] [--throwaway] [--if-idle]\n`);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`embedded-postgres: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
