/**
 * The platform team's review path: a tenant's stack config file in stacks/ and a plain
 * `npm run pulumi -- preview -s tenant-<slug>` at the repo root, through the Node.js language host; and, without a
 * PULUMI_BACKEND_URL, `npm run pulumi` on the service's default backend (postgres:// in the embedded server).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  automationSettingsSchema,
  configureTenantStack,
  openTenantStack,
  stackNameFor,
  removeTenantStack,
  type AutomationSettings,
} from "../../automation";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";
import { REPO_ROOT } from "../harness/moto";
import { allowServerUser, destroyEmbeddedServer, embeddedServerStatus } from "../../db/embedded-server";

const run = promisify(execFile);
const config = miniCorpTenantConfig({ tenantSlug: "platform-review-it" });
const STACK = "tenant-platform-review-it";
let settings: AutomationSettings;

async function pulumiAtRepoRoot(...args: string[]) {
  try {
    const { stdout, stderr } = await run("npm", ["run", "-s", "pulumi", "--", ...args], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        PULUMI_BACKEND_URL: settings.backendUrl,
        PULUMI_HOME: settings.pulumiHome,
        NO_COLOR: "1",
      },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

beforeAll(async () => {
  const root = await mkdtemp(path.join(tmpdir(), "mini-xdr-platform-"));
  settings = automationSettingsSchema.parse({
    projectDir: REPO_ROOT,
    backendUrl: `file://${path.join(root, "state")}`,
    secretsProvider: "passphrase",
    passphrase: process.env.PULUMI_CONFIG_PASSPHRASE,
    pulumiRoot: path.join(REPO_ROOT, ".tools"),
    pulumiHome: path.join(root, "pulumi-home"),
  });
  const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: true });
  await configureTenantStack(stack, config);
});

afterAll(async () => {
  await removeTenantStack(await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false }));
});

describe("pulumi preview at the repo root", () => {
  it("shows the tenant's planned resources from its stack config file", async () => {
    const stackFile = await readFile(path.join(REPO_ROOT, "stacks", `Pulumi.${STACK}.yaml`), "utf8");
    expect(stackFile).toContain("mini-xdr-tenant:tenantSlug: platform-review-it");
    expect(stackFile).toContain("secure:");
    expect(stackFile).not.toContain(config.externalId);

    const preview = await pulumiAtRepoRoot("preview", "-s", STACK, "--non-interactive");
    expect(preview.output).toContain("aws:iam:Role");
    expect(preview.output).toContain("aws:ssm:Association");
    expect(preview.output).toMatch(/\+ 8 to create/);
    expect(preview.code).toBe(0);
  });

  it("fails with one message that lists every bad config key", async () => {
    await pulumiAtRepoRoot("config", "set", "-s", STACK, "customerAccountId", "12345");
    await pulumiAtRepoRoot("config", "set", "-s", STACK, "agentPublicBaseUrl", "http://agents.example.com");
    const preview = await pulumiAtRepoRoot("preview", "-s", STACK, "--non-interactive");
    expect(preview.code).not.toBe(0);
    expect(preview.output).toContain("invalid tenant configuration");
    expect(preview.output).toContain("customerAccountId: must be a 12-digit AWS account id");
    expect(preview.output).toContain("agentPublicBaseUrl: must be an https:// URL");
    const diagnostics = preview.output.slice(preview.output.indexOf("Diagnostics:"));
    expect(diagnostics.match(/error: /g)).toHaveLength(1);
  });
});

describe("npm run pulumi on the service's default state backend", () => {
  it("uses the postgres:// backend in the embedded server under DATA_DIR, started for the command and stopped after", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "mini-xdr-platform-default-"));
    await allowServerUser(dataDir); // as root the embedded server runs as `postgres`
    const stack = "tenant-default-backend-it";
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PULUMI_HOME: path.join(dataDir, "pulumi-home"), NO_COLOR: "1" };
    delete env.PULUMI_BACKEND_URL;
    delete env.DATABASE_URL;
    const cli = async (...args: string[]) => {
      const { stdout } = await run("npm", ["run", "-s", "pulumi", "--", ...args], { cwd: REPO_ROOT, env });
      return stdout;
    };
    try {
      await cli("stack", "init", stack, "--non-interactive");
      expect(await embeddedServerStatus(path.join(dataDir, "postgres"))).toBeUndefined();
      // A second command (its own server start) finds the stack: it lives in the database, not on disk.
      const listed = JSON.parse(await cli("stack", "ls", "--json")) as { name: string }[];
      expect(listed.map((entry) => entry.name)).toEqual([stack]);
      const whoami = JSON.parse(await cli("whoami", "--json")) as { url: string };
      expect(whoami.url).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/mini_xdr_state\?sslmode=disable$/);
      await cli("stack", "rm", stack, "--yes", "--non-interactive");
      expect(JSON.parse(await cli("stack", "ls", "--json"))).toEqual([]);
      expect(await embeddedServerStatus(path.join(dataDir, "postgres"))).toBeUndefined();
    } finally {
      await destroyEmbeddedServer(path.join(dataDir, "postgres"));
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
