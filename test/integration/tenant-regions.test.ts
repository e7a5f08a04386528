/**
 * A tenant's stack in several regions, through the Automation API with the real Pulumi CLI and the real program,
 * against moto behind the stand-in pulumi-resource-aws: each region gets its own provider (the same bootstrap role),
 * parameter, document and association; adding a region creates only that region's resources and removing one
 * deletes only those, as updates of the same stack; IAM is created once. Each region is checked through moto's own
 * SSM in that region (documents and parameters are regional there, by the request's signature), and the
 * associations through the stand-in's regional store.
 *
 * Default Host Management: moto has no Get/UpdateServiceSetting (it answers 500), so the stand-in provider keeps
 * `aws:ssm/serviceSetting:ServiceSetting` in its own per-region store, and the SSM stand-in
 * (test/harness/ssm-standin.ts) answers GetServiceSetting from it, the narrowest stand-in for that API.
 */
import { GetRoleCommand, ListAttachedRolePoliciesCommand, NoSuchEntityException } from "@aws-sdk/client-iam";
import { DescribeDocumentCommand, GetParameterCommand, GetServiceSettingCommand, ParameterNotFound, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configureTenantStack,
  destroyTenantStack,
  openTenantStack,
  stackNameFor,
  previewTenantStack,
  removeTenantStack,
  StackNotFoundError,
  upTenantStack,
  type AutomationSettings,
  type OperationResult,
} from "../../automation";
import type { TenantConfigInput } from "../../programs/tenant/config";
import { listStandInAssociations } from "../harness/aws-provider/association-store";
import { getStandInServiceSetting } from "../harness/aws-provider/service-setting";
import { customerAccountClients } from "../harness/customer-account";
import { temporaryAutomationSettings } from "../harness/pulumi-project";
import { startSsmStandIn, type SsmStandIn } from "../harness/ssm-standin";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";

const ACCOUNT = "210987654321";
const SLUG = "regions-it";
const PARAMETER = `/mini-xdr/${SLUG}/agent-config`;
const DOCUMENT = `MiniXdr-InstallAgent-${SLUG}`;
const HOST_ROLE = `MiniXdr-HostManagement-${SLUG}`;
const DHMC_SETTING = "/ssm/managed-instance/default-ec2-instance-management-role";
const ALL_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"];

const base = miniCorpTenantConfig({ tenantSlug: SLUG });
const configWith = (regions: string[], extra: Partial<TenantConfigInput> = {}) => ({ ...base, regions, ...extra });

let settings: AutomationSettings;
const ssm = new Map<string, SSMClient>();
let iam: Awaited<ReturnType<typeof customerAccountClients>>["iam"];

async function upWith(config: TenantConfigInput): Promise<OperationResult> {
  const stack = await openTenantStack(settings, stackNameFor(SLUG), { create: true });
  await configureTenantStack(stack, config);
  return upTenantStack(stack);
}

/** What moto's SSM of each region holds: the agent document and parameter, or not. */
async function presence(): Promise<Record<string, { document: boolean; parameter: boolean; associations: number }>> {
  const result: Record<string, { document: boolean; parameter: boolean; associations: number }> = {};
  for (const region of ALL_REGIONS) {
    const client = ssm.get(region)!;
    const document = await client.send(new DescribeDocumentCommand({ Name: DOCUMENT })).then(
      () => true,
      (error: Error) => (error.name === "InvalidDocument" ? false : Promise.reject(error)),
    );
    const parameter = await client.send(new GetParameterCommand({ Name: PARAMETER })).then(
      () => true,
      (error: Error) => (error instanceof ParameterNotFound ? false : Promise.reject(error)),
    );
    const associations = (await listStandInAssociations({ accountId: ACCOUNT, region })).length;
    result[region] = { document, parameter, associations };
  }
  return result;
}

const here = { document: true, parameter: true, associations: 1 };
const absent = { document: false, parameter: false, associations: 0 };

/** `<op> <logical name>` of every resource the run touched, but unchanged ones. */
const changes = (result: OperationResult) =>
  result.resourceChanges
    .filter((change) => change.op !== "same")
    .map((change) => `${change.op} ${change.urn.split("::").at(-1)}`)
    .sort();

beforeAll(async () => {
  settings = await temporaryAutomationSettings();
  for (const region of ALL_REGIONS) ssm.set(region, (await customerAccountClients(base.bootstrapRoleArn, region)).ssm);
  ({ iam } = await customerAccountClients(base.bootstrapRoleArn));
});

