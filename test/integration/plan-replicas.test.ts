/**
 * Two replicas of the service share nothing but the state backend: each has its own project dir (stack config files)
 * and Pulumi home. A plan saved by one replica's preview is applied by the other's `up --plan`, on the service's
 * default postgres:// state backend in the real PostgreSQL server, with the real CLI and program against moto (behind
 * the stand-in pulumi-resource-aws). Once with passphrase secrets, once with the awskms:// secrets provider and
 * moto's KMS (reached through AWS_ENDPOINT_URL).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import { GetRoleCommand } from "@aws-sdk/client-iam";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  destroyTenantStack,
  openConfiguredTenantStack,
  openTenantStack,
  stackNameFor,
  previewTenantStack,
  removeTenantStack,
  upTenantStack,
  type AutomationSettings,
} from "../../automation";
import { resolveStateBackend } from "../../automation/state-backend";
import { customerAccountClients } from "../harness/customer-account";
import { realPostgres } from "../harness/databases";
import { temporaryAutomationSettings } from "../harness/pulumi-project";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";

let backendUrl: string;
let cleanupDatabase: (() => Promise<void>) | undefined;
let planDir: string;
let kms: KMSClient;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const opened = await realPostgres.open();
  cleanupDatabase = opened.cleanup;
  backendUrl = await resolveStateBackend(undefined, opened.database.connectionString);
  planDir = await mkdtemp(path.join(tmpdir(), "mxdr-plan-replicas-"));
  kms = new KMSClient({ region: "us-east-1" });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  kms?.destroy();
  await rm(planDir, { recursive: true, force: true });
  await cleanupDatabase?.();
});

const stackFile = (settings: AutomationSettings, slug: string) =>
  readFile(path.join(settings.projectDir, "stacks", `Pulumi.tenant-${slug}.yaml`), "utf8");

/** The secrets-manager lines of a stack config file (salt, or KMS provider and its encrypted data key). */
const secretsManagerLines = (text: string) =>
  text
    .split("\n")
    .filter((line) => /^(encryptionsalt|secretsprovider|encryptedkey):/.test(line))
    .sort();

/** Replica A creates the stack and saves a plan; replica B, with its own project dir, applies it; then the other way. */
async function planOnOneReplicaAppliedOnTheOther(replicaA: AutomationSettings, replicaB: AutomationSettings) {
  const slug = `plan-${randomBytes(3).toString("hex")}`;
  const config = miniCorpTenantConfig({ tenantSlug: slug });
  const aws = await customerAccountClients(config.bootstrapRoleArn);
  cleanups.push(async () => {
    const stack = await openTenantStack(replicaA, stackNameFor(slug), { create: false });
    await destroyTenantStack(stack);
    await removeTenantStack(stack);
  });

  const onA = await openConfiguredTenantStack(replicaA, config);
  const planFile = path.join(planDir, `${slug}-1.json`);
  const preview = await previewTenantStack(onA, { savePlanTo: planFile });
  expect(preview.changeSummary).toEqual({ create: 8 });
  const plan = await readFile(planFile, "utf8");
  expect(plan).toContain("ciphertext"); // the plan holds the tenant's secrets, sealed by the stack's secrets manager
  expect(plan).not.toContain(config.externalId);

  const onB = await openConfiguredTenantStack(replicaB, config, { updatePlans: true });
  const up = await upTenantStack(onB, { plan: planFile });
  expect(up.changeSummary).toEqual({ create: 8 });
  const role = await aws.iam.send(new GetRoleCommand({ RoleName: `MiniXdrAccess-${slug}` }));
  expect(role.Role?.Arn).toBe(up.outputs.roleArn);
  // B's config file took the stack's secrets manager from the checkpoint instead of making its own.
  expect(secretsManagerLines(await stackFile(replicaB, slug))).toEqual(secretsManagerLines(await stackFile(replicaA, slug)));
  expect(await stackFile(replicaB, slug)).not.toContain(config.externalId);

  // The other way round, with a new secret: B saves the plan, A (its stack still warm) applies it.
  const changed = { ...config, enrollmentToken: `rotated-${randomBytes(24).toString("hex")}` };
  const onBAgain = await openConfiguredTenantStack(replicaB, changed);
  const secondPlan = path.join(planDir, `${slug}-2.json`);
  expect((await previewTenantStack(onBAgain, { savePlanTo: secondPlan })).changeSummary).toMatchObject({ update: expect.any(Number) });
  const onAAgain = await openConfiguredTenantStack(replicaA, changed, { updatePlans: true });
  const second = await upTenantStack(onAAgain, { plan: secondPlan });
  expect(second.changeSummary).toMatchObject({ update: expect.any(Number) });
  return slug;
}

describe("a saved plan applied by another replica (own project dir, one postgres:// state backend)", () => {
  it("with passphrase secrets", async () => {
    const replicaA = await temporaryAutomationSettings({ backendUrl });
    const replicaB = await temporaryAutomationSettings({ backendUrl });
    expect(replicaA.projectDir).not.toBe(replicaB.projectDir);
    await planOnOneReplicaAppliedOnTheOther(replicaA, replicaB);
  });

  it("with the awskms:// secrets provider (moto's KMS)", async () => {
    const keyId = (await kms.send(new CreateKeyCommand({ Description: "mini-xdr pulumi secrets" }))).KeyMetadata!.KeyId!;
    const kmsSettings = async () => ({
      ...(await temporaryAutomationSettings({ backendUrl })),
      secretsProvider: `awskms://${keyId}?region=us-east-1`,
      passphrase: undefined,
    });
    const replicaA = await kmsSettings();
    const replicaB = await kmsSettings();
    const slug = await planOnOneReplicaAppliedOnTheOther(replicaA, replicaB);
    expect(await stackFile(replicaB, slug)).toContain(`secretsprovider: awskms://${keyId}?region=us-east-1`);
  });
});
