/**
 * The whole service under test, as the end-to-end tests and the benchmarks run it: its database (a scratch database
 * on TEST_DATABASE_URL's server, or the embedded server the service starts itself), its workspace (Pulumi project,
 * state and DATA_DIR), the stand-ins it needs (a holding proxy in front of moto, the SSM stand-in; every server
 * process gets its own STS stand-in from startServer), the server process (restartable; or several replicas
 * sharing the database), and a client bound to it: an admin caller that records every answer, and the tenant steps
 * through the API.
 *
 *   const service = serviceUnderTest({ name: "flow", workspace: "database-state", holdingProxy: true });
 *   it("...", async () => { await service.onboard(tenant); ... service.call("GET", ...) ... });
 *
 * serviceUnderTest() sets it up in a beforeAll of the calling file or describe block (a failure fails every test with
 * its reason: nothing is skipped) and takes it down in afterAll; startServiceUnderTest() does the same without
 * vitest (benchmarks, a test's own short-lived service), close() takes it down.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll } from "vitest";
import { allowServerUser } from "../../db/embedded-server";
import { createCaller, type Call, type CallFn } from "./caller";
import { isStsCall, startHoldingProxy, type HoldingProxy } from "./holding-proxy";
import { scratchDatabase } from "./scratch-database";
import { startServer, serverEnvFor, stopServer, type Server, type ServerEnv } from "./service-process";
import { temporaryServiceWorkspace, type ServiceWorkspace } from "./service-workspace";
import { startSsmStandIn, type SsmStandIn } from "./ssm-standin";
import { setupOrFailEveryTest } from "./suite";
import {
  connectAwsThroughApi,
  createTenantThroughApi,
  issueTenantTokenThroughApi,
  offboardThroughApi,
  onboardThroughApi,
  PLATFORM_PRINCIPAL_ARN,
  waitForRunToSettle,
  type CreateTenantOptions,
} from "./tenants";
import { waitFor, type WaitOptions } from "./wait-for";

export interface ServiceUnderTestOptions {
  /** Names its scratch database (mxdr_<name>_...) and temp dirs. */
  name: string;
  /** "scratch" (default): a scratch database; "embedded": the service's own embedded server under DATA_DIR, as `npm start`. */
  database?: "scratch" | "embedded";
  /**
   * - "file-state" (default): a temp project dir like the repo's with a file state backend (temporaryServiceWorkspace);
   * - "database-state": the same, the state in the service's default postgres:// backend next to its database (what
   *   replicas share);
   * - "data-dir": a temp DATA_DIR only; the project dir and state backend are the service's defaults.
   */
  workspace?: "file-state" | "database-state" | "data-dir";
  /** The Pulumi passphrase every server gets (default: a random one); null: none, so the service generates its own into DATA_DIR. */
  passphrase?: string | null;
  /** CREDENTIALS_ENCRYPTION_KEY (default: a random one); null: none (a KMS key in `env` then). */
  encryptionKey?: string | null;
  /** PLATFORM_PRINCIPAL_ARN (default: the harness's); null: unset. */
  platformPrincipalArn?: string | null;
  /** The service reaches AWS through a holding proxy in front of moto (`proxy`), to catch a run mid-call. */
  holdingProxy?: boolean;
  /** The SSM calls moto lacks answered by the SSM stand-in (`ssm`), optionally for one account only. */
  ssmStandIn?: boolean | { accountId: string };
  /** More server environment; a function is asked at every start (a setting that changes across restarts). */
  env?: ServerEnv | (() => ServerEnv);
  /** Whether set-up starts the server (default true); else the tests start it, or replicas. */
  startAtSetUp?: boolean;
  /** Starts it with `npm start` (`server.child` is npm's own process, as a supervisor sees it). */
  viaNpm?: boolean;
  startTimeoutMs?: number;
  /** Defaults of settledRun and offboardAll's waits. */
  wait?: WaitOptions;
  /** After the database, workspace and stand-ins, before the server starts. */
  beforeServerStart?: (service: ServiceUnderTest) => Promise<unknown>;
  /** Last in set-up (after the server started, when it does). */
  setUp?: (service: ServiceUnderTest) => Promise<unknown>;
  /** Tenants still onboarded at the end are offboarded before the server stops, leaving moto clean for the next file. */
  offboardWhenDone?: { slug: string }[];
}

