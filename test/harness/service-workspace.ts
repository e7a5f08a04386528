/** The Pulumi project, state and data dir a service process runs its stacks with. */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROJECT_NAME } from "../../automation";
import { defaultStateBackendUrl } from "../../automation/state-backend";
import { allowServerUser, destroyEmbeddedServer } from "../../db/embedded-server";
import { REPO_ROOT } from "./moto";

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
