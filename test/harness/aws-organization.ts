/**
 * A customer's AWS Organization on moto, built as a customer would build it: the management account creates the
 * organization, its OUs (nested) and member accounts, moves and closes accounts. moto is multi-account: the account of
 * each call comes from the assumed role's ARN (test/harness/customer-cloudformation.ts customerAccount), and member
 * accounts created here get their own IAM, SSM and EC2.
 *
 * The StackSet: moto's CloudFormation skips the template's AWS::CloudFormation::StackSet resource (it does not
 * implement it; the rest of the management stack is created), so `deployBootstrapStackSet` creates the StackSet with
 * the resource's own properties through the StackSet API, as CloudFormation would. Where moto's StackSets differ from
 * AWS, it performs AWS's behaviour explicitly:
 * - moto expands a targeted OU one level only; AWS deploys to every account below it: every OU below is named;
 * - moto deploys to the management account when it sits under a targeted root; AWS never does: it is left out;
 * - moto does not deploy automatically to an account that joins a targeted OU; AWS does: `deployToAccount` does it.
 */
import {
  CloseAccountCommand,
  CreateAccountCommand,
  CreateOrganizationalUnitCommand,
  CreateOrganizationCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  ListRootsCommand,
  MoveAccountCommand,
  OrganizationsClient,
} from "@aws-sdk/client-organizations";
import { awsAsCustomer, type CustomerAccount } from "./customer-cloudformation";

export interface CustomerOrganization {
  managementAccountId: string;
  rootId: string;
  client: OrganizationsClient;
  createOu(name: string, parentId: string): Promise<string>;
  /** Creates a member account (moto picks its id) and moves it under `parentId`. */
  createAccount(name: string, parentId: string): Promise<string>;
  moveAccount(accountId: string, from: string, to: string): Promise<void>;
  closeAccount(accountId: string): Promise<void>;
  /** Every OU at or below `ouId` (the root included when named), depth first. */
  ousBelow(ouId: string): Promise<string[]>;
  /** Accounts directly under an OU or the root. */
  accountsIn(parentId: string): Promise<string[]>;
}

export async function createCustomerOrganization(management: CustomerAccount): Promise<CustomerOrganization> {
  const env = management.env;
  const client = new OrganizationsClient({
    region: "us-east-1",
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY!, sessionToken: env.AWS_SESSION_TOKEN },
  });
  await client.send(new CreateOrganizationCommand({ FeatureSet: "ALL" }));
  const rootId = (await client.send(new ListRootsCommand({}))).Roots![0]!.Id!;
  let emails = 0;

  const organization: CustomerOrganization = {
    managementAccountId: management.accountId,
    rootId,
    client,
    async createOu(name, parentId) {
      const created = await client.send(new CreateOrganizationalUnitCommand({ ParentId: parentId, Name: name }));
      return created.OrganizationalUnit!.Id!;
    },
    async createAccount(name, parentId) {
      emails += 1;
      const created = await client.send(
        new CreateAccountCommand({ AccountName: name, Email: `aws+${emails}-${management.accountId}@customer.example` }),
      );
      const accountId = created.CreateAccountStatus!.AccountId!;
      if (parentId !== rootId)
        await client.send(new MoveAccountCommand({ AccountId: accountId, SourceParentId: rootId, DestinationParentId: parentId }));
      return accountId;
    },
    async moveAccount(accountId, from, to) {
      await client.send(new MoveAccountCommand({ AccountId: accountId, SourceParentId: from, DestinationParentId: to }));
    },
    async closeAccount(accountId) {
      await client.send(new CloseAccountCommand({ AccountId: accountId }));
    },
    async ousBelow(ouId) {
      const children = (await client.send(new ListOrganizationalUnitsForParentCommand({ ParentId: ouId }))).OrganizationalUnits ?? [];
      const below = [ouId];
      for (const child of children) below.push(...(await organization.ousBelow(child.Id!)));
      return below;
    },
    async accountsIn(parentId) {
      return ((await client.send(new ListAccountsForParentCommand({ ParentId: parentId }))).Accounts ?? []).map((account) => account.Id!);
    },
  };
  return organization;
}

interface StackSetResource {
  Properties: {
    StackSetName: { "Fn::Sub": string } | string;
    TemplateURL: string;
    PermissionModel: string;
    Capabilities: string[];
    AutoDeployment: { Enabled: boolean; RetainStacksOnAccountRemoval: boolean };
  };
}

/**
 * What CloudFormation does with the management stack's StackSet resource, on moto: the StackSet from the resource's
 * properties (parameters as the stack resolved them), and its instances in every account below the targeted OUs, at
 * any depth, but the management account; in the stack's region only, as the resource says.
 */
export async function deployBootstrapStackSet(
  management: CustomerAccount,
  organization: CustomerOrganization,
  args: {
    organizationTemplate: Record<string, unknown>;
    tenantSlug: string;
    externalId: string;
    targetOus: string[];
    /** Accounts where the StackSet's deployment failed: they get no bootstrap role. */
    failedAccounts?: string[];
  },
): Promise<{ stackSetName: string; accounts: string[] }> {
  const resource = (args.organizationTemplate.Resources as Record<string, StackSetResource>).BootstrapStackSet!;
  const properties = resource.Properties;
  const nameTemplate = typeof properties.StackSetName === "string" ? properties.StackSetName : properties.StackSetName["Fn::Sub"];
  const stackSetName = nameTemplate.replace("${TenantSlug}", args.tenantSlug);
  await awsAsCustomer(management, [
    "cloudformation",
    "create-stack-set",
    "--stack-set-name",
    stackSetName,
    "--template-url",
    properties.TemplateURL,
    "--permission-model",
    properties.PermissionModel,
    "--auto-deployment",
    `Enabled=${properties.AutoDeployment.Enabled},RetainStacksOnAccountRemoval=${properties.AutoDeployment.RetainStacksOnAccountRemoval}`,
    "--capabilities",
    ...properties.Capabilities,
    "--parameters",
    `ParameterKey=TenantSlug,ParameterValue=${args.tenantSlug}`,
    `ParameterKey=ExternalId,ParameterValue=${args.externalId}`,
  ]);
  const accounts: string[] = [];
  for (const ou of args.targetOus) {
    for (const below of await organization.ousBelow(ou)) accounts.push(...(await organization.accountsIn(below)));
  }
  const members = [...new Set(accounts)].filter(
    (accountId) => accountId !== organization.managementAccountId && !(args.failedAccounts ?? []).includes(accountId),
  );
  for (const accountId of members) await deployToAccount(management, stackSetName, accountId);
  return { stackSetName, accounts: members };
}

/** One stack instance, by account: what AWS's automatic deployment does when an account joins a targeted OU. */
export async function deployToAccount(management: CustomerAccount, stackSetName: string, accountId: string): Promise<void> {
  await awsAsCustomer(management, [
    "cloudformation",
    "create-stack-instances",
    "--stack-set-name",
    stackSetName,
    "--accounts",
    accountId,
    "--deployment-targets",
    // moto's SERVICE_MANAGED StackSets demand an OU target and add every account directly in it; an OU id that holds
    // nothing (moto checks only its form) leaves exactly the named account.
    "OrganizationalUnitIds=ou-none-00000000",
    "--regions",
    management.region,
  ]);
}
