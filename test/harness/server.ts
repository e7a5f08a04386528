/**
 * The service as a separate process, for end-to-end tests and benchmarks: api/server.ts built and started as
 * `npm start` does (scripts/build-server.mjs, then `node .build/server.js`) on a free port of 127.0.0.1 (PORT=0; the URL is read from its one stdout line), the two
 * database back ends it can run on (a scratch database on the PostgreSQL server of TEST_DATABASE_URL, or
 * the embedded server the service starts itself under its DATA_DIR, as with `npm start`), a JSON `call()` helper that records every response body, a server-sent-events reader, a
 * temporary Pulumi project/state for the service's stack runs, the customer's bootstrap role in moto, and a
 * loopback pass-through proxy in front of moto whose latency can be switched on (to make an `up` slow enough to
 * interrupt).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { CreateRoleCommand, EntityAlreadyExistsException, IAMClient } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import postgres from "postgres";
import { PROJECT_NAME } from "../../automation";
import { allowServerUser, destroyEmbeddedServer } from "../../db/embedded-server";
import { defaultStateBackendUrl } from "../../automation/state-backend";
import { isPulumiProcessOf } from "../../services/run/orphans";
import { testIdentityAuthority } from "./instance-identity";
import { REPO_ROOT } from "./moto";
import { startStsStandIn, type StsStandIn } from "./sts-standin";

const quiet = { onnotice: () => undefined };

// ---------------------------------------------------------------------------------------------------------------
// Database back ends

export interface ServerBackend {
  name: string;
  /** DATABASE_URL for the server (undefined: the embedded server under DATA_DIR) and how to drop it afterwards. */
  prepare(): Promise<{ databaseUrl?: string; cleanup(): Promise<void> }>;
}

