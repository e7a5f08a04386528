import * as pulumi from "@pulumi/pulumi";
import { isRpcSecret, unwrapRpcSecret } from "@pulumi/pulumi/runtime/rpc";
import { beforeEach, describe, expect, it } from "vitest";
import { TenantOnboarding } from "../../programs/tenant/component";
import { tenantConfigSchema, type TenantConfigInput } from "../../programs/tenant/config";
import { actionsOf, isMutatingWildcard } from "../../programs/tenant/policies";
import type { PolicyDocument } from "../../programs/tenant/policy-document";
import { miniCorpTenantConfig, PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";

interface RegisteredResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  provider?: string;
  aliases?: unknown[];
}

let registered: RegisteredResource[] = [];

beforeEach(async () => {
  registered = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider });
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

function resourcesOf(type: string): RegisteredResource[] {
  return registered.filter((resource) => resource.type === type);
}

/** The provider a resource was registered with: `urn::id`, the id being `<name>-id` here. */
const providerName = (resource: RegisteredResource) => resource.provider?.split("::").at(-1)?.replace(/-id$/, "");
const providerRegion = (resource: RegisteredResource) =>
  registered.find((p) => p.type === "pulumi:providers:aws" && p.name === providerName(resource))?.inputs.region;

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

  it("scopes SendCommand in tag mode to the agent document and to instances with the opt-in tag", async () => {
    await onboard({ targetingMode: "tag", targetTag: { key: "xdr:monitor", value: "yes" } });
    const policy = policyOf(resourceOf("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    const sendCommand = policy.Statement.filter((statement) => statement.Action === "ssm:SendCommand");
    expect(sendCommand.filter((statement) => statement.Effect === "Allow").map((statement) => statement.Resource)).toEqual([
      ["arn:aws:ssm:us-east-1:210987654321:document/MiniXdr-InstallAgent-mini-corp", "arn:aws:ec2:us-east-1:210987654321:instance/*"],
    ]);
    const deny = sendCommand.find((statement) => statement.Effect === "Deny");
    expect(deny?.Resource).toEqual(["arn:aws:ec2:us-east-1:210987654321:instance/*"]);
    expect(deny?.Condition).toEqual({ StringNotEquals: { "ssm:resourceTag/xdr:monitor": "yes" } });
  });

  it("scopes SendCommand by default to every instance without the exclusion tag", async () => {
    await onboard({ exclusionTag: { key: "xdr:skip", value: "yes" } });
    const policy = policyOf(resourceOf("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    const onInstances = policy.Statement.find((statement) => statement.Sid === "OnlyOnMonitoredInstances");
    expect(onInstances?.Effect).toBe("Deny");
    expect(onInstances?.Condition).toEqual({ StringEquals: { "ssm:resourceTag/xdr:skip": "yes" } });
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
    expect(JSON.stringify(provider)).not.toContain('mxdr-ext-4f1c2b7e9a0d4c1b8e6f"');
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

  it("targets every managed instance by default, the document skipping those with the exclusion tag", async () => {
    await onboard();
    const association = resourceOf("aws:ssm/association:Association").inputs;
    expect(association.targets).toEqual([{ key: "InstanceIds", values: ["*"] }]);
    expect(association.parameters).toEqual({
      ConfigParameterName: "/mini-xdr/mini-corp/agent-config",
      ExcludeTagKey: "xdr:monitor",
      ExcludeTagValue: "false",
    });
    expect(association.scheduleExpression).toBe("rate(30 minutes)");
    expect(association.name).toBe("MiniXdr-InstallAgent-mini-corp");
    expect([association.maxConcurrency, association.maxErrors]).toEqual(["10%", "10%"]);
    const content = JSON.parse(resourceOf("aws:ssm/document:Document").inputs.content as string);
    expect([content.parameters.ExcludeTagKey.default, content.parameters.ExcludeTagValue.default]).toEqual(["xdr:monitor", "false"]);
  });

  it("targets the opt-in tag in tag mode (also from the old targetAllManagedInstances=false), with no exclusion check", async () => {
    for (const overrides of [{ targetingMode: "tag" as const }, { targetAllManagedInstances: false }]) {
      registered = [];
      await onboard({ ...overrides, associationMaxConcurrency: "5", associationMaxErrors: "0" });
      const association = resourceOf("aws:ssm/association:Association").inputs;
      expect(association.targets).toEqual([{ key: "tag:xdr:monitor", values: ["true"] }]);
      expect(association.parameters).toEqual({ ConfigParameterName: "/mini-xdr/mini-corp/agent-config" });
      expect([association.maxConcurrency, association.maxErrors]).toEqual(["5", "0"]);
      const content = JSON.parse(resourceOf("aws:ssm/document:Document").inputs.content as string);
      expect(content.parameters.ExcludeTagKey.default).toBe("");
    }
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

  it("rolls out in every region through a provider per region; IAM once, through the home region's", async () => {
    const regions = ["us-east-1", "eu-west-1", "ap-southeast-2"];
    const tenant = await onboard({ regions });
    const providers = resourcesOf("pulumi:providers:aws");
    // Registration order is not creation order (aliases resolve asynchronously): compare sorted.
    const sorted = [...regions].sort();
    expect(providers.map((p) => [p.name, p.inputs.region]).sort()).toEqual(sorted.map((r) => [`mini-corp-customer-${r}`, r]));
    for (const provider of providers) {
      expect(isRpcSecret(provider.inputs.assumeRoles)).toBe(true);
      expect(JSON.parse(String(plain(provider.inputs.assumeRoles)))).toEqual([
        {
          roleArn: "arn:aws:iam::210987654321:role/MiniXdrBootstrap",
          externalId: "mxdr-ext-4f1c2b7e9a0d4c1b8e6f",
          sessionName: "mini-xdr-onboarding-mini-corp",
        },
      ]);
      expect(JSON.parse(String(provider.inputs.allowedAccountIds))).toEqual(["210987654321"]);
    }
    for (const type of ["aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy"]) {
      expect(providerRegion(resourceOf(type)), type).toBe("us-east-1");
    }
    for (const [type, prefix] of [
      ["aws:ssm/parameter:Parameter", "mini-corp-agent-config"],
      ["aws:ssm/document:Document", "mini-corp-agent-install"],
      ["aws:ssm/association:Association", "mini-corp-agent-association"],
    ] as const) {
      const perRegion = resourcesOf(type);
      expect(perRegion.map((r) => [r.name, providerRegion(r)]).sort(), type).toEqual(sorted.map((r) => [`${prefix}-${r}`, r]));
    }
    for (const parameter of resourcesOf("aws:ssm/parameter:Parameter")) {
      expect(parameter.inputs.type).toBe("SecureString");
      expect(isRpcSecret(parameter.inputs.value)).toBe(true);
    }

    const policy = policyOf(resourceOf("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    const onDocuments = policy.Statement.find((statement) => statement.Sid === "RunAgentDocument");
    expect(onDocuments?.Resource).toEqual([
      ...regions.map((r) => `arn:aws:ssm:${r}:210987654321:document/MiniXdr-InstallAgent-mini-corp`),
      ...regions.map((r) => `arn:aws:ec2:${r}:210987654321:instance/*`),
    ]);
    const onInstances = policy.Statement.find((statement) => statement.Sid === "OnlyOnMonitoredInstances");
    expect(onInstances?.Resource).toEqual(regions.map((r) => `arn:aws:ec2:${r}:210987654321:instance/*`));

    const outputs = await new Promise<Record<string, unknown>>((resolve) =>
      pulumi.output(tenant.regions).apply((value) => resolve(value as Record<string, unknown>)),
    );
    expect(Object.keys(outputs)).toEqual(regions);
    expect(outputs["eu-west-1"]).toEqual({
      parameterName: "/mini-xdr/mini-corp/agent-config",
      documentName: "MiniXdr-InstallAgent-mini-corp",
      associationId: "assoc-mock",
    });
  });

  it("keeps the home region's resources at their former names through aliases", async () => {
    const aliasesOf = new Map<string, unknown>();
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider });
          return { id: `${args.name}-id`, state: { ...args.inputs, associationId: "assoc-mock" } };
        },
        call: (args) => args.inputs,
      },
      "mini-xdr-tenant",
      "tenant-mini-corp",
      true,
    );
    const tenant = new TenantOnboarding("mini-corp", {
      config: tenantConfigSchema.parse(miniCorpTenantConfig({ regions: ["us-east-1", "eu-west-1"] })),
    });
    // Aliases are resolved to URNs on the resource itself; read them from the children's options.
    for (const child of (tenant as unknown as { __childResources?: Set<pulumi.Resource> }).__childResources ?? []) {
      const name = await new Promise<string>((resolve) => child.urn.apply((urn) => resolve(urn.split("::").at(-1)!)));
      const aliases = (child as unknown as { __aliases?: pulumi.Input<string>[] }).__aliases ?? [];
      aliasesOf.set(name, await Promise.all(aliases.map((alias) => new Promise((resolve) => pulumi.output(alias).apply(resolve)))));
    }
    const aliasNames = (name: string) => (aliasesOf.get(name) as string[]).map((urn) => urn.split("::").at(-1));
    expect(aliasNames("mini-corp-customer-us-east-1")).toEqual(["mini-corp-customer"]);
    expect(aliasNames("mini-corp-agent-config-us-east-1")).toEqual(["mini-corp-agent-config"]);
    expect(aliasNames("mini-corp-agent-install-us-east-1")).toEqual(["mini-corp-agent-install"]);
    expect(aliasNames("mini-corp-agent-association-us-east-1")).toEqual(["mini-corp-agent-association"]);
    for (const name of ["mini-corp-customer-eu-west-1", "mini-corp-agent-config-eu-west-1", "mini-corp-agent-association-eu-west-1"]) {
      expect(aliasNames(name), name).toEqual([]);
    }
  });

  it("turns on Default Host Management only when asked: one role, a service setting per region", async () => {
    await onboard({ regions: ["us-east-1", "eu-west-1"] });
    expect(resourcesOf("aws:ssm/serviceSetting:ServiceSetting")).toEqual([]);
    expect(resourcesOf("aws:iam/role:Role")).toHaveLength(1);

    registered = [];
    await onboard({ regions: ["us-east-1", "eu-west-1"], enableDefaultHostManagement: true });
    const roles = resourcesOf("aws:iam/role:Role");
    expect(roles).toHaveLength(2);
    const hostRole = roles.find((role) => role.inputs.name === "MiniXdr-HostManagement-mini-corp")!;
    expect(providerRegion(hostRole)).toBe("us-east-1");
    expect(policyOf(hostRole.inputs.assumeRolePolicy).Statement).toEqual([
      { Effect: "Allow", Principal: { Service: "ssm.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
    expect(resourceOf("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs).toMatchObject({
      role: "MiniXdr-HostManagement-mini-corp",
      policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedEC2InstanceDefaultPolicy",
    });
    const settings = resourcesOf("aws:ssm/serviceSetting:ServiceSetting");
    expect(settings.map((setting) => [providerRegion(setting), setting.inputs.settingId, setting.inputs.settingValue]).sort()).toEqual(
      ["eu-west-1", "us-east-1"].map((region) => [
        region,
        `arn:aws:ssm:${region}:210987654321:servicesetting/ssm/managed-instance/default-ec2-instance-management-role`,
        "MiniXdr-HostManagement-mini-corp",
      ]),
    );
  });

  it("grants an access entry and deploys the agent on each EKS cluster in its config, none without", async () => {
    await onboard();
    expect(registered.filter((resource) => resource.type.startsWith("kubernetes:") || resource.type.startsWith("aws:eks/"))).toEqual([]);

    registered = [];
    const cluster = { endpoint: "https://ABC123.gr7.eu-west-1.eks.amazonaws.com", certificateAuthority: "LS0tLS1CRUdJTg==" };
    await onboard({
      regions: ["us-east-1", "eu-west-1"],
      clusters: [
        { name: "payments", region: "eu-west-1", ...cluster },
        { name: "web", region: "us-east-1", ...cluster },
      ],
    });
    const entries = resourcesOf("aws:eks/accessEntry:AccessEntry");
    expect(entries.map((entry) => [providerRegion(entry), entry.inputs.clusterName, entry.inputs.type]).sort()).toEqual([
      ["eu-west-1", "payments", "STANDARD"],
      ["us-east-1", "web", "STANDARD"],
    ]);
    const associations = resourcesOf("aws:eks/accessPolicyAssociation:AccessPolicyAssociation");
    expect(associations.map((association) => [association.inputs.policyArn, association.inputs.accessScope])).toEqual(
      Array(2).fill(["arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", { type: "cluster" }]),
    );
    const kubernetesTypes = registered.filter((resource) => resource.type.startsWith("kubernetes:")).map((r) => r.type);
    expect(kubernetesTypes.filter((type) => type === "kubernetes:apps/v1:DaemonSet")).toHaveLength(2);
    expect(new Set(kubernetesTypes)).toEqual(
      new Set(["kubernetes:apps/v1:DaemonSet", "kubernetes:core/v1:Namespace", "kubernetes:core/v1:ServiceAccount", "kubernetes:core/v1:Secret"]),
    );

    // Each cluster's provider runs the token plugin (no token in the kubeconfig), as the access role, with the external ID.
    const providers = resourcesOf("pulumi:providers:kubernetes");
    expect(providers).toHaveLength(2);
    for (const provider of providers) {
      expect(isRpcSecret(provider.inputs.kubeconfig)).toBe(true);
      const kubeconfig = JSON.parse(plain(provider.inputs.kubeconfig) as string);
      expect(kubeconfig.clusters[0].cluster.server).toBe(cluster.endpoint);
      const exec = kubeconfig.users[0].user.exec;
      expect(exec.args.at(-1)).toMatch(/programs\/tenant\/eks-token\.ts$/);
      expect(Object.fromEntries(exec.env.map((e: { name: string; value: string }) => [e.name, e.value]))).toMatchObject({
        MINI_XDR_EKS_ROLE_ARN: "arn:mock:aws:iam/role:Role:mini-corp-access-role",
        MINI_XDR_EKS_EXTERNAL_ID: "mxdr-ext-4f1c2b7e9a0d4c1b8e6f",
      });
      expect(JSON.stringify(kubeconfig)).not.toContain("k8s-aws-v1");
    }
    const daemonSet = resourcesOf("kubernetes:apps/v1:DaemonSet")[0]!.inputs as { spec: { template: { spec: Record<string, unknown> } } };
    expect(daemonSet.spec.template.spec).toMatchObject({
      tolerations: [{ operator: "Exists" }],
      nodeSelector: { "kubernetes.io/os": "linux" },
      hostNetwork: true,
      serviceAccountName: "mini-xdr-agent",
    });
    // Not on Fargate's nodes (no DaemonSets there); a cluster gone since the last up does not block the next.
    expect(JSON.stringify(daemonSet.spec.template.spec)).toContain('"values":["fargate"]');
    // (A provider resource's non-string inputs reach the engine JSON-encoded.)
    for (const provider of providers) expect(provider.inputs.deleteUnreachable).toBe("true");
    for (const secret of resourcesOf("kubernetes:core/v1:Secret")) expect(isRpcSecret(secret.inputs.stringData)).toBe(true);
  });
});
