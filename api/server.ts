/**
 * The service entry: reads the configuration once (platform/config.ts), creates the platform (platform/create-platform.ts:
 * database with migrations, first admin token, recovery, queues, every service), serves the app on HOST:PORT.
 * SIGTERM / SIGINT close the listener and drain the platform: running stack operations get SHUTDOWN_GRACE_SECONDS to
 * finish, the rest are cancelled and their runs marked interrupted; then the database (the embedded server too) is
 * closed and the process exits.
 */
import { serve } from "@hono/node-server";
import { shutdownDeadlineSeconds } from "../lib/shutdown";
import { loadServiceConfig, ServiceConfigError } from "../platform/config";
import { createPlatform } from "../platform/create-platform";
import { createApp } from "./app";

/** Before the logger exists (bad configuration, a failed start). */
const writeStderr = (message: string) => process.stderr.write(`${message}\n`);

async function main(): Promise<void> {
  const config = loadServiceConfig(process.env);
  const platform = await createPlatform(config, { environment: process.env });
  const { log, logger } = platform;
  const app = createApp(platform);

  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (info) => {
    const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
    // The one stdout line: tests and scripts read the URL from it.
    const tokenNote = platform.adminTokenFile ? `; the first admin token is in ${platform.adminTokenFile}` : "";
    process.stdout.write(`listening on http://${host}:${info.port} (database: ${platform.database.backend}${tokenNote})\n`);
    // Without an identity provider, the operator signs in through a single-use link, as Jupyter does.
    void platform.services.identity
      .issueOperatorSignInLink()
      .then(({ token, expiresAt }) =>
        process.stdout.write(
          `sign in as the platform operator: http://${host}:${info.port}/auth/sign-in-link/${token} (once, until ${expiresAt.toISOString()})\n`,
        ),
      )
      .catch((error: unknown) => log(`the operator sign-in link could not be issued: ${error instanceof Error ? error.message : String(error)}`));
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down: no new jobs; running stack operations get ${config.SHUTDOWN_GRACE_SECONDS} s to finish`);
    // A last resort only: the drain is bounded by the grace period and the cancel window.
    const force = setTimeout(() => {
      log("shutdown timed out; exiting");
      logger.flush();
      process.exit(1);
    }, shutdownDeadlineSeconds(config.SHUTDOWN_GRACE_SECONDS) * 1000);
    force.unref();
    let code = 0;
    try {
      server.close();
      // Idle keep-alive connections would hold the listener open.
      (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      await platform.drain();
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      await platform.close();
    } catch (error) {
      code = 1;
      log(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      logger.flush();
      process.exit(code);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  if (error instanceof ServiceConfigError) writeStderr(error.message);
  else writeStderr(`failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
