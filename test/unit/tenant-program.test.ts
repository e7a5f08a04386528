import * as pulumi from "@pulumi/pulumi";
import { isRpcSecret, unwrapRpcSecret } from "@pulumi/pulumi/runtime/rpc";
import { beforeEach, describe, expect, it } from "vitest";
import { TenantOnboarding } from "../../programs/tenant/component";
import { tenantConfigSchema, type TenantConfigInput } from "../../programs/tenant/config";
import { actionsOf, isMutatingWildcard, type PolicyDocument } from "../../programs/tenant/policies";
import { miniCorpTenantConfig, PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";

interface RegisteredResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

let registered: RegisteredResource[] = [];

beforeEach(async () => {
  registered = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        const state = { ...args.inputs, arn: `arn:mock:${args.type}:${args.name}`, associationId: "assoc-mock" };
        return { id: `${args.name}-id`, state };
      },
      call: (args) => args.inputs,
    },
    "mini-xdr-tenant",
    "tenant-mini-corp",
    true,
  );
});

async function onboard(overrides: Partial<TenantConfigInput> = {}) {
  const tenant = new TenantOnboarding("mini-corp", { config: tenantConfigSchema.parse(miniCorpTenantConfig(overrides)) });
  await new Promise<void>((resolve) => tenant.associationId.apply(() => resolve()));
  // Let the remaining registrations settle.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return tenant;
}

function resourceOf(type: string): RegisteredResource {
  const found = registered.filter((resource) => resource.type === type);
  expect(found, `exactly one ${type}`).toHaveLength(1);
  return found[0]!;
}

const plain = (value: unknown) => (isRpcSecret(value) ? unwrapRpcSecret(value) : value);
const policyOf = (value: unknown) => JSON.parse(plain(value) as string) as PolicyDocument;

