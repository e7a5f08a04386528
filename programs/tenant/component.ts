import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { buildAgentInstallDocument } from "./agent-document";
import type { TenantConfig } from "./config";
import { KubernetesAgent } from "./kubernetes-agent";
import { resourceNames } from "./naming";
import { buildAccessPolicy, buildTrustPolicy } from "./policies";

export interface TenantOnboardingArgs {
  /** Validated tenant configuration; externalId, enrollmentToken and kubeconfig are wrapped as secrets here. */
  config: TenantConfig;
}

/**
 * Everything the Mini-XDR platform needs in a customer's AWS account: the cross-account access role,
 * the agent configuration, the agent install document and the association that keeps agents installed.
 */
export class TenantOnboarding extends pulumi.ComponentResource {
  readonly roleArn: pulumi.Output<string>;
  readonly externalId: pulumi.Output<string>;
  readonly parameterName: pulumi.Output<string>;
  readonly documentName: pulumi.Output<string>;
  readonly associationId: pulumi.Output<string>;
  readonly kubernetesNamespace: pulumi.Output<string | undefined>;

  constructor(name: string, args: TenantOnboardingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("minixdr:tenant:TenantOnboarding", name, {}, opts);
    const { config } = args;
    const names = resourceNames(config.tenantSlug);
    const externalId = pulumi.secret(config.externalId);
    const enrollmentToken = pulumi.secret(config.enrollmentToken);
    const tags = { "mini-xdr:tenant": config.tenantSlug, "mini-xdr:managed-by": "mini-xdr-onboarding" };

    const provider = new aws.Provider(
      `${name}-customer`,
      {
        region: config.homeRegion as aws.Region,
        assumeRoles: [{ roleArn: config.bootstrapRoleArn, externalId, sessionName: names.sessionName }],
        allowedAccountIds: [config.customerAccountId],
      },
      { parent: this },
    );
    const childOpts = { parent: this, provider };

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
      childOpts,
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
            targetTag: config.targetTag,
          }),
        ),
      },
      childOpts,
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

    const parameter = new aws.ssm.Parameter(
      `${name}-agent-config`,
      {
        name: names.parameterName,
        type: "SecureString",
        description: `Mini-XDR agent configuration for tenant ${config.tenantSlug}`,
        value: agentConfigJson,
        tags,
      },
      childOpts,
    );

    const document = new aws.ssm.Document(
      `${name}-agent-install`,
      {
        name: names.documentName,
        documentType: "Command",
        documentFormat: "JSON",
        content: JSON.stringify(
          buildAgentInstallDocument({
            parameterName: names.parameterName,
            agentPublicBaseUrl: config.agentPublicBaseUrl,
            agentVersion: config.agentVersion,
          }),
          null,
          2,
        ),
        tags,
      },
      childOpts,
    );

    const association = new aws.ssm.Association(
      `${name}-agent-association`,
      {
        associationName: names.associationName,
        name: document.name,
        documentVersion: document.latestVersion,
        scheduleExpression: config.associationSchedule,
        targets: config.targetAllManagedInstances
          ? [{ key: "InstanceIds", values: ["*"] }]
          : [{ key: `tag:${config.targetTag.key}`, values: [config.targetTag.value] }],
        parameters: { ConfigParameterName: parameter.name },
        maxConcurrency: "25%",
        maxErrors: "25%",
        complianceSeverity: "HIGH",
      },
      childOpts,
    );

    const kubernetesAgent = config.kubeconfig
      ? new KubernetesAgent(
          `${name}-k8s-agent`,
          {
            kubeconfig: pulumi.secret(config.kubeconfig),
            namespace: names.kubernetesNamespace,
            image: config.agentImage,
            agentVersion: config.agentVersion,
            agentConfigJson,
            tenantSlug: config.tenantSlug,
          },
          { parent: this },
        )
      : undefined;

    this.roleArn = role.arn;
    this.externalId = externalId;
    this.parameterName = parameter.name;
    this.documentName = document.name;
    this.associationId = association.associationId;
    this.kubernetesNamespace = kubernetesAgent ? kubernetesAgent.namespace : pulumi.output(undefined);
    this.registerOutputs({
      roleArn: this.roleArn,
      externalId: this.externalId,
      parameterName: this.parameterName,
      documentName: this.documentName,
      associationId: this.associationId,
      kubernetesNamespace: this.kubernetesNamespace,
    });
  }
}
