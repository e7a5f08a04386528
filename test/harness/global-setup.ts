/**
 * vitest globalSetup: one moto server for the whole run, and the environment every test (and every Pulumi CLI and
 * provider process they start) needs to reach it and to stay off the network. vitest starts its fork workers
 * after global setup, with this process's environment, so plain `process.env` reaches the tests
 * (test/integration/harness-env.test.ts pins that).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { REPO_ROOT, startMoto } from "./moto";

export default async function setup(): Promise<() => Promise<void>> {
  const moto = await startMoto();
  const stateDir = await mkdtemp(join(tmpdir(), "minixdr-standin-aws-"));

  Object.assign(process.env, {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    // Where the stand-in provider keeps SSM associations (moto has none).
    STANDIN_AWS_STATE_DIR: stateDir,
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  process.env.PULUMI_CONFIG_PASSPHRASE ??= "test-passphrase";
  process.env.PATH = [join(REPO_ROOT, ".tools/bin"), join(REPO_ROOT, "test/harness/bin"), process.env.PATH]
    .filter(Boolean)
    .join(delimiter);

  return async () => {
    await moto.stop();
    await rm(stateDir, { recursive: true, force: true });
  };
}