describe("TenantOnboarding", () => {
  it("trusts only the platform principal, and only with the tenant's external ID", async () => {
    await onboard();
    const trust = policyOf(resourceOf("aws:iam/role:Role").inputs.assumeRolePolicy);
    expect(trust.Statement).toHaveLength(1);
    const statement = trust.Statement[0]!;
    expect(statement.Principal).toEqual({ AWS: PLATFORM_PRINCIPAL_ARN });
    expect(statement.Action).toBe("sts:AssumeRole");
    expect(statement.Condition).toEqual({ StringEquals: { "sts:ExternalId": "mxdr-ext-4f1c2b7e9a0d4c1b8e6f" } });
  });

  it("bounds the role's session duration and tags it with the tenant", async () => {
    await onboard({ maxSessionDurationSeconds: 7200 });
    const role = resourceOf("aws:iam/role:Role").inputs;
    expect(role.maxSessionDuration).toBe(7200);
    expect(role.tags).toMatchObject({ "mini-xdr:tenant": "mini-corp" });
  });

  it("grants no wildcard on any mutating action", async () => {
    await onboard();
    const policy = policyOf(resourceOf("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    const actions = actionsOf(policy);
    expect(actions.filter(isMutatingWildcard)).toEqual([]);
    expect(actions).toEqual(expect.arrayContaining(["ec2:Describe*", "rds:Describe*", "ssm:SendCommand"]));
  });

  it("scopes SendCommand to the agent document and to instances with the monitoring tag", async () => {
    await onboard({ targetTag: { key: "xdr:monitor", value: "yes" } });
    const policy = policyOf(resourceOf("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    const sendCommand = policy.Statement.filter((statement) => statement.Action === "ssm:SendCommand");
    expect(sendCommand.filter((statement) => statement.Effect === "Allow").map((statement) => statement.Resource)).toEqual([
      ["arn:aws:ssm:*:210987654321:document/MiniXdr-InstallAgent-mini-corp", "arn:aws:ec2:*:210987654321:instance/*"],
    ]);
    const deny = sendCommand.find((statement) => statement.Effect === "Deny");
    expect(deny?.Resource).toBe("arn:aws:ec2:*:210987654321:instance/*");
    expect(deny?.Condition).toEqual({ StringNotEquals: { "ssm:resourceTag/xdr:monitor": "yes" } });
  });

  it("keeps the external ID, the enrollment token and the agent config secret", async () => {
    const tenant = await onboard();
    expect(await (tenant.externalId as unknown as { isSecret: Promise<boolean> }).isSecret).toBe(true);
    const parameter = resourceOf("aws:ssm/parameter:Parameter").inputs;
    expect(parameter.type).toBe("SecureString");
    expect(isRpcSecret(parameter.value)).toBe(true);
    expect(JSON.parse(plain(parameter.value) as string)).toEqual({
      backendUrl: "https://agents.mini-xdr.example.com",
      tenantId: "2",
      enrollmentToken: "mxdr-enroll-7c9e6679742540de944be07fc1f90ae7",
      agentVersion: "1.4.2",
    });
    expect(isRpcSecret(resourceOf("aws:iam/role:Role").inputs.assumeRolePolicy)).toBe(true);
    const provider = resourceOf("pulumi:providers:aws").inputs;
    expect(JSON.stringify(provider)).not.toContain("mxdr-ext-4f1c2b7e9a0d4c1b8e6f\"");
  });

  it("assumes the customer's bootstrap role in the home region", async () => {
    await onboard();
    const provider = resourceOf("pulumi:providers:aws").inputs;
    expect(provider.region).toBe("us-east-1");
    const assumeRoles = JSON.parse(String(plain(provider.assumeRoles)));
    expect(assumeRoles).toEqual([
      {
        roleArn: "arn:aws:iam::210987654321:role/MiniXdrBootstrap",
        externalId: "mxdr-ext-4f1c2b7e9a0d4c1b8e6f",
        sessionName: "mini-xdr-onboarding-mini-corp",
      },
    ]);
  });

  it("targets the association at the monitoring tag by default, or at every managed instance", async () => {
    await onboard();
    const tagged = resourceOf("aws:ssm/association:Association").inputs;
    expect(tagged.targets).toEqual([{ key: "tag:xdr:monitor", values: ["true"] }]);
    expect(tagged.scheduleExpression).toBe("rate(30 minutes)");
    expect(tagged.name).toBe("MiniXdr-InstallAgent-mini-corp");

    registered = [];
    await onboard({ targetAllManagedInstances: true });
    expect(resourceOf("aws:ssm/association:Association").inputs.targets).toEqual([
      { key: "InstanceIds", values: ["*"] },
    ]);
  });

  it("installs the agent with Linux and Windows steps that read the config from the parameter", async () => {
    await onboard();
    const document = resourceOf("aws:ssm/document:Document").inputs;
    expect(document.documentType).toBe("Command");
    const content = JSON.parse(document.content as string);
    expect(content.mainSteps.map((step: { action: string; precondition: unknown }) => [step.action, step.precondition])).toEqual([
      ["aws:runShellScript", { StringEquals: ["platformType", "Linux"] }],
      ["aws:runPowerShellScript", { StringEquals: ["platformType", "Windows"] }],
    ]);
    expect(content.parameters.ConfigParameterName.default).toBe("/mini-xdr/mini-corp/agent-config");
    expect(document.content).not.toContain("mxdr-enroll-");
  });

  it("deploys the Kubernetes agent only when a kubeconfig is configured", async () => {
    await onboard();
    expect(registered.filter((resource) => resource.type.startsWith("kubernetes:"))).toEqual([]);

    registered = [];
    await onboard({ kubeconfig: "apiVersion: v1\nkind: Config\nclusters: []\n" });
    const kubernetesTypes = registered.filter((resource) => resource.type.startsWith("kubernetes:")).map((r) => r.type);
    expect(kubernetesTypes.sort()).toEqual([
      "kubernetes:apps/v1:DaemonSet",
      "kubernetes:core/v1:Namespace",
      "kubernetes:core/v1:Secret",
    ]);
    const provider = resourceOf("pulumi:providers:kubernetes").inputs;
    expect(isRpcSecret(provider.kubeconfig)).toBe(true);
    const secret = resourceOf("kubernetes:core/v1:Secret").inputs;
    expect(isRpcSecret(secret.stringData)).toBe(true);
  });
});
