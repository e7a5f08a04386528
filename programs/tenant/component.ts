import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { buildAgentInstallDocument } from "./agent-document";
import type { TenantConfig } from "./config";
import { AGENT_ACCESS_POLICY_ARN, eksKubeconfig } from "./eks-kubeconfig";
import { KubernetesAgent } from "./kubernetes-agent";
import { DEFAULT_HOST_MANAGEMENT_POLICY_ARN, defaultHostManagementSettingId, resourceNames } from "./naming";
import { buildAccessPolicy, buildDefaultHostManagementTrustPolicy, buildTrustPolicy } from "./policies";
import { associationTargets, documentExclusionTag } from "./targeting-fns";

export interface TenantOnboardingArgs {
  /** Validated tenant configuration; externalId and enrollmentToken are wrapped as secrets here. */
  config: TenantConfig;
}

/** What the stack creates in one region. */
export interface RegionalAgentResources {
  parameterName: pulumi.Output<string>;
  documentName: pulumi.Output<string>;
  associationId: pulumi.Output<string>;
}

/** What the stack applies on one EKS cluster: the agent's namespace and DaemonSet, and how far it rolled out. */
export interface ClusterAgentResources {
  name: string;
  region: string;
  namespace: pulumi.Output<string>;
  daemonSetName: pulumi.Output<string>;
  /** Nodes the DaemonSet should run on, and on how many its pod is ready, when the up finished. */
  desired: pulumi.Output<number>;
  ready: pulumi.Output<number>;
}

/**
 * Everything the Mini-XDR platform needs in a customer's AWS account: the cross-account access role (IAM is
 * global: created once, through the home region's provider) and, in every region of the tenant (SSM is regional),
 * the agent configuration, the agent install document and the association that keeps agents installed.
 *
 * Regional resources carry their region in their logical name, so adding a region only creates that region's and
 * removing one only deletes those. The home region's keep their names from before regions were rolled out
 * separately through aliases, so existing stacks do not replace them.
 */
export class TenantOnboarding extends pulumi.ComponentResource {
  readonly roleArn: pulumi.Output<string>;
  readonly externalId: pulumi.Output<string>;
  /** The home region's parameter, document and association (the first outputs, before `regions`). */
  readonly parameterName: pulumi.Output<string>;
  readonly documentName: pulumi.Output<string>;
  readonly associationId: pulumi.Output<string>;
  readonly regions: Record<string, RegionalAgentResources>;
  readonly defaultHostManagementRoleName: pulumi.Output<string | undefined>;
  /** Per EKS cluster in scope (`<region>/<name>`). */
  readonly clusters: Record<string, ClusterAgentResources>;

