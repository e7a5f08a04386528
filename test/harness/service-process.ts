/**
 * The service as a separate process, for end-to-end tests and benchmarks: api/server.ts built and started as
 * `npm start` does (scripts/build-server.mjs, then `node .build/server.js`) on a free port of 127.0.0.1 (PORT=0; the
 * URL is read from its one stdout line), with an STS stand-in in front of moto for its AssumeRole calls.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { testIdentityAuthority } from "./instance-identity";
import { REPO_ROOT } from "./moto";
import { startStsStandIn, type StsStandIn } from "./sts-standin";

/** Environment variables for a server process; undefined ones are left unset. */
export type ServerEnv = Record<string, string | undefined>;

export interface Server {
  baseUrl: string;
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** The STS stand-in the service's AssumeRole calls go to (started with it, stopped when it exits). */
  sts?: StsStandIn;
}

/** What the harness's customer roles trust; the service's identity in moto's default account. */
const DEFAULT_CALLER_PRINCIPAL_ARN = "arn:aws:iam::123456789012:role/MiniXdrPlatform";

/** Variables the server reads that must never leak in from the shell running the tests. */
const SERVER_VARIABLES = [
  "DATABASE_URL",
  "PULUMI_CLI_ENV_PASSTHROUGH",
  "SHUTDOWN_GRACE_SECONDS",
  "ADMIN_TOKEN",
  "CREDENTIALS_ENCRYPTION_KEY",
  "PORT",
  "HOST",
  "DATA_DIR",
  "PLATFORM_PRINCIPAL_ARN",
  "PLATFORM_ACCOUNT_IDS",
  "BOOTSTRAP_TEMPLATE_BUCKET",
  "BOOTSTRAP_TEMPLATE_BUCKET_REGION",
  "BOOTSTRAP_WAIT_SECONDS",
  "BODY_LIMIT_BYTES",
  "PULUMI_BACKEND_URL",
  "PULUMI_SECRETS_PROVIDER",
  "PULUMI_PROJECT_DIR",
  "MAX_CONCURRENT_RUNS",
  "DATABASE_POOL_MAX",
  "RUN_TIMEOUT_PREVIEW_SECONDS",
  "RUN_TIMEOUT_UP_SECONDS",
  "RUN_TIMEOUT_REFRESH_SECONDS",
  "RUN_TIMEOUT_DESTROY_SECONDS",
  "RUN_TIMEOUT_DRIFT_SECONDS",
  "RUN_STOP_GRACE_SECONDS",
  "RUN_WORKER",
  "AGENT_VERSION",
  "AGENT_IDENTITY_CERTIFICATES_FILE",
  "DISCOVERY_SCHEDULE",
  "RECOVERY_SWEEP_SECONDS",
  "CREDENTIALS_KMS_KEY_ID",
  "CREDENTIALS_KMS_REGION",
  "CREDENTIALS_KMS_REFRESH_SECONDS",
  "CREDENTIALS_PREVIOUS_ENCRYPTION_KEYS",
  "LOG_LEVEL",
  "DRIFT_SCHEDULE",
  "DRIFT_MAX_CONCURRENCY",
  "WEBHOOK_ALLOW_HTTP_LOOPBACK",
  "WEBHOOK_PLATFORM_ALLOW_LOOPBACK",
  "WEBHOOK_MAX_PER_TENANT",
  "WEBHOOK_MAX_CONCURRENT_DELIVERIES",
  "WEBHOOK_MAX_CONCURRENT_PER_HOST",
  "WEBHOOK_MAX_CONCURRENT_PER_TENANT",
  "WEBHOOK_TIMEOUT_SECONDS",
  "WEBHOOK_CONNECT_TIMEOUT_SECONDS",
  "WEBHOOK_MAX_ATTEMPTS",
  "WEBHOOK_RETRY_BASE_SECONDS",
  "WEBHOOK_RETRY_MAX_SECONDS",
  "MAX_QUEUED_RUNS_PER_TENANT",
  "MAX_EVENT_STREAMS_PER_TENANT",
  "AUTH_FAILURE_LIMIT",
  "AUTH_FAILURE_WINDOW_SECONDS",
  "TRUSTED_PROXY_HOPS",
];