/** What a test does through the service's API; each step throws unless the service answered as it should. */
export interface ServiceClient {
  /** As the platform admin unless a call names another token. */
  call: CallFn;
  /** Polls the run until its status is terminal; returns it. */
  settledRun(slug: string, runId: string, options?: { token?: string } & WaitOptions): Promise<any>;
  createTenant(tenant: { slug: string; account: string }, options?: CreateTenantOptions): Promise<Call>;
  /** The customer creates the bootstrap role trusting the service's external ID; the tenant names it (201). */
  connectAws(tenant: { slug: string; account: string; externalId: string }): Promise<Call>;
  /** createTenant, then connectAws. */
  onboard(tenant: { slug: string; account: string; externalId: string }, options?: CreateTenantOptions): Promise<void>;
  /** A new tenant-scoped token. */
  issueToken(slug: string, name: string): Promise<string>;
  /** Offboards those still onboarded and waits until they are. */
  offboardAll(tenants: { slug: string }[]): Promise<void>;
}

/** A server process of its own (own DATA_DIR and project dir) on the service's database and state backend. */
export interface Replica extends ServiceClient {
  name: string;
  workspace: ServiceWorkspace;
  server: Server;
}

export interface ServiceUnderTest extends ServiceClient {
  readonly adminToken: string;
  readonly encryptionKey: string | undefined;
  readonly passphrase: string | undefined;
  /** The scratch database's URL. */
  readonly databaseUrl: string;
  /** A connection to the scratch database (opened on first use). */
  readonly sql: postgres.Sql;
  readonly dataDir: string;
  readonly workspace: ServiceWorkspace;
  readonly proxy: HoldingProxy;
  readonly ssm: SsmStandIn;
  /** The server process started last. */
  readonly server: Server;
  /** Every server process start() started, in order. */
  readonly servers: Server[];
  readonly replicas: Replica[];
  /** Every response body the callers received (to prove that no secret left the service). */
  readonly responses: string[];
  /** The environment start() gives a server, with `extra` on top (for a server a test starts and stops itself). */
  serverEnv(extra?: ServerEnv): ServerEnv;
  /** Starts a server process on the service's database and workspace; it becomes `server`. `adminToken` replaces the service's from now on. */
  start(options?: { env?: ServerEnv; adminToken?: string }): Promise<Server>;
  /** Stops `server` (SIGTERM: a clean shutdown; SIGKILL: a crash); its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Starts a replica ("database-state" workspaces only): `env` on top of the service's. */
  startReplica(name: string, env?: ServerEnv): Promise<Replica>;
  /**
   * From now on the holding proxy holds the service's AWS calls (STS aside: a provider configures with them); requests
   * an up of the tenant through `via` (default: `server`) and resolves with its run id once it is running with an AWS
   * call held, so it can be caught mid-flight.
   */
  upHeldMidCall(slug: string, via?: ServiceClient): Promise<string>;
  close(): Promise<void>;
}

const randomSecret = (prefix: string) => `${prefix}${randomBytes(32).toString("base64url")}`;

