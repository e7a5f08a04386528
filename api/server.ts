/**
 * The service entry: reads the configuration once (config/service-config.ts), opens the database
 * (migrations applied), registers the first admin token, builds the app and serves it on
 * HOST:PORT. SIGTERM / SIGINT close the listener, then the database, and exit.
 */
import { serve } from "@hono/node-server";
import { createKeyring } from "../db/crypto";
import { openDatabase } from "../db/client";
import { loadServiceConfig, resolveCredentialsKey, ServiceConfigError } from "../config/service-config";
import { createApp } from "./app";
import { ensureBootstrapAdmin } from "./bootstrap-admin";

const log = (message: string) => process.stderr.write(`${message}\n`);

async function main(): Promise<void> {
  const config = loadServiceConfig(process.env);
  const key = await resolveCredentialsKey(config, log);
  const keyring = createKeyring({ key: key.key });
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR });

  const bootstrap = await ensureBootstrapAdmin(database.db, config.ADMIN_TOKEN);
  if (bootstrap?.generatedToken) {
    log(
      `\n  No ADMIN_TOKEN was set and no admin token existed: generated one. It is shown ONCE, only its hash is stored:\n\n` +
        `    ${bootstrap.generatedToken}\n\n`,
    );
  }

  const app = createApp({
    database,
    keyring,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    bootstrapTemplateUrl: config.BOOTSTRAP_TEMPLATE_URL,
    platformPrincipalArn: config.PLATFORM_PRINCIPAL_ARN,
    log,
  });

  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (info) => {
    const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
    // The one stdout line: tests and scripts read the URL from it.
    process.stdout.write(`listening on http://${host}:${info.port} (database: ${database.backend})\n`);
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    const force = setTimeout(() => {
      log("shutdown timed out; exiting");
      process.exit(1);
    }, 10_000);
    force.unref();
    server.close(async () => {
      try {
        await database.close();
      } finally {
        process.exit(0);
      }
    });
    // Idle keep-alive connections would hold close() open.
    (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  if (error instanceof ServiceConfigError) log(error.message);
  else log(`failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
