/**
 * The service in-process, built as production builds it (platform/create-platform.ts from a validated configuration)
 * over a scratch database of the test PostgreSQL server: for integration tests that call the HTTP app without a
 * process around it. Without `RUN_WORKER=true` in `env` its queues only enqueue: no stack run, scan or wait executes.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../api/app";
import { loadServiceConfig, type ServiceEnv } from "../../platform/config";
import { createPlatform, type Platform } from "../../platform/create-platform";
import { testIdentityAuthority } from "./instance-identity";
import { scratchDatabase } from "./scratch-database";

export interface TestPlatform {
  platform: Platform;
  /** Its database and Pulumi state backend: a replica started with `shareWith` uses the same. */
  databaseUrl: string;
  backendUrl: string;
  app: ReturnType<typeof createApp>;
  /** The platform-admin token (ADMIN_TOKEN). */
  adminToken: string;
  /** Drains and closes the platform, drops its database and files. */
  stop(): Promise<void>;
  /** Drains and closes the platform alone (a replica going away): its database and state stay for the others. */
  stopService(): Promise<void>;
}

export interface TestPlatformOptions {
  /** Configuration variables over the test defaults (a scratch database, a random credentials key, no workers). */
  env?: Partial<Record<keyof ServiceEnv, string>>;
  /** Where the app reports an unexpected server error; default: the test fails (throws). */
  onServerError?(message: string): void;
  /** Start a replica of this platform: the same database and state backend (which the first one owns and drops). */
  shareWith?: TestPlatform;
}

export async function startTestPlatform({ env = {}, onServerError, shareWith }: TestPlatformOptions = {}): Promise<TestPlatform> {
  const scratch = shareWith ? { databaseUrl: shareWith.databaseUrl, cleanup: async () => undefined } : await scratchDatabase("mxdr_platform");
  const dataDir = await mkdtemp(join(tmpdir(), "mxdr-platform-"));
  const adminToken = env.ADMIN_TOKEN ?? shareWith?.adminToken ?? `mxdr-admin_${randomBytes(32).toString("base64url")}`;
  const backendUrl = shareWith?.backendUrl ?? `file://${join(dataDir, "state")}`;
  try {
    const config = loadServiceConfig({
      DATABASE_URL: scratch.databaseUrl,
      DATA_DIR: dataDir,
      RUN_WORKER: "false",
      ADMIN_TOKEN: adminToken,
      LOG_LEVEL: "warn",
      CREDENTIALS_ENCRYPTION_KEY: shareWith?.platform.config.CREDENTIALS_ENCRYPTION_KEY ?? randomBytes(32).toString("base64"),
      PULUMI_BACKEND_URL: backendUrl,
      PULUMI_CONFIG_PASSPHRASE: "test-passphrase",
      // Agents of the tests enroll with identity documents signed by the test CA (test/harness/instance-identity.ts).
      AGENT_IDENTITY_CERTIFICATES_FILE: testIdentityAuthority().trustFile,
      ...env,
    });
    const platform = await createPlatform(config);
    const app = createApp({
      ...platform,
      log:
        onServerError ??
        ((message) => {
          throw new Error(`unexpected server error: ${message}`);
        }),
    });
    let stopped: Promise<void> | undefined;
    const stopService = () => {
      stopped ??= platform.drain().then(() => platform.close());
      return stopped;
    };
    return {
      platform,
      app,
      adminToken,
      databaseUrl: scratch.databaseUrl,
      backendUrl,
      stopService,
      async stop() {
        await stopService();
        await scratch.cleanup();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await scratch.cleanup();
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}