  constructor(name: string, args: TenantOnboardingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("minixdr:tenant:TenantOnboarding", name, {}, opts);
    const { config } = args;
    const names = resourceNames(config.tenantSlug);
    const externalId = pulumi.secret(config.externalId);
    const enrollmentToken = pulumi.secret(config.enrollmentToken);
    const tags = { "mini-xdr:tenant": config.tenantSlug, "mini-xdr:managed-by": "mini-xdr-onboarding" };
    const isHome = (region: string) => region === config.homeRegion;
    /** The home region's resources answer to their names from before per-region names. */
    const formerName = (region: string, former: string) => (isHome(region) ? { aliases: [{ name: former }] } : {});

    const providers = new Map(
      config.regions.map((region) => [
        region,
        new aws.Provider(
          `${name}-customer-${region}`,
          {
            region: region as aws.Region,
            assumeRoles: [{ roleArn: config.bootstrapRoleArn, externalId, sessionName: names.sessionName }],
            allowedAccountIds: [config.customerAccountId],
          },
          { parent: this, ...formerName(region, `${name}-customer`) },
        ),
      ]),
    );
    const home = { parent: this, provider: providers.get(config.homeRegion)! };

    const role = new aws.iam.Role(
      `${name}-access-role`,
      {
        name: names.roleName,
        description: `Mini-XDR platform access for tenant ${config.tenantSlug}`,
        assumeRolePolicy: externalId.apply((id) =>
          JSON.stringify(buildTrustPolicy({ platformPrincipalArn: config.platformPrincipalArn, externalId: id })),
        ),
        maxSessionDuration: config.maxSessionDurationSeconds,
        tags,
      },
      home,
    );

    new aws.iam.RolePolicy(
      `${name}-access-policy`,
      {
        name: names.rolePolicyName,
        role: role.name,
        policy: JSON.stringify(
          buildAccessPolicy({
            customerAccountId: config.customerAccountId,
            documentName: names.documentName,
            regions: config.regions,
            targeting: config.targeting,
          }),
        ),
      },
      home,
    );

    const agentConfigJson = pulumi.secret(
      enrollmentToken.apply((token) =>
        JSON.stringify({
          backendUrl: config.agentPublicBaseUrl,
          tenantId: config.tenantId,
          enrollmentToken: token,
          agentVersion: config.agentVersion,
        }),
      ),
    );
    const exclusionTag = documentExclusionTag(config.targeting);
    const documentContent = JSON.stringify(
      buildAgentInstallDocument({
        parameterName: names.parameterName,
        agentPublicBaseUrl: config.agentPublicBaseUrl,
        agentVersion: config.agentVersion,
        exclusionTag,
      }),
      null,
      2,
    );

    this.regions = {};
    for (const region of config.regions) {
      const inRegion = { parent: this, provider: providers.get(region)! };
      const parameter = new aws.ssm.Parameter(
        `${name}-agent-config-${region}`,
        {
          name: names.parameterName,
          type: "SecureString",
          description: `Mini-XDR agent configuration for tenant ${config.tenantSlug}`,
          value: agentConfigJson,
          tags,
        },
        { ...inRegion, ...formerName(region, `${name}-agent-config`) },
      );
      const document = new aws.ssm.Document(
        `${name}-agent-install-${region}`,
        { name: names.documentName, documentType: "Command", documentFormat: "JSON", content: documentContent, tags },
        { ...inRegion, ...formerName(region, `${name}-agent-install`) },
      );
      const association = new aws.ssm.Association(
        `${name}-agent-association-${region}`,
        {
          associationName: names.associationName,
          name: document.name,
          documentVersion: document.latestVersion,
          scheduleExpression: config.associationSchedule,
          targets: associationTargets(config.targeting),
          parameters: {
            ConfigParameterName: parameter.name,
            ...(exclusionTag ? { ExcludeTagKey: exclusionTag.key, ExcludeTagValue: exclusionTag.value } : {}),
          },
          maxConcurrency: config.associationMaxConcurrency,
          maxErrors: config.associationMaxErrors,
          complianceSeverity: "HIGH",
        },
        { ...inRegion, ...formerName(region, `${name}-agent-association`) },
      );
      this.regions[region] = {
        parameterName: parameter.name,
        documentName: document.name,
        associationId: association.associationId,
      };
    }

    this.defaultHostManagementRoleName = config.enableDefaultHostManagement
      ? this.defaultHostManagement(name, config, providers, tags)
      : pulumi.output(undefined);

    this.clusters = this.clusterAgents(name, config, role, providers, agentConfigJson);

    const homeRegion = this.regions[config.homeRegion]!;
    this.roleArn = role.arn;
    this.externalId = externalId;
    this.parameterName = homeRegion.parameterName;
    this.documentName = homeRegion.documentName;
    this.associationId = homeRegion.associationId;
    this.registerOutputs({
      roleArn: this.roleArn,
      externalId: this.externalId,
      parameterName: this.parameterName,
      documentName: this.documentName,
      associationId: this.associationId,
      regions: this.regions,
      defaultHostManagementRoleName: this.defaultHostManagementRoleName,
      clusters: this.clusters,
    });
  }

