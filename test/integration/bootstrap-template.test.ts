/**
 * The bootstrap link end to end on the emulator: the template is published to moto's S3, the customer creates the
 * stack from that URL with the AWS CLI (as the quick-create page would, with CAPABILITY_NAMED_IAM) in their account,
 * the role it creates serves as the bootstrap role of a real `up` (Automation API, real Pulumi CLI, the stand-in
 * pulumi-resource-aws on moto), and the customer deletes the stack with the offboarding instructions' command.
 *
 * moto 5.2.5 does not enforce IAM: it grants AssumeRole for any role whatever its trust policy and ignores the
 * external ID. So "a role created with a wrong external ID is not connectable" is shown on what moto does keep: the
 * trust policy the stack deployed, read back from moto's IAM and evaluated with the IAM simulator for the platform
 * presenting the tenant's external ID. (STS's refusal itself, and the 422 of the connect route, are pinned in
 * test/integration/bootstrap-role-check.test.ts with a one-answer STS stand-in.)
 */
import {
  DeletePolicyCommand,
  GetPolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  ListRoleTagsCommand,
  NoSuchEntityException,
} from "@aws-sdk/client-iam";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configureTenantStack,
  destroyTenantStack,
  openTenantStack,
  stackNameFor,
  removeTenantStack,
  StackNotFoundError,
  upTenantStack,
  type AutomationSettings,
} from "../../automation";
import { buildBootstrapLink } from "../../services/integration/bootstrap-link-fns";
import { createBootstrapLinkService, type BootstrapLinkService } from "../../services/integration/bootstrap-link-service";
import { bootstrapArns, buildBootstrapPolicy, tenantStackRequests } from "../../services/integration/bootstrap-policy-fns";
import { BOOTSTRAP_TEMPLATE_PARAMETERS, renderBootstrapTemplate } from "../../services/integration/bootstrap-template-fns";
import { publishBootstrapTemplate, type PublishedTemplate } from "../../services/integration/bootstrap-template-publisher";
import { readRoleVersionWithIam } from "../../services/integration/bootstrap-versions";
import { isAllowed, trustAdmits } from "../harness/iam-simulation";
import { verifyBootstrapRoleWithSts } from "../../services/integration/verify-bootstrap-role";
import { miniCorpTenantConfig, PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";
import { awsAsCustomer, customerAccount, type CustomerAccount } from "../harness/customer-cloudformation";
import { temporaryAutomationSettings } from "../harness/pulumi-project";

const REGION = "us-east-1";
const CUSTOMER_ACCOUNT = "210987654321";
const SLUG = "boot-corp";
const EXTERNAL_ID = "mxdr-ext-b00tc0rp5e1f2a3b4c5d";
const WRONG_SLUG = "wrong-corp";
const SETTINGS = { bucket: "mini-xdr-bootstrap-templates", region: REGION };

let published: PublishedTemplate;
let service: BootstrapLinkService;
let automation: AutomationSettings;
let customer: CustomerAccount;

/** The AWS CLI as the customer, in their account. */
const aws = (args: string[]) => awsAsCustomer(customer, args);

async function createBootstrapStack(args: { templateUrl: string; stackName: string; tenantSlug: string; externalId: string }) {
  await aws([
    "cloudformation",
    "create-stack",
    "--region",
    REGION,
    "--stack-name",
    args.stackName,
    "--template-url",
    args.templateUrl,
    "--capabilities",
    "CAPABILITY_NAMED_IAM",
    "--parameters",
    `ParameterKey=${BOOTSTRAP_TEMPLATE_PARAMETERS.tenantSlug},ParameterValue=${args.tenantSlug}`,
    `ParameterKey=${BOOTSTRAP_TEMPLATE_PARAMETERS.externalId},ParameterValue=${args.externalId}`,
  ]);
  await aws(["cloudformation", "wait", "stack-create-complete", "--region", REGION, "--stack-name", args.stackName]);
  const described = JSON.parse(await aws(["cloudformation", "describe-stacks", "--region", REGION, "--stack-name", args.stackName]));
  const stack = described.Stacks[0];
  return {
    status: stack.StackStatus as string,
    outputs: Object.fromEntries((stack.Outputs as { OutputKey: string; OutputValue: string }[]).map((o) => [o.OutputKey, o.OutputValue])),
  };
}

async function trustPolicyOf(roleName: string): Promise<{ roleArn: string; trust: object }> {
  const role = await customer.iam.send(new GetRoleCommand({ RoleName: roleName }));
  return { roleArn: role.Role!.Arn!, trust: JSON.parse(decodeURIComponent(role.Role!.AssumeRolePolicyDocument!)) as object };
}

/** Would AWS let the platform in with the tenant's external ID? */
const platformMayAssume = ({ roleArn, trust }: { roleArn: string; trust: object }, externalId: string) =>
  trustAdmits(trust, { roleArn, principal: PLATFORM_PRINCIPAL_ARN, context: { "sts:ExternalId": externalId } });

beforeAll(async () => {
  customer = await customerAccount(CUSTOMER_ACCOUNT, REGION);
  automation = await temporaryAutomationSettings();
});

describe("the bootstrap template on the emulator", () => {
  it("is published to S3 under its content address, once per version", async () => {
    // The platform's own S3 (default credentials); the SDK reaches moto through AWS_ENDPOINT_URL only.
    const s3 = new S3Client({ region: REGION });
    await s3.send(new CreateBucketCommand({ Bucket: SETTINGS.bucket }));
    const template = renderBootstrapTemplate({ platformPrincipalArn: PLATFORM_PRINCIPAL_ARN });
    const publishedOnce = await publishBootstrapTemplate(s3, SETTINGS, template.body, template.version);
    expect(publishedOnce).toEqual({
      version: template.version,
      key: `bootstrap/${template.version}.json`,
      url: `https://${SETTINGS.bucket}.s3.${REGION}.amazonaws.com/bootstrap/${template.version}.json`,
      uploaded: true,
    });
    const object = await s3.send(new GetObjectCommand({ Bucket: SETTINGS.bucket, Key: publishedOnce.key }));
    expect(await object.Body!.transformToString()).toBe(template.body);
    expect(object.ContentType).toBe("application/json");
    service = createBootstrapLinkService({ s3, publish: SETTINGS, platformPrincipalArn: PLATFORM_PRINCIPAL_ARN });
    published = await service.ensurePublished();
    expect(published).toEqual({ ...publishedOnce, uploaded: false });
    // The stack the template creates carries its version as an output and as the role's tag (read back later).
    expect(service.current().version).toBe(template.version);
    expect(await service.templateOf(template.version)).toBe(template.body);
    expect(await service.templateOf("0123456789ab")).toBeUndefined();
    expect(await service.templateOf("../../etc/passwd")).toBeUndefined();
  });

  it("creates the bootstrap role from the quick-create link's template URL and parameters", async () => {
    const link = await service.bootstrapFor({ tenantSlug: SLUG, externalId: EXTERNAL_ID, region: REGION });
    expect(link.templateUrl).toBe(published.url);
    expect(JSON.parse(link.template)).toHaveProperty("Resources.BootstrapRole");
    const prefilled = new URLSearchParams(new URL(link.quickCreateUrl).hash.slice("#/stacks/quickcreate?".length));
    expect(prefilled.get("templateURL")).toBe(published.url);

    const stack = await createBootstrapStack({
      templateUrl: prefilled.get("templateURL")!,
      stackName: prefilled.get("stackName")!,
      tenantSlug: prefilled.get(`param_${BOOTSTRAP_TEMPLATE_PARAMETERS.tenantSlug}`)!,
      externalId: prefilled.get(`param_${BOOTSTRAP_TEMPLATE_PARAMETERS.externalId}`)!,
    });
    const arn = bootstrapArns({ partition: "aws", accountId: CUSTOMER_ACCOUNT, tenantSlug: SLUG });
    expect(stack.status).toBe("CREATE_COMPLETE");
    expect(stack.outputs).toEqual({
      BootstrapRoleArn: arn.bootstrapRole,
      PermissionsBoundaryArn: arn.boundaryPolicy,
      BootstrapVersion: link.templateVersion,
    });
    // The role says which version made it, and may read that (and nothing else of itself): the platform reads it so.
    const tags = await customer.iam.send(new ListRoleTagsCommand({ RoleName: link.roleName }));
    expect(tags.Tags).toContainEqual({ Key: "mini-xdr:bootstrap-version", Value: link.templateVersion });
    expect(await readRoleVersionWithIam({ roleArn: arn.bootstrapRole, externalId: EXTERNAL_ID, sessionName: "version" })).toBe(link.templateVersion);

    // What moto's IAM holds is what the simulator checks: the trust admits the platform with this tenant's ID only...
    const trust = await trustPolicyOf(link.roleName);
    expect(await platformMayAssume(trust, EXTERNAL_ID)).toBe(true);
    expect(await platformMayAssume(trust, "mxdr-ext-someone-else-000000")).toBe(false);
    // ...and the inline policy is the builder's, allowing every call of the tenant stack.
    const inline = await customer.iam.send(new GetRolePolicyCommand({ RoleName: link.roleName, PolicyName: "mini-xdr-bootstrap" }));
    const deployed = JSON.parse(decodeURIComponent(inline.PolicyDocument!)) as object;
    expect(deployed).toEqual(buildBootstrapPolicy({ partition: "aws", accountId: CUSTOMER_ACCOUNT, tenantSlug: SLUG }));
    const requests = tenantStackRequests({ accountId: CUSTOMER_ACCOUNT, tenantSlug: SLUG, regions: [REGION], clusters: true });
    const bootstrapRole = { arn: arn.bootstrapRole, policies: [deployed] };
    const allowed = await Promise.all(requests.map((request) => isAllowed(bootstrapRole, request)));
    expect(requests.filter((_, index) => !allowed[index])).toEqual([]);
    expect(await isAllowed(bootstrapRole, { action: "iam:ListRoleTags", resources: [arn.bootstrapRole] })).toBe(true);
    expect(await isAllowed(bootstrapRole, { action: "iam:ListRoleTags", resources: [`arn:aws:iam::${CUSTOMER_ACCOUNT}:role/SomeoneElse`] })).toBe(
      false,
    );
    // EKS: an access entry for the access role only, associated with the agent's access policy only.
    const cluster = `arn:aws:eks:${REGION}:${CUSTOMER_ACCOUNT}:cluster/payments`;
    const someoneElse = `arn:aws:iam::${CUSTOMER_ACCOUNT}:role/SomeoneElse`;
    expect(
      await isAllowed(bootstrapRole, { action: "eks:CreateAccessEntry", resources: [cluster], context: { "eks:principalArn": someoneElse } }),
    ).toBe(false);
    const ourEntry = `arn:aws:eks:${REGION}:${CUSTOMER_ACCOUNT}:access-entry/payments/role/${CUSTOMER_ACCOUNT}/MiniXdrAccess-${SLUG}/1f2e3d4c-5b6a-4c3e-9a57-4ac8e2f16b0d`;
    const otherEntry = ourEntry.replace(`MiniXdrAccess-${SLUG}`, "SomeoneElse");
    expect(await isAllowed(bootstrapRole, { action: "eks:DeleteAccessEntry", resources: [otherEntry] })).toBe(false);
    expect(
      await isAllowed(bootstrapRole, {
        action: "eks:AssociateAccessPolicy",
        resources: [ourEntry],
        context: { "eks:policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy", "eks:accessScope": "cluster" },
      }),
    ).toBe(false);
    const boundary = await customer.iam.send(new GetPolicyCommand({ PolicyArn: arn.boundaryPolicy }));
    expect(boundary.Policy!.PolicyName).toBe(`MiniXdrBoundary-${SLUG}`);
  });

  it("serves as the bootstrap role of a real up of the tenant stack", async () => {
    const bootstrapRoleArn = bootstrapArns({ partition: "aws", accountId: CUSTOMER_ACCOUNT, tenantSlug: SLUG }).bootstrapRole;
    expect(await verifyBootstrapRoleWithSts({ roleArn: bootstrapRoleArn, externalId: EXTERNAL_ID, region: REGION, sessionName: "verify" })).toEqual({
      assumed: true,
    });
    const config = miniCorpTenantConfig({ tenantSlug: SLUG, bootstrapRoleArn, externalId: EXTERNAL_ID });
    expect(config.customerAccountId).toBe(CUSTOMER_ACCOUNT);
    const stack = await openTenantStack(automation, stackNameFor(SLUG), { create: true });
    await configureTenantStack(stack, config);
    const result = await upTenantStack(stack);
    expect(result.changeSummary).toEqual({ create: 8 });
    expect(result.outputs.roleArn).toBe(`arn:aws:iam::${CUSTOMER_ACCOUNT}:role/MiniXdrAccess-${SLUG}`);
    const accessRole = await customer.iam.send(new GetRoleCommand({ RoleName: `MiniXdrAccess-${SLUG}` }));
    expect(accessRole.Role!.Arn).toBe(result.outputs.roleArn);

    const destroyed = await destroyTenantStack(stack);
    expect(destroyed.changeSummary).toEqual({ delete: 8 });
    await removeTenantStack(stack);
  });

  it("a role created with a wrong external ID does not admit the platform with the tenant's ID", async () => {
    const link = buildBootstrapLink({ tenantSlug: WRONG_SLUG, externalId: EXTERNAL_ID, region: REGION, templateUrl: published.url });
    // The customer edits the prefilled external ID before creating the stack.
    const stack = await createBootstrapStack({
      templateUrl: link.templateUrl,
      stackName: link.stackName,
      tenantSlug: WRONG_SLUG,
      externalId: "mxdr-ext-typed-by-hand-0000",
    });
    expect(stack.status).toBe("CREATE_COMPLETE");
    const trust = await trustPolicyOf(link.roleName);
    expect(await platformMayAssume(trust, EXTERNAL_ID)).toBe(false);
    expect(await platformMayAssume(trust, "mxdr-ext-typed-by-hand-0000")).toBe(true);
    // moto itself does not enforce the trust policy: it grants AssumeRole with the tenant's ID all the same. In AWS,
    // STS refuses this call (AccessDenied), which is what keeps the tenant from being connected.
    expect(
      await verifyBootstrapRoleWithSts({ roleArn: stack.outputs.BootstrapRoleArn!, externalId: EXTERNAL_ID, region: REGION, sessionName: "verify" }),
    ).toEqual({ assumed: true });
  });

  it("is deleted with the offboarding instructions' command, leaving no bootstrap role", async () => {
    for (const slug of [SLUG, WRONG_SLUG]) {
      const instructions = service.offboardingFor({ tenantSlug: slug, region: REGION });
      const [program, ...args] = instructions.cliCommand.split(" ");
      expect(program).toBe("aws");
      await aws(args);
      await aws(["cloudformation", "wait", "stack-delete-complete", "--region", REGION, "--stack-name", instructions.stackName]);
      await expect(customer.iam.send(new GetRoleCommand({ RoleName: `MiniXdrBootstrap-${slug}` }))).rejects.toBeInstanceOf(NoSuchEntityException);
      // moto 5.2.5 has no delete handler for AWS::IAM::ManagedPolicy, so the boundary outlives the stack there; AWS
      // deletes it with the stack (the template sets no DeletionPolicy: test/unit/bootstrap-template.test.ts).
      // Removed by hand so moto is clean for the next file.
      const boundaryArn = bootstrapArns({ partition: "aws", accountId: CUSTOMER_ACCOUNT, tenantSlug: slug }).boundaryPolicy;
      await customer.iam.send(new DeletePolicyCommand({ PolicyArn: boundaryArn }));
    }
  });
});

afterAll(async () => {
  // Leave moto clean for the next file even when a test above failed midway.
  try {
    const stack = await openTenantStack(automation, stackNameFor(SLUG), { create: false });
    await destroyTenantStack(stack);
    await removeTenantStack(stack);
  } catch (error) {
    if (!(error instanceof StackNotFoundError)) throw error;
  }
  for (const slug of [SLUG, WRONG_SLUG]) {
    await aws(["cloudformation", "delete-stack", "--region", REGION, "--stack-name", `MiniXdr-Bootstrap-${slug}`]).catch(() => undefined);
  }
});
