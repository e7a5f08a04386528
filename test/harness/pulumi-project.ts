import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { automationSettingsSchema, PROJECT_NAME, type AutomationSettings } from "../../automation";
import { REPO_ROOT } from "./moto";

/**
 * Automation settings for a test: a temp project dir (the same project name and stackConfigDir as the repo's
 * Pulumi.yaml; the program itself is inline) and a temp file backend, or the given backend (e.g. the postgres://
 * state database next to a scratch database, automation/state-backend.ts).
 */
export async function temporaryAutomationSettings({ backendUrl }: { backendUrl?: string } = {}): Promise<AutomationSettings> {
  const root = await mkdtemp(path.join(tmpdir(), "mini-xdr-stack-"));
  const projectDir = path.join(root, "project");
  await mkdir(path.join(projectDir, "stacks"), { recursive: true });
  await writeFile(path.join(projectDir, "Pulumi.yaml"), `name: ${PROJECT_NAME}\nruntime: nodejs\nstackConfigDir: stacks\n`);
  return automationSettingsSchema.parse({
    projectDir,
    backendUrl: backendUrl ?? `file://${path.join(root, "state")}`,
    secretsProvider: "passphrase",
    passphrase: process.env.PULUMI_CONFIG_PASSPHRASE,
    pulumiRoot: path.join(REPO_ROOT, ".tools"),
    pulumiHome: path.join(root, "pulumi-home"),
  });
}