describe("a tenant stack over several regions", () => {
  it("creates the agent resources in each of two regions, IAM once, and names them per region in the outputs", async () => {
    const result = await upWith(configWith(["us-east-1", "eu-west-1"]));
    expect(changes(result)).toEqual(
      [
        `create ${SLUG}`,
        `create ${SLUG}-access-role`,
        `create ${SLUG}-access-policy`,
        ...["us-east-1", "eu-west-1"].flatMap((region) => [
          `create ${SLUG}-customer-${region}`,
          `create ${SLUG}-agent-config-${region}`,
          `create ${SLUG}-agent-install-${region}`,
          `create ${SLUG}-agent-association-${region}`,
        ]),
      ].sort(),
    );
    expect(await presence()).toEqual({ "us-east-1": here, "eu-west-1": here, "ap-southeast-2": absent, "sa-east-1": absent });

    const regions = result.outputs.regions as Record<string, { parameterName: string; documentName: string; associationId: string }>;
    expect(Object.keys(regions).sort()).toEqual(["eu-west-1", "us-east-1"]);
    for (const [region, outputs] of Object.entries(regions)) {
      const [association] = await listStandInAssociations({ accountId: ACCOUNT, region });
      expect(outputs).toEqual({ parameterName: PARAMETER, documentName: DOCUMENT, associationId: association!.AssociationId });
    }
    // The former top-level outputs are the home region's.
    expect(result.outputs.associationId).toBe(regions["us-east-1"]!.associationId);
    expect(result.outputs).not.toHaveProperty("externalId");

    // Each region's parameter holds the agent configuration as a SecureString.
    const parameter = await ssm.get("eu-west-1")!.send(new GetParameterCommand({ Name: PARAMETER, WithDecryption: true }));
    expect(parameter.Parameter!.Type).toBe("SecureString");
    expect(JSON.parse(parameter.Parameter!.Value!).enrollmentToken).toBe(base.enrollmentToken);
  });

  it("adding a region creates only that region's resources; the access policy gains its document", async () => {
    const result = await upWith(configWith(["us-east-1", "eu-west-1", "ap-southeast-2"]));
    expect(changes(result)).toEqual(
      [
        `create ${SLUG}-customer-ap-southeast-2`,
        `create ${SLUG}-agent-config-ap-southeast-2`,
        `create ${SLUG}-agent-install-ap-southeast-2`,
        `create ${SLUG}-agent-association-ap-southeast-2`,
        `update ${SLUG}-access-policy`,
      ].sort(),
    );
    expect(result.changeSummary).toMatchObject({ create: 4, update: 1 });
    expect(result.changeSummary).not.toHaveProperty("delete");
    expect(result.changeSummary).not.toHaveProperty("replace");
    expect(await presence()).toEqual({ "us-east-1": here, "eu-west-1": here, "ap-southeast-2": here, "sa-east-1": absent });
    expect(Object.keys(result.outputs.regions as object).sort()).toEqual(["ap-southeast-2", "eu-west-1", "us-east-1"]);
  });

  it("removing a region deletes only that region's resources", async () => {
    const before = await listStandInAssociations({ accountId: ACCOUNT, region: "us-east-1" });
    const result = await upWith(configWith(["us-east-1", "ap-southeast-2"]));
    expect(changes(result)).toEqual(
      [
        `delete ${SLUG}-customer-eu-west-1`,
        `delete ${SLUG}-agent-config-eu-west-1`,
        `delete ${SLUG}-agent-install-eu-west-1`,
        `delete ${SLUG}-agent-association-eu-west-1`,
        `update ${SLUG}-access-policy`,
      ].sort(),
    );
    expect(await presence()).toEqual({ "us-east-1": here, "eu-west-1": absent, "ap-southeast-2": here, "sa-east-1": absent });
    // The home region's association is the same one, untouched.
    expect(await listStandInAssociations({ accountId: ACCOUNT, region: "us-east-1" })).toEqual(before);
  });

  it("keeps the home region's resources of a stack from before per-region names (aliases): nothing to do", async () => {
    const stack = await openTenantStack(settings, stackNameFor(SLUG), { create: false });
    const state = await stack.exportStack();
    // Give the home region's resources the logical names the program used before regions were separate.
    const former = JSON.stringify(state.deployment).replace(
      new RegExp(`::${SLUG}-(customer|agent-config|agent-install|agent-association)-us-east-1\\b`, "g"),
      `::${SLUG}-$1`,
    );
    for (const name of ["customer", "agent-config", "agent-install", "agent-association"]) {
      expect(former).toContain(`::${SLUG}-${name}"`);
      expect(former).not.toContain(`::${SLUG}-${name}-us-east-1"`);
    }
    await stack.importStack({ ...state, deployment: JSON.parse(former) });
    const preview = await previewTenantStack(stack);
    expect(preview.changeSummary).not.toHaveProperty("create");
    expect(preview.changeSummary).not.toHaveProperty("delete");
    expect(preview.changeSummary).not.toHaveProperty("replace");
    const result = await upTenantStack(stack);
    expect(changes(result)).toEqual([]);
    const renamed = (await stack.exportStack()).deployment.resources.map((r: { urn: string }) => r.urn.split("::").at(-1));
    expect(renamed).toContain(`${SLUG}-agent-config-us-east-1`);
    expect(renamed).not.toContain(`${SLUG}-agent-config`);
  });

  it("turns on Default Host Management: one role with AWS's policy, the service setting in each region", async () => {
    const result = await upWith(configWith(["us-east-1", "ap-southeast-2"], { enableDefaultHostManagement: true }));
    expect(changes(result)).toEqual(
      [
        `create ${SLUG}-host-management-role`,
        `create ${SLUG}-host-management-policy`,
        `create ${SLUG}-host-management-us-east-1`,
        `create ${SLUG}-host-management-ap-southeast-2`,
      ].sort(),
    );
    const role = await iam.send(new GetRoleCommand({ RoleName: HOST_ROLE }));
    expect(JSON.parse(decodeURIComponent(role.Role!.AssumeRolePolicyDocument!)).Statement[0].Principal).toEqual({ Service: "ssm.amazonaws.com" });
    const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: HOST_ROLE }));
    expect(attached.AttachedPolicies?.map((policy) => policy.PolicyName)).toEqual(["AmazonSSMManagedEC2InstanceDefaultPolicy"]);

    for (const region of ["us-east-1", "ap-southeast-2"]) {
      expect(await getStandInServiceSetting({ accountId: ACCOUNT, region, settingId: DHMC_SETTING })).toMatchObject({
        SettingValue: HOST_ROLE,
        Status: "Customized",
        ARN: `arn:aws:ssm:${region}:${ACCOUNT}:servicesetting${DHMC_SETTING}`,
      });
    }
    expect(await getStandInServiceSetting({ accountId: ACCOUNT, region: "eu-west-1", settingId: DHMC_SETTING })).toBeUndefined();
    expect(result.outputs.defaultHostManagementRoleName).toBe(HOST_ROLE);

    // What the platform reads back through SSM's API (the SSM stand-in answers GetServiceSetting per region).
    let standIn: SsmStandIn | undefined;
    try {
      standIn = await startSsmStandIn(process.env.AWS_ENDPOINT_URL!, { accountId: ACCOUNT });
      const read = async (region: string) => {
        const client = new SSMClient({ region, endpoint: standIn!.endpoint, credentials: await ssm.get(region)!.config.credentials() });
        const answer = await client.send(new GetServiceSettingCommand({ SettingId: DHMC_SETTING }));
        client.destroy();
        return [answer.ServiceSetting?.Status, answer.ServiceSetting?.SettingValue];
      };
      expect(await read("ap-southeast-2")).toEqual(["Customized", HOST_ROLE]);
      expect(await read("eu-west-1")).toEqual(["Default", ""]);
    } finally {
      await standIn?.stop();
    }
  });

  it("destroys everything in every region and resets the service settings", async () => {
    const stack = await openTenantStack(settings, stackNameFor(SLUG), { create: false });
    await destroyTenantStack(stack);
    expect(await presence()).toEqual(Object.fromEntries(ALL_REGIONS.map((region) => [region, absent])));
    for (const region of ALL_REGIONS) {
      expect(await getStandInServiceSetting({ accountId: ACCOUNT, region, settingId: DHMC_SETTING })).toBeUndefined();
    }
    await expect(iam.send(new GetRoleCommand({ RoleName: HOST_ROLE }))).rejects.toBeInstanceOf(NoSuchEntityException);
    await removeTenantStack(stack);
  });
});

afterAll(async () => {
  for (const client of ssm.values()) client.destroy();
  try {
    const stack = await openTenantStack(settings, stackNameFor(SLUG), { create: false });
    await destroyTenantStack(stack);
    await removeTenantStack(stack);
  } catch (error) {
    if (!(error instanceof StackNotFoundError)) throw error;
  }
});