/** A scratch database on the PostgreSQL server of TEST_DATABASE_URL, dropped by cleanup(). */
export async function scratchDatabase(prefix = "mxdr_e2e"): Promise<{ databaseUrl: string; cleanup(): Promise<void> }> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    throw new Error(
      "TEST_DATABASE_URL is not set: export TEST_DATABASE_URL=$(bash scripts/postgres.sh start) (npm test does this for you)",
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

export const realPostgres: ServerBackend = {
  name: "real PostgreSQL",
  prepare: () => scratchDatabase(),
};

export const embeddedServer: ServerBackend = {
  name: "the embedded server",
  async prepare() {
    return { databaseUrl: undefined, async cleanup() {} };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// The server process

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
  serverBuilt ??= promisify(execFile)(process.execPath, [join(REPO_ROOT, "scripts", "build-server.mjs")], { cwd: REPO_ROOT }).then(
    () => join(REPO_ROOT, ".build", "server.js"),
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
export async function startServer(
  env: Record<string, string | undefined>,
  { timeoutMs = 120_000, viaNpm = false, unset = [] as string[] } = {},
): Promise<Server> {
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
}): Record<string, string | undefined> {
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

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** A probe that throws is asked again until the deadline (whose error names the last failure); without it, the first throw ends the wait. */
  retryErrors?: boolean;
}

/** Polls `probe` until it answers something other than undefined or false; throws after timeoutMs. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  { timeoutMs = 180_000, intervalMs = 250, retryErrors = false }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      if (!retryErrors) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** waitFor with a file's own defaults (a call's options still win). */
export function waitForWith(defaults: WaitOptions) {
  return <T>(what: string, probe: () => Promise<T | undefined | false>, options: WaitOptions = {}): Promise<T> =>
    waitFor(what, probe, { ...defaults, ...options });
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export interface Call {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

export interface CallOptions {
  /** Bearer token; null: none; undefined: the client's default token. */
  token?: string | null;
  body?: unknown;
  /** A raw request body (sent as application/json unless a content-type header says otherwise). */
  raw?: string;
  headers?: Record<string, string>;
}

export type CallFn = (method: string, path: string, options?: CallOptions) => Promise<Call>;

/**
 * A JSON fetch helper bound to a server: parses the answer (text kept), and pushes every response body onto
 * `responses` (to prove later that no secret ever left the server).
 */
export function createCaller(target: { baseUrl: () => string; defaultToken?: () => string | undefined; responses?: string[] }): CallFn {
  return async (method, path, options = {}) => {
    const token = options.token === undefined ? target.defaultToken?.() : options.token;
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers["content-type"] ??= "application/json";
    const response = await fetch(`${target.baseUrl()}${path}`, { method, headers, body });
    const text = await response.text();
    target.responses?.push(text);
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  };
}

export interface ServerSentEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Reads a server-sent-events stream until an event named `until` (or the stream's end), returning the events in
 * order and the raw text. Rejects on a non-200 answer or after timeoutMs.
 */
export async function readEventStream(
  url: string,
  { token, until = "end", timeoutMs = 240_000, headers = {} }: { token?: string; until?: string; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<{ status: number; contentType: string | null; events: ServerSentEvent[]; text: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no "${until}" event within ${timeoutMs / 1000} s from ${url}`)), timeoutMs);
  try {
    const response = await fetch(url, {
      headers: { accept: "text/event-stream", ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal: controller.signal,
    });
    const contentType = response.headers.get("content-type");
    if (response.status !== 200 || !response.body) {
      return { status: response.status, contentType, events: [], text: await response.text() };
    }
    const decoder = new TextDecoder();
    const events: ServerSentEvent[] = [];
    let text = "";
    let buffer = "";
    const reader = response.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const chunk = decoder.decode(value, { stream: true });
      text += chunk;
      buffer += chunk.replace(/\r\n/g, "\n");
      let boundary: number;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const event: ServerSentEvent = { event: "message", data: "" };
        const data: string[] = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith(":") || line === "") continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.event = value;
          else if (field === "data") data.push(value);
          else if (field === "id") event.id = value;
        }
        event.data = data.join("\n");
        if (data.length === 0 && event.id === undefined && event.event === "message") continue;
        events.push(event);
        if (event.event === until) {
          await reader.cancel().catch(() => undefined);
          return { status: response.status, contentType, events, text };
        }
      }
    }
    return { status: response.status, contentType, events, text };
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pulumi project and state for the service's stack runs

export interface ServiceWorkspace {
  root: string;
  /** PULUMI_PROJECT_DIR: Pulumi.yaml (the repo's project name, `main` pointing at the repo's programs/tenant) and stacks/. */
  projectDir: string;
  /** PULUMI_BACKEND_URL: file://, or the service's default postgres:// backend (see temporaryServiceWorkspace). */
  backendUrl: string;
  /** DATA_DIR. */
  dataDir: string;
  passphrase: string;
  /** Environment for `pulumi` CLI commands against this project's state (export, up, ...). */
  cliEnv(): NodeJS.ProcessEnv;
  /** The service's environment for this workspace (merge with the rest). */
  serverEnv(): Record<string, string>;
  cleanup(): Promise<void>;
}

/**
 * A temp project dir like the repo's (same project name, runtime options and stackConfigDir; `main` is the repo's
 * programs/tenant, reached through symlinks so that the Node.js language host resolves `tsx` and the packages from
 * the repo's node_modules), a file state backend and a data dir. The service's runs use the inline program and only
 * need the project name and stackConfigDir; `pulumi up` with the CLI in this dir runs the same program.
 * With `defaultBackendOf` (the service's DATABASE_URL), the service gets no PULUMI_BACKEND_URL and uses its default,
 * the postgres:// backend next to that database; `backendUrl` and `cliEnv()` name the same backend.
 */
export async function temporaryServiceWorkspace(
  passphrase = `pp-${randomBytes(24).toString("base64url")}`,
  { defaultBackendOf }: { defaultBackendOf?: string } = {},
): Promise<ServiceWorkspace> {
  const root = await mkdtemp(join(tmpdir(), "mxdr-service-"));
  const projectDir = join(root, "project");
  const dataDir = join(root, "data");
  const stateDir = join(root, "state");
  await mkdir(join(projectDir, "stacks"), { recursive: true });
  await mkdir(dataDir, { recursive: true });
  await mkdir(stateDir, { recursive: true });
  // As root, the embedded PostgreSQL server (DATA_DIR/postgres) runs as the `postgres` user, which must reach it.
  await allowServerUser(root);
  await mkdir(join(projectDir, "programs"), { recursive: true });
  await symlink(join(REPO_ROOT, "programs", "tenant"), join(projectDir, "programs", "tenant"), "dir");
  await symlink(join(REPO_ROOT, "node_modules"), join(projectDir, "node_modules"), "dir");
  await writeFile(join(projectDir, "package.json"), await readFile(join(REPO_ROOT, "package.json"), "utf8"));
  await writeFile(
    join(projectDir, "Pulumi.yaml"),
    [
      `name: ${PROJECT_NAME}`,
      "description: Mini-XDR tenant onboarding (test project; the program is the repo's programs/tenant)",
      "runtime:",
      "  name: nodejs",
      "  options:",
      "    typescript: false",
      '    nodeargs: "--import=tsx"',
      "main: programs/tenant",
      "stackConfigDir: stacks",
      "",
    ].join("\n"),
  );
  const backendUrl = defaultBackendOf ? defaultStateBackendUrl(defaultBackendOf) : `file://${stateDir}`;
  return {
    root,
    projectDir,
    backendUrl,
    dataDir,
    passphrase,
    cliEnv: () => ({
      ...process.env,
      PULUMI_BACKEND_URL: backendUrl,
      PULUMI_CONFIG_PASSPHRASE: passphrase,
      PULUMI_HOME: join(dataDir, "pulumi-home"),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      NO_COLOR: "1",
    }),
    serverEnv: () => ({
      DATA_DIR: dataDir,
      PULUMI_PROJECT_DIR: projectDir,
      ...(defaultBackendOf ? {} : { PULUMI_BACKEND_URL: backendUrl }),
      PULUMI_SECRETS_PROVIDER: "passphrase",
      PULUMI_CONFIG_PASSPHRASE: passphrase,
    }),
    async cleanup() {
      // An embedded server the service left running (a service killed with SIGKILL does not stop it).
      await destroyEmbeddedServer(join(dataDir, "postgres"));
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Runs the repo's pinned `pulumi` CLI (.tools/bin) with the given environment; never throws on a non-zero exit. */
export async function pulumiCli(
  args: string[],
  { cwd, env }: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const bin = join(REPO_ROOT, ".tools", "bin", "pulumi");
  const child = spawn(bin, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (exitCode) => resolve(exitCode));
  });
  return { code, stdout, stderr };
}

/** How many updates a stack's history holds (`pulumi stack history`); throws when the CLI fails. */
export async function stackHistoryLength(workspace: ServiceWorkspace, stackName: string): Promise<number> {
  const history = await pulumiCli(["stack", "history", "--stack", stackName, "--json", "--non-interactive"], {
    cwd: workspace.projectDir,
    env: workspace.cliEnv(),
  });
  if (history.code !== 0) throw new Error(`pulumi stack history --stack ${stackName} exited ${history.code}: ${history.stderr}`);
  return (JSON.parse(history.stdout) as unknown[]).length;
}

/** Live `pulumi` CLI processes working on a stack (Linux /proc; zombies left out). */
export async function pulumiProcessesOf(stackName: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const args = await readFile(`/proc/${entry}/cmdline`, "utf8").then((text) => text.split("\0"), () => []);
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    if (isPulumiProcessOf(args, stackName) && !/^\d+ \(.*\) Z/.test(stat)) pids.push(Number(entry));
  }
  return pids;
}

// ---------------------------------------------------------------------------------------------------------------
// The customer's AWS account in moto

/** Credentials acting in `accountId` on moto (moto maps assumed-role credentials to the role's account). */
export async function customerAccountCredentials(accountId: string) {
  // The customer acts as the account's owner: straight to moto, never through a test's STS stand-in.
  const sts = new STSClient({ region: "us-east-1", ...(process.env.AWS_ENDPOINT_URL ? { endpoint: process.env.AWS_ENDPOINT_URL } : {}) });
  try {
    const assumed = await sts.send(
      new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${accountId}:role/OrganizationAccountAccessRole`, RoleSessionName: "mini-xdr-test-setup" }),
    );
    return {
      accessKeyId: assumed.Credentials!.AccessKeyId!,
      secretAccessKey: assumed.Credentials!.SecretAccessKey!,
      sessionToken: assumed.Credentials!.SessionToken!,
    };
  } finally {
    sts.destroy();
  }
}

/** An Amazon Linux AMI id moto knows. */
export const LINUX_AMI = "ami-760aaa0f";

/** Launches `count` Linux instances in the customer's account, tagged Name=web and xdr:monitor=true; their ids, sorted. */
export async function launchMonitoredInstances(accountId: string, { region = "us-east-1", count = 2 } = {}): Promise<string[]> {
  const ec2 = new EC2Client({ region, credentials: await customerAccountCredentials(accountId) });
  try {
    const launched = await ec2.send(
      new RunInstancesCommand({
        ImageId: LINUX_AMI,
        MinCount: count,
        MaxCount: count,
        InstanceType: "t3.micro",
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "web" }, { Key: "xdr:monitor", Value: "true" }] }],
      }),
    );
    return launched.Instances!.map((instance) => instance.InstanceId!).sort();
  } finally {
    ec2.destroy();
  }
}

/**
 * Creates the customer's bootstrap role in moto (what the customer's CloudFormation quick-create stack would do): it
 * trusts the platform's account with an `sts:ExternalId` condition (`externalId: null`: WITHOUT one, the careless
 * role a confused deputy would assume). Idempotent: an existing role is left as it is. Returns the role ARN.
 */
export async function createBootstrapRole({
  accountId,
  roleName,
  externalId,
  trustedAccountId = "123456789012",
}: {
  accountId: string;
  roleName: string;
  externalId: string | null;
  trustedAccountId?: string;
}): Promise<string> {
  const iam = new IAMClient({ region: "us-east-1", credentials: await customerAccountCredentials(accountId) });
  try {
    await iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { AWS: `arn:aws:iam::${trustedAccountId}:root` },
              Action: "sts:AssumeRole",
              ...(externalId === null ? {} : { Condition: { StringEquals: { "sts:ExternalId": externalId } } }),
            },
          ],
        }),
        Tags: [{ Key: "mini-xdr:purpose", Value: "bootstrap" }],
      }),
    );
  } catch (error) {
    if (!(error instanceof EntityAlreadyExistsException)) throw error;
  } finally {
    iam.destroy();
  }
  return `arn:aws:iam::${accountId}:role/${roleName}`;
}

// ---------------------------------------------------------------------------------------------------------------
// A pass-through proxy in front of moto that can hold requests

export interface ProxiedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface HoldingProxy {
  url: string;
  /** Requests forwarded so far. */
  readonly forwarded: number;
  /** Requests held (never forwarded) so far. */
  readonly held: number;
  /**
   * From now on, requests the predicate accepts are held: never forwarded, never answered (until close()), so the
   * AWS call they carry never happens. null: forward everything again (held requests stay held).
   */
  hold(predicate: ((request: ProxiedRequest) => boolean) | null): void;
  /** Forwards every request held so far (their answers reach the callers late, as from a slow AWS). */
  release(): void;
  /** Drops the connections of the requests held so far (their clients see a reset and retry). */
  drop(): void;
  close(): Promise<void>;
}

/** STS calls (AssumeRole, GetCallerIdentity): a provider configures with them; they change nothing. */
export const isStsCall = (request: ProxiedRequest) => /(^|&)Action=(AssumeRole|GetCallerIdentity)(&|$)/.test(request.body);

/** Forwards every request to `target` (moto) on loopback, except those it was told to hold. */
export async function startHoldingProxy(target: string): Promise<HoldingProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const state = { forwarded: 0, held: 0, predicate: null as ((request: ProxiedRequest) => boolean) | null };
  const parked = new Set<http.ServerResponse>();
  const heldForwards = new Map<http.ServerResponse, () => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const request = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers, body: body.toString("utf8") };
      const forward = () => {
        state.forwarded++;
        const outbound = http.request(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        outbound.on("error", (error) => {
          if (!res.headersSent) res.writeHead(502);
          res.end(String(error));
        });
        outbound.end(body);
      };
      if (state.predicate?.(request)) {
        state.held++;
        parked.add(res);
        heldForwards.set(res, forward);
        res.on("close", () => {
          parked.delete(res);
          heldForwards.delete(res);
        });
        return;
      }
      forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get forwarded() {
      return state.forwarded;
    },
    get held() {
      return state.held;
    },
    hold(predicate) {
      state.predicate = predicate;
    },
    release() {
      const forwards = [...heldForwards.values()];
      heldForwards.clear();
      parked.clear();
      for (const forward of forwards) forward();
    },
    drop() {
      heldForwards.clear();
      for (const res of parked) res.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of parked) res.destroy();
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Process figures

/** VmHWM (peak resident set, KiB) and VmRSS of a live process, from /proc; undefined when it is gone. */
export async function processMemory(pid: number): Promise<{ hwmKiB: number; rssKiB: number } | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { hwmKiB: field("VmHWM"), rssKiB: field("VmRSS") };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `pid` (children, grandchildren, ...), from /proc. */
export async function descendantsOf(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(after[1]);
    if (!Number.isInteger(ppid)) continue;
    const list = parents.get(ppid) ?? [];
    list.push(Number(entry));
    parents.set(ppid, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}