let serverBuilt: Promise<string> | undefined;

/** .build/server.js, built from the current sources once per test process (as scripts/start.sh does at each start). */
export function buildServer(): Promise<string> {
  serverBuilt ??= promisify(execFile)(process.execPath, [join(REPO_ROOT, "scripts", "build-server.mjs")], { cwd: REPO_ROOT }).then(() =>
    join(REPO_ROOT, ".build", "server.js"),
  );
  serverBuilt.catch(() => (serverBuilt = undefined));
  return serverBuilt;
}

/**
 * Starts the service as `npm start` does (`node .build/server.js`, built by buildServer()), or with `npm start` itself
 * (`viaNpm`: then `child` is npm's own process, as a supervisor sees it); resolves once it printed
 * `listening on http://127.0.0.1:N`, rejects if it exits first. `unset` names variables of this process to leave out.
 * Its STS calls go to an STS stand-in that answers AssumeRole as AWS does (moto grants any), unless `env` names
 * AWS_ENDPOINT_URL_STS itself.
 */
export async function startServer(env: ServerEnv, { timeoutMs = 120_000, viaNpm = false, unset = [] as string[] } = {}): Promise<Server> {
  const entry = viaNpm ? undefined : await buildServer();
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const key of [...SERVER_VARIABLES, ...unset]) delete childEnv[key];
  // The test stand-in AWS provider keeps its state where the global setup says (the CLI passes only an allowlist).
  childEnv.PULUMI_CLI_ENV_PASSTHROUGH = "STANDIN_AWS_STATE_DIR";
  for (const [key, value] of Object.entries(env)) if (value !== undefined) childEnv[key] = value;
  const sts =
    env.AWS_ENDPOINT_URL_STS === undefined && process.env.AWS_ENDPOINT_URL
      ? await startStsStandIn({
          motoUrl: process.env.AWS_ENDPOINT_URL,
          forwardUrl: childEnv.AWS_ENDPOINT_URL,
          callerPrincipalArn: env.PLATFORM_PRINCIPAL_ARN ?? DEFAULT_CALLER_PRINCIPAL_ARN,
        })
      : undefined;
  if (sts) childEnv.AWS_ENDPOINT_URL_STS = sts.url;
  const child = viaNpm
    ? spawn("npm", ["start"], { cwd: REPO_ROOT, env: childEnv, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(process.execPath, [entry!], { cwd: REPO_ROOT, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code))).then(async (code) => {
    await sts?.stop();
    return code;
  });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs / 1000} s; stderr:\n${err}`)), timeoutMs);
    const check = () => {
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening; stderr:\n${err}`));
    });
  });
  return { baseUrl, child, stdout: () => out, stderr: () => err, exited, ...(sts ? { sts } : {}) };
}

/**
 * What every test server needs from the environment: loopback on a free port, its database (undefined: the embedded
 * server under DATA_DIR), the admin token, the credentials key and the platform principal (an undefined one is left unset).
 */
export function serverEnvFor({
  databaseUrl,
  adminToken,
  encryptionKey,
  platformPrincipalArn,
}: {
  databaseUrl: string | undefined;
  adminToken: string;
  encryptionKey: string | undefined;
  platformPrincipalArn: string | undefined;
}): ServerEnv {
  return {
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: databaseUrl,
    ADMIN_TOKEN: adminToken,
    CREDENTIALS_ENCRYPTION_KEY: encryptionKey,
    PLATFORM_PRINCIPAL_ARN: platformPrincipalArn,
    // Agents of the tests enroll with identity documents signed by the test CA (test/harness/instance-identity.ts).
    AGENT_IDENTITY_CERTIFICATES_FILE: testIdentityAuthority().trustFile,
  };
}

/** SIGTERM (clean shutdown, resolves to the exit code) or SIGKILL (a crash); a no-op when it already exited. */
export async function stopServer(server: Server | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (!server) return null;
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal);
  return server.exited;
}
