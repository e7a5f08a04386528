/**
 * A tenant's onboarding stack through the Automation API with the real Pulumi CLI, the real program, a file
 * backend and passphrase secrets; AWS is the moto server behind the stand-in pulumi-resource-aws. The last block
 * does preview, up and destroy on the service's default backend instead: the CLI's postgres:// backend in the real
 * PostgreSQL server (TEST_DATABASE_URL).
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { GetRoleCommand, GetRolePolicyCommand, NoSuchEntityException } from "@aws-sdk/client-iam";
import { DescribeDocumentCommand, GetParameterCommand, ParameterNotFound } from "@aws-sdk/client-ssm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configureTenantStack,
  destroyTenantStack,
  openTenantStack,
  stackNameFor,
  previewTenantStack,
  removeTenantStack,
  StackBusyError,
  StackNotFoundError,
  upTenantStack,
  type AutomationSettings,
} from "../../automation";
import { listStandInAssociations } from "../harness/aws-provider/association-store";
import { customerAccountClients } from "../harness/customer-account";
import { temporaryAutomationSettings } from "../harness/pulumi-project";
import { realPostgres } from "../harness/databases";
import { resolveStateBackend } from "../../automation/state-backend";
import { miniCorpTenantConfig, PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";

const config = miniCorpTenantConfig({ tenantSlug: "mini-corp-it" });
const ROLE_NAME = "MiniXdrAccess-mini-corp-it";
const PARAMETER_NAME = "/mini-xdr/mini-corp-it/agent-config";
const DOCUMENT_NAME = "MiniXdr-InstallAgent-mini-corp-it";

let settings: AutomationSettings;
let aws: Awaited<ReturnType<typeof customerAccountClients>>;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

beforeAll(async () => {
  settings = await temporaryAutomationSettings();
  aws = await customerAccountClients(config.bootstrapRoleArn);
});

describe("tenant onboarding stack", () => {
  it("previews a new tenant as the creation of every customer-side resource", async () => {
    const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: true });
    await configureTenantStack(stack, config);
    const preview = await previewTenantStack(stack);
    expect(preview.changeSummary).toEqual({ create: 8 });
    expect(preview.resourceChanges.map((change) => change.type).sort()).toEqual([
      "aws:iam/role:Role",
      "aws:iam/rolePolicy:RolePolicy",
      "aws:ssm/association:Association",
      "aws:ssm/document:Document",
      "aws:ssm/parameter:Parameter",
      "minixdr:tenant:TenantOnboarding",
      "pulumi:providers:aws",
    ]);
  });

  it("applies it: the role trusts the platform with the external ID, the config is a SecureString", async () => {
    const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
    const events: string[] = [];
    const result = await upTenantStack(stack, { onEvent: (event) => event.resourcePreEvent && events.push(event.resourcePreEvent.metadata.op) });
    expect(result.changeSummary).toEqual({ create: 8 });
    expect(events.filter((op) => op === "create")).toHaveLength(8);
    expect(result.outputs).toEqual({
      roleArn: `arn:aws:iam::210987654321:role/${ROLE_NAME}`,
      parameterName: PARAMETER_NAME,
      documentName: DOCUMENT_NAME,
      associationId: expect.stringMatching(/^assoc-/),
      regions: {
        "us-east-1": { parameterName: PARAMETER_NAME, documentName: DOCUMENT_NAME, associationId: result.outputs.associationId },
      },
      // No EKS cluster in the config.
      clusters: {},
      rollout: {
        targeting: expect.objectContaining({ mode: expect.stringMatching(/^(all_managed|tag)$/) }),
        regions: ["us-east-1"],
        defaultHostManagement: false,
        maxConcurrency: "10%",
        maxErrors: "10%",
      },
    });
    expect(result.outputs).not.toHaveProperty("externalId");

    const role = await aws.iam.send(new GetRoleCommand({ RoleName: ROLE_NAME }));
    const trust = JSON.parse(decodeURIComponent(role.Role!.AssumeRolePolicyDocument!));
    expect(trust.Statement[0].Principal).toEqual({ AWS: PLATFORM_PRINCIPAL_ARN });
    expect(trust.Statement[0].Condition).toEqual({ StringEquals: { "sts:ExternalId": config.externalId } });
    expect(role.Role!.MaxSessionDuration).toBe(3600);

    const policy = await aws.iam.send(new GetRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: "mini-xdr-access" }));
    expect(decodeURIComponent(policy.PolicyDocument!)).toContain(`document/${DOCUMENT_NAME}`);

    const parameter = await aws.ssm.send(new GetParameterCommand({ Name: PARAMETER_NAME, WithDecryption: true }));
    expect(parameter.Parameter!.Type).toBe("SecureString");
    expect(JSON.parse(parameter.Parameter!.Value!).enrollmentToken).toBe(config.enrollmentToken);

    const document = await aws.ssm.send(new DescribeDocumentCommand({ Name: DOCUMENT_NAME }));
    expect(document.Document!.DocumentType).toBe("Command");
    const associations = await listStandInAssociations({ accountId: "210987654321" });
    // Default targeting: every managed instance, the document skipping those tagged xdr:monitor=false.
    expect(associations.map((association) => [association.Region, association.Targets, association.Parameters])).toEqual([
      [
        "us-east-1",
        [{ Key: "InstanceIds", Values: ["*"] }],
        { ConfigParameterName: [PARAMETER_NAME], ExcludeTagKey: ["xdr:monitor"], ExcludeTagValue: ["false"] },
      ],
    ]);
    expect([associations[0]!.MaxConcurrency, associations[0]!.MaxErrors]).toEqual(["10%", "10%"]);
  });

  it("keeps the external ID and the enrollment token out of the state and the stack config in plaintext", async () => {
    const backendDir = settings.backendUrl.slice("file://".length);
    const files = [...(await filesUnder(backendDir)), ...(await filesUnder(path.join(settings.projectDir, "stacks")))];
    expect(files.some((file) => file.endsWith("tenant-mini-corp-it.json"))).toBe(true);
    expect(files.some((file) => file.endsWith("Pulumi.tenant-mini-corp-it.yaml"))).toBe(true);
    for (const file of files) {
      const text = await readFile(file, "utf8");
      expect(text, file).not.toContain(config.externalId);
      expect(text, file).not.toContain(config.enrollmentToken);
    }
  });

  it("changes nothing on a second up", async () => {
    const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
    const result = await upTenantStack(stack);
    expect(result.changeSummary).toEqual({ same: 8 });
  });

  it("updates in place when the config changes", async () => {
    const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
    const roleBefore = await aws.iam.send(new GetRoleCommand({ RoleName: ROLE_NAME }));
    await configureTenantStack(stack, { ...config, agentVersion: "1.5.0", maxSessionDurationSeconds: 7200 });
    const result = await upTenantStack(stack);
    expect(result.changeSummary.update).toBeGreaterThanOrEqual(3);
    expect(result.changeSummary).not.toHaveProperty("replace");
    expect(result.changeSummary).not.toHaveProperty("create");
    const roleAfter = await aws.iam.send(new GetRoleCommand({ RoleName: ROLE_NAME }));
    expect(roleAfter.Role!.RoleId).toBe(roleBefore.Role!.RoleId);
    expect(roleAfter.Role!.MaxSessionDuration).toBe(7200);
    const parameter = await aws.ssm.send(new GetParameterCommand({ Name: PARAMETER_NAME, WithDecryption: true }));
    expect(JSON.parse(parameter.Parameter!.Value!).agentVersion).toBe("1.5.0");
  });

  it("never runs two concurrent ups at once: one runs and the other is told the stack is busy (or, in a tie, both are); nothing is corrupted", async () => {
    const first = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
    const second = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
    await configureTenantStack(first, { ...config, agentVersion: "1.6.0" });
    const outcomes = await Promise.allSettled([upTenantStack(first), upTenantStack(second)]);
    const fulfilled = outcomes.filter((outcome) => outcome.status === "fulfilled");
    const rejected = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
    const why = outcomes.map((o) =>
      o.status === "rejected" ? `${(o.reason as Error).name}: ${String((o.reason as Error).message).slice(0, 2000)}` : "ok",
    );
    // The file backend's lock is a file each update writes before it looks for others': two that start in the same
    // instant can each see the other's and both refuse (seen once under load). Never may both run.
    expect(fulfilled.length, JSON.stringify(why)).toBeLessThanOrEqual(1);
    expect(rejected.length, JSON.stringify(why)).toBeGreaterThanOrEqual(1);
    for (const refusal of rejected) expect(refusal.reason, JSON.stringify(why)).toBeInstanceOf(StackBusyError);

    // Nothing was corrupted: the stack is consistent and the next up has nothing to do (or does the tie's update).
    const after = await upTenantStack(await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false }));
    if (fulfilled.length === 1) expect(after.changeSummary).toEqual({ same: 8 });
    else expect(Object.keys(after.changeSummary).sort()).toEqual(["same", "update"]);
    const parameter = await aws.ssm.send(new GetParameterCommand({ Name: PARAMETER_NAME, WithDecryption: true }));
    expect(JSON.parse(parameter.Parameter!.Value!).agentVersion).toBe("1.6.0");
  });

  it("destroys every customer-side resource and removes the stack", async () => {
    const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
    const result = await destroyTenantStack(stack);
    expect(result.changeSummary).toEqual({ delete: 8 });
    await expect(aws.iam.send(new GetRoleCommand({ RoleName: ROLE_NAME }))).rejects.toBeInstanceOf(NoSuchEntityException);
    await expect(aws.ssm.send(new GetParameterCommand({ Name: PARAMETER_NAME }))).rejects.toBeInstanceOf(ParameterNotFound);
    expect(await listStandInAssociations({ accountId: "210987654321" })).toEqual([]);

    await removeTenantStack(stack);
    await expect(openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false })).rejects.toBeInstanceOf(StackNotFoundError);
  });
});

afterAll(async () => {
  // Leave moto clean for the next file even when a test above failed midway.
  try {
    const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
    await destroyTenantStack(stack);
    await removeTenantStack(stack);
  } catch (error) {
    if (!(error instanceof StackNotFoundError)) throw error;
  }
});

describe("tenant onboarding stack on the postgres:// state backend (the service's default)", () => {
  const pgConfig = miniCorpTenantConfig({ tenantSlug: "mini-corp-pg" });
  let pgSettings: AutomationSettings;
  let cleanupDatabase: (() => Promise<void>) | undefined;
  let stateRows: (stack: string) => Promise<string[]>;
  let closeState: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const opened = await realPostgres.open();
    cleanupDatabase = opened.cleanup;
    // The state database next to the service's database on the same server, created by resolveStateBackend.
    const backendUrl = await resolveStateBackend(undefined, opened.database.connectionString);
    pgSettings = await temporaryAutomationSettings({ backendUrl });
    const state = postgres(backendUrl, { max: 1, onnotice: () => undefined });
    closeState = () => state.end({ timeout: 5 });
    stateRows = async (stack) =>
      (await state<{ key: string }[]>`select key from pulumi_state where key like ${`%/${stack}.json`}`).map((row) => row.key);
  });

  afterAll(async () => {
    try {
      const stack = await openTenantStack(pgSettings, stackNameFor(pgConfig.tenantSlug), { create: false });
      await destroyTenantStack(stack);
      await removeTenantStack(stack);
    } catch (error) {
      if (!(error instanceof StackNotFoundError)) throw error;
    } finally {
      await closeState?.();
      await cleanupDatabase?.();
    }
  });

  it("previews, applies and destroys a tenant with its checkpoint in the state database", async () => {
    expect(pgSettings.backendUrl).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/mxdr_test_\w+_state\?sslmode=disable$/);
    const stack = await openTenantStack(pgSettings, stackNameFor(pgConfig.tenantSlug), { create: true });
    await configureTenantStack(stack, pgConfig);
    expect((await previewTenantStack(stack)).changeSummary).toEqual({ create: 8 });

    const up = await upTenantStack(stack);
    expect(up.changeSummary).toEqual({ create: 8 });
    const role = await aws.iam.send(new GetRoleCommand({ RoleName: "MiniXdrAccess-mini-corp-pg" }));
    expect(role.Role?.Arn).toBe(up.outputs.roleArn);
    expect(await stateRows("tenant-mini-corp-pg")).toHaveLength(1);

    expect((await destroyTenantStack(stack)).changeSummary).toEqual({ delete: 8 });
    await expect(aws.iam.send(new GetRoleCommand({ RoleName: "MiniXdrAccess-mini-corp-pg" }))).rejects.toBeInstanceOf(NoSuchEntityException);
    await removeTenantStack(stack);
    expect(await stateRows("tenant-mini-corp-pg")).toEqual([]);
    await expect(openTenantStack(pgSettings, stackNameFor(pgConfig.tenantSlug), { create: false })).rejects.toBeInstanceOf(StackNotFoundError);
  });
});

describe("a new postgres:// state database", () => {
  it("takes several tenants' first stacks at once: the state table exists before any CLI call", async () => {
    const opened = await realPostgres.open();
    try {
      // Two replicas starting together both prepare the backend.
      const [backendUrl, again] = await Promise.all([
        resolveStateBackend(undefined, opened.database.connectionString),
        resolveStateBackend(undefined, opened.database.connectionString),
      ]);
      expect(again).toBe(backendUrl);
      const state = postgres(backendUrl, { max: 1, onnotice: () => undefined });
      try {
        const columns = await state<{ column_name: string }[]>`
          select column_name from information_schema.columns where table_name = 'pulumi_state' order by column_name`;
        expect(columns.map((column) => column.column_name)).toEqual(["data", "key", "updated_at"]);
      } finally {
        await state.end({ timeout: 5 });
      }

      const firstSettings = await temporaryAutomationSettings({ backendUrl });
      const slugs = ["first-a", "first-b", "first-c", "first-d"];
      const stacks = await Promise.all(slugs.map((slug) => openTenantStack(firstSettings, stackNameFor(slug), { create: true })));
      expect(stacks.map((stack) => stack.name).sort()).toEqual(slugs.map((slug) => `tenant-${slug}`));
      for (const stack of stacks) await removeTenantStack(stack);
    } finally {
      await opened.cleanup();
    }
  });
});
