/**
 * vitest globalSetup: one moto server for the whole run, and the environment every test (and every Pulumi CLI and
 * provider process they start) needs to reach it and to stay off the network. vitest starts its fork workers
 * after global setup, with this process's environment, so plain `process.env` reaches the tests
 * (test/integration/harness-env.test.ts pins that). The run fails if a process it started outlives it
 * (process-leaks.ts).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { pointAwsSdkAtMoto, REPO_ROOT, startMoto } from "./moto";
import { startProcessLeakCheck } from "./process-leaks";

/** package.json engines; pg-boss 12 and @pulumi/pulumi 3.259 need it. scripts/test.sh puts .tools/node first on PATH. */
const NODE_MIN = [22, 12] as const;

function assertNodeVersion(): void {
  const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
  if (major < NODE_MIN[0] || (major === NODE_MIN[0] && minor < NODE_MIN[1])) {
    throw new Error(
      `the tests need Node.js >= ${NODE_MIN.join(".")}, this is ${process.versions.node} (${process.execPath}): ` +
        `run them through npm test, or after bash scripts/toolchain.sh with . scripts/lib/node.sh in your shell`,
    );
  }
}

export default async function setup(): Promise<() => Promise<void>> {
  assertNodeVersion();
  // First: everything started from here on (PostgreSQL, moto, services, CLIs, plugins) carries the run's mark.
  const checkProcessLeaks = startProcessLeakCheck();
  // The embedded PostgreSQL server of scripts/postgres.sh, when the caller did not export one (npm test does).
  const startedPostgres = !process.env.TEST_DATABASE_URL;
  if (startedPostgres) {
    const { stdout } = await promisify(execFile)("bash", [join(REPO_ROOT, "scripts/postgres.sh"), "start"], { cwd: REPO_ROOT });
    process.env.TEST_DATABASE_URL = stdout.trim();
  }
  const moto = await startMoto();
  const stateDir = await mkdtemp(join(tmpdir(), "minixdr-standin-aws-"));

  pointAwsSdkAtMoto(moto.endpoint);
  Object.assign(process.env, {
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    // Where the stand-in provider keeps SSM associations (moto has none).
    STANDIN_AWS_STATE_DIR: stateDir,
  });
  process.env.PULUMI_CONFIG_PASSPHRASE ??= "test-passphrase";
  // pulumi-resource-kubernetes (scripts/kubernetes-toolchain.sh) is found on PATH, as the stand-in AWS provider is.
  process.env.PATH = [join(REPO_ROOT, ".tools/bin"), join(REPO_ROOT, "test/harness/bin"), join(REPO_ROOT, ".tools/kubernetes/bin"), process.env.PATH]
    .filter(Boolean)
    .join(delimiter);

  return async () => {
    await moto.stop();
    if (startedPostgres) await promisify(execFile)("bash", [join(REPO_ROOT, "scripts/postgres.sh"), "stop"], { cwd: REPO_ROOT });
    await rm(stateDir, { recursive: true, force: true });
    await checkProcessLeaks();
  };
}