function clientOf(call: CallFn, wait: WaitOptions): ServiceClient {
  return {
    call,
    settledRun: (slug, runId, options = {}) => waitForRunToSettle(call, slug, runId, { ...wait, ...options }),
    createTenant: (tenant, options) => createTenantThroughApi(call, tenant, options),
    connectAws: (tenant) => connectAwsThroughApi(call, tenant),
    onboard: (tenant, options) => onboardThroughApi(call, tenant, options),
    issueToken: (slug, name) => issueTenantTokenThroughApi(call, slug, name),
    offboardAll: (tenants) => offboardThroughApi(call, tenants, wait),
  };
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the service under test has no ${what} (not set up, or not asked for in its options)`);
  return value;
}

type Lifecycle = ServiceUnderTest & { setUpParts(): Promise<void> };

function createServiceUnderTest(options: ServiceUnderTestOptions): Lifecycle {
  const { name, database = "scratch", workspace: workspaceKind = "file-state", wait = {} } = options;
  let adminToken = randomSecret("mxdr-admin_");
  const encryptionKey = options.encryptionKey === null ? undefined : (options.encryptionKey ?? randomBytes(32).toString("base64"));
  const passphrase = options.passphrase === null ? undefined : (options.passphrase ?? `pp-${randomBytes(24).toString("base64url")}`);
  const platformPrincipalArn = options.platformPrincipalArn === null ? undefined : (options.platformPrincipalArn ?? PLATFORM_PRINCIPAL_ARN);
  const responses: string[] = [];
  const servers: Server[] = [];
  const replicas: Replica[] = [];
  const workspaces: ServiceWorkspace[] = [];
  let scratch: { databaseUrl: string; cleanup(): Promise<void> } | undefined;
  let sql: postgres.Sql | undefined;
  let workspace: ServiceWorkspace | undefined;
  let bareDataDir: string | undefined;
  let proxy: HoldingProxy | undefined;
  let ssm: SsmStandIn | undefined;
  let current: Server | undefined;

  const newWorkspace = async () => {
    const made = await temporaryServiceWorkspace(
      passphrase,
      workspaceKind === "database-state" ? { defaultBackendOf: required(scratch, "scratch database").databaseUrl } : {},
    );
    workspaces.push(made);
    return made;
  };

  function workspaceEnv(of: ServiceWorkspace | undefined): ServerEnv {
    if (!of) return { DATA_DIR: required(bareDataDir, "data dir") };
    const env: ServerEnv = of.serverEnv();
    if (passphrase === undefined) {
      delete env.PULUMI_SECRETS_PROVIDER;
      delete env.PULUMI_CONFIG_PASSPHRASE;
    }
    return env;
  }

  const envFor = (of: ServiceWorkspace | undefined, extra: ServerEnv = {}): ServerEnv => ({
    ...serverEnvFor({ databaseUrl: scratch?.databaseUrl, adminToken, encryptionKey, platformPrincipalArn }),
    ...(proxy ? { AWS_ENDPOINT_URL: proxy.url } : {}),
    ...(ssm ? { AWS_ENDPOINT_URL_SSM: ssm.endpoint } : {}),
    ...workspaceEnv(of),
    ...(typeof options.env === "function" ? options.env() : options.env),
    ...extra,
  });

  const launch = (env: ServerEnv) =>
    startServer(env, {
      viaNpm: options.viaNpm ?? false,
      unset: passphrase === undefined ? ["PULUMI_CONFIG_PASSPHRASE"] : [],
      ...(options.startTimeoutMs ? { timeoutMs: options.startTimeoutMs } : {}),
    });

  const call = createCaller({ baseUrl: () => required(current, "server").baseUrl, defaultToken: () => adminToken, responses });

  const service: Lifecycle = {
    ...clientOf(call, wait),
    get adminToken() {
      return adminToken;
    },
    encryptionKey,
    passphrase,
    get databaseUrl() {
      return required(scratch, "scratch database").databaseUrl;
    },
    get sql(): postgres.Sql {
      sql ??= postgres(service.databaseUrl, { max: 2, onnotice: () => undefined });
      return sql;
    },
    get dataDir() {
      return workspace?.dataDir ?? required(bareDataDir, "data dir");
    },
    get workspace() {
      return required(workspace, "workspace");
    },
    get proxy() {
      return required(proxy, "holding proxy");
    },
    get ssm() {
      return required(ssm, "SSM stand-in");
    },
    get server() {
      return required(current, "server");
    },
    servers,
    replicas,
    responses,

    serverEnv: (extra?: ServerEnv) => envFor(workspace, extra),

    async start({ env, adminToken: newAdminToken }: { env?: ServerEnv; adminToken?: string } = {}) {
      if (newAdminToken) adminToken = newAdminToken;
      const started = await launch(envFor(workspace, env));
      servers.push(started);
      current = started;
      return started;
    },

    stop: (signal: NodeJS.Signals = "SIGTERM") => stopServer(current, signal),

    async startReplica(replicaName: string, env: ServerEnv = {}) {
      if (workspaceKind !== "database-state") throw new Error('replicas share the database\'s state backend: use workspace: "database-state"');
      const own = await newWorkspace();
      const server = await launch(envFor(own, env));
      const replicaCall = createCaller({ baseUrl: () => server.baseUrl, defaultToken: () => adminToken, responses });
      const replica = { name: replicaName, workspace: own, server, ...clientOf(replicaCall, wait) };
      replicas.push(replica);
      return replica;
    },

    async upHeldMidCall(slug: string, via: ServiceClient = service) {
      const { proxy: holding, sql: database } = service;
      holding.hold((request) => !isStsCall(request));
      const heldBefore = holding.held;
      const up = await via.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up" } });
      if (up.status !== 202) throw new Error(`POST /v1/tenants/${slug}/runs (up): ${up.status} ${up.text}`);
      const runId: string = up.body.run_id;
      await waitFor(
        `the up of ${slug} to be running with an AWS call held`,
        async () => {
          const [run] = await database<{ status: string }[]>`select status from runs where id = ${runId}`;
          const [{ pre } = { pre: 0 }] = await database<{ pre: number }[]>`
            select count(*)::int as pre from run_events
            where run_id = ${runId} and event->'resourcePreEvent'->'metadata'->>'type' like 'aws:%'`;
          return run?.status === "running" && pre > 0 && holding.held > heldBefore;
        },
        wait,
      );
      return runId;
    },

    async setUpParts() {
      if (database === "scratch") scratch = await scratchDatabase(`mxdr_${name.replaceAll("-", "_")}`);
      else if (workspaceKind === "database-state") throw new Error("a database-state workspace needs the scratch database");
      if (workspaceKind === "data-dir") {
        bareDataDir = await mkdtemp(join(tmpdir(), `mxdr-${name}-`));
        // As root, the embedded PostgreSQL server (DATA_DIR/postgres) runs as the `postgres` user, which must reach it.
        if (database === "embedded") await allowServerUser(bareDataDir);
      } else {
        workspace = await newWorkspace();
      }
      if (options.holdingProxy) proxy = await startHoldingProxy(process.env.AWS_ENDPOINT_URL!);
      if (options.ssmStandIn) {
        const accountId = typeof options.ssmStandIn === "object" ? options.ssmStandIn.accountId : undefined;
        ssm = await startSsmStandIn(process.env.AWS_ENDPOINT_URL!, accountId ? { accountId } : {});
      }
      await options.beforeServerStart?.(service);
      if (options.startAtSetUp ?? true) await service.start();
      await options.setUp?.(service);
    },

    async close() {
      if (options.offboardWhenDone && current && current.child.exitCode === null && current.child.signalCode === null) {
        await service.offboardAll(options.offboardWhenDone).catch((error: unknown) => console.error(`cleanup: ${String(error)}`));
      }
      for (const server of [...servers, ...replicas.map((replica) => replica.server)]) await stopServer(server, "SIGTERM");
      await sql?.end();
      await scratch?.cleanup();
      await proxy?.close();
      await ssm?.stop();
      for (const made of workspaces) await made.cleanup();
      if (bareDataDir) await rm(bareDataDir, { recursive: true, force: true });
    },
  };
  return service;
}

/** The service under test of a test file or describe block: set up before its tests, taken down after them. */
export function serviceUnderTest(options: ServiceUnderTestOptions): ServiceUnderTest {
  const service = createServiceUnderTest(options);
  setupOrFailEveryTest(() => service.setUpParts());
  // Offboarding every tenant at the end runs a destroy per tenant: more than the default hook timeout for a fleet.
  afterAll(() => service.close(), options.offboardWhenDone ? 900_000 : undefined);
  return service;
}

/** The service under test outside vitest's hooks: set up when this resolves (taken down again if that fails); close() ends it. */
export async function startServiceUnderTest(options: ServiceUnderTestOptions): Promise<ServiceUnderTest> {
  const service = createServiceUnderTest(options);
  try {
    await service.setUpParts();
  } catch (error) {
    await service.close().catch(() => undefined);
    throw error;
  }
  return service;
}
