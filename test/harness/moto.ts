/**
 * Lifecycle of a moto server (the AWS emulator, PyPI `moto[server]`) for tests: start on a free port of
 * 127.0.0.1, wait until it answers, reset its state, stop it together with its children.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const DEFAULT_MOTO_BIN = ".tools/moto-venv/bin/moto_server";
const START_TIMEOUT_MS = 60_000;

export interface MotoServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  stop(): Promise<void>;
}

/** The moto_server executable: `MOTO_SERVER_BIN` if set (relative paths are taken from the repo root), else the venv under `.tools/`. */
export function motoServerBin(): string {
  const configured = process.env.MOTO_SERVER_BIN;
  if (configured) return isAbsolute(configured) ? configured : resolve(REPO_ROOT, configured);
  return resolve(REPO_ROOT, DEFAULT_MOTO_BIN);
}

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("could not determine a free port"));
        return;
      }
      server.close(() => resolvePort(address.port));
    });
  });
}

export async function startMoto(): Promise<MotoServer> {
  const bin = motoServerBin();
  if (!existsSync(bin)) {
    throw new Error(
      `moto server not found at ${bin}. Install the test toolchain first: run \`npm test\` or \`bash scripts/toolchain.sh\` ` +
        `(or point MOTO_SERVER_BIN at a moto_server executable).`,
    );
  }

  // A port race with another process is possible but rare; retry a couple of times.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const child = spawn(bin, ["-H", "127.0.0.1", "-p", String(port)], {
      cwd: REPO_ROOT,
      // Own process group, so stop() can take down moto and anything it forks.
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      // Every AWS account has AWS's managed policies (the Default Host Management role attaches one); moto only
      // provides them when asked.
      env: { ...process.env, PYTHONUNBUFFERED: "1", MOTO_IAM_LOAD_MANAGED_POLICIES: "true" },
    });
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    const stop = () => stopProcessGroup(child);
    try {
      await waitUntilReady(endpoint, child, () => stderr);
      // Keep reading stderr so the pipe never fills up, but let the test process exit without waiting for moto.
      child.unref();
      (child.stderr as { unref?: () => void } | null)?.unref?.();
      return { endpoint, stop };
    } catch (error) {
      lastError = error;
      await stop();
    }
  }
  throw lastError;
}

/** Drops every resource moto holds (all accounts, all regions). */
export async function resetMoto(endpoint: string): Promise<void> {
  const response = await fetch(new URL("/moto-api/reset", endpoint), { method: "POST" });
  if (!response.ok) throw new Error(`moto reset failed: HTTP ${response.status} ${await response.text()}`);
}

async function waitUntilReady(endpoint: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = `exited with ${signal ?? code}`;
  });
  child.once("error", (error) => {
    exited = `failed to start: ${error.message}`;
  });
  while (Date.now() < deadline) {
    if (exited) throw new Error(`moto_server ${exited}\n${stderr()}`);
    try {
      const response = await fetch(new URL("/moto-api/", endpoint), { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`moto_server did not answer on ${endpoint} within ${START_TIMEOUT_MS / 1000}s\n${stderr()}`);
}

async function stopProcessGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const pid = child.pid;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const timedOut = await Promise.race([exited.then(() => false), sleep(5_000).then(() => true)]);
  if (timedOut) {
    signal("SIGKILL");
    await Promise.race([exited, sleep(2_000)]);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Points this process's AWS SDK at moto with its dummy credentials, dropping any profile or session token of the shell. */
export function pointAwsSdkAtMoto(endpoint: string): void {
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
}