  /**
   * Per EKS cluster in scope: an access entry for the access role, associated with AmazonEKSClusterAdminPolicy
   * cluster-wide, and the agent applied through a Kubernetes provider that authenticates as that role with a token
   * minted at run time (eks-kubeconfig.ts). Cluster-wide admin because EKS has no narrower access policy that can
   * create the agent's namespace (AmazonEKSAdminPolicy is Kubernetes' `admin`, which cannot), and the agent is a
   * host-PID DaemonSet on every node, as powerful as the nodes themselves whatever the policy.
   */
  private clusterAgents(
    name: string,
    config: TenantConfig,
    role: aws.iam.Role,
    providers: Map<string, aws.Provider>,
    agentConfigJson: pulumi.Output<string>,
  ): Record<string, ClusterAgentResources> {
    const names = resourceNames(config.tenantSlug);
    const clusters: Record<string, ClusterAgentResources> = {};
    for (const cluster of config.clusters) {
      const key = `${cluster.region}/${cluster.name}`;
      const logical = `${name}-eks-${cluster.region}-${cluster.name}`;
      const inRegion = { parent: this, provider: providers.get(cluster.region)! };
      const entry = new aws.eks.AccessEntry(
        `${logical}-access-entry`,
        { clusterName: cluster.name, principalArn: role.arn, type: "STANDARD", tags: { "mini-xdr:tenant": config.tenantSlug } },
        inRegion,
      );
      const association = new aws.eks.AccessPolicyAssociation(
        `${logical}-access-policy`,
        { clusterName: cluster.name, principalArn: entry.principalArn, policyArn: AGENT_ACCESS_POLICY_ARN, accessScope: { type: "cluster" } },
        inRegion,
      );
      // Through the association's id, the provider (and so everything on the cluster) waits for the access it grants,
      // and a destroy removes the agent before the access.
      const kubeconfig = pulumi
        .all([role.arn, pulumi.secret(config.externalId), association.id])
        .apply(([roleArn, externalId]) => eksKubeconfig({ cluster, roleArn, externalId, sessionName: names.sessionName }));
      const agent = new KubernetesAgent(
        logical,
        {
          kubeconfig: pulumi.secret(kubeconfig),
          namespace: names.kubernetesNamespace,
          image: config.agentImage,
          agentVersion: config.agentVersion,
          agentConfigJson,
          tenantSlug: config.tenantSlug,
        },
        { parent: this, dependsOn: [association] },
      );
      clusters[key] = {
        name: cluster.name,
        region: cluster.region,
        namespace: agent.namespace,
        daemonSetName: agent.daemonSetName,
        desired: agent.desired,
        ready: agent.ready,
      };
    }
    return clusters;
  }

  /**
   * SSM's Default Host Management Configuration: a role SSM passes to instances without an instance profile (once,
   * IAM is global), named in each region's service setting, so those instances become managed instances.
   */
  private defaultHostManagement(
    name: string,
    config: TenantConfig,
    providers: Map<string, aws.Provider>,
    tags: Record<string, string>,
  ): pulumi.Output<string> {
    const names = resourceNames(config.tenantSlug);
    const home = { parent: this, provider: providers.get(config.homeRegion)! };
    const role = new aws.iam.Role(
      `${name}-host-management-role`,
      {
        name: names.defaultHostManagementRoleName,
        description: `SSM Default Host Management Configuration for Mini-XDR tenant ${config.tenantSlug}`,
        assumeRolePolicy: JSON.stringify(buildDefaultHostManagementTrustPolicy()),
        tags,
      },
      home,
    );
    const attachment = new aws.iam.RolePolicyAttachment(
      `${name}-host-management-policy`,
      { role: role.name, policyArn: DEFAULT_HOST_MANAGEMENT_POLICY_ARN },
      home,
    );
    for (const region of config.regions) {
      new aws.ssm.ServiceSetting(
        `${name}-host-management-${region}`,
        {
          settingId: defaultHostManagementSettingId(region, config.customerAccountId),
          // The role's name (its path is /), as SSM expects it.
          settingValue: role.name,
        },
        { parent: this, provider: providers.get(region)!, dependsOn: [attachment] },
      );
    }
    return role.name;
  }
}
