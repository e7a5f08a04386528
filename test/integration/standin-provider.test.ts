/**
 * The stand-in `pulumi-resource-aws` (test/harness/aws-provider) driven by the real Pulumi engine through the
 * Automation API, against moto: create, update in place, replace, destroy, AWS errors, secrets in the state.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateRoleCommand, DeleteRoleCommand, GetRoleCommand, GetRolePolicyCommand, IAMClient } from "@aws-sdk/client-iam";
import { DescribeDocumentCommand, GetParameterCommand, ListTagsForResourceCommand, SSMClient } from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, type EngineEvent, type Stack } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listStandInAssociations } from "../harness/aws-provider/association-store";

const CUSTOMER_ACCOUNT = "210987654321";
const BOOTSTRAP_ROLE_ARN = `arn:aws:iam::${CUSTOMER_ACCOUNT}:role/MiniXdrBootstrap`;
const EXTERNAL_ID = "ext-7f3a9c";
const REGION = "eu-west-1"; // deliberately not AWS_REGION (us-east-1): the provider's region must win
const ENROLLMENT_TOKEN = "enroll-tok-5b1e0d8a2c"; // must never appear in clear text in the state

interface Settings {
  roleName: string;
  roleDescription: string;
  enrollmentToken: string;
  documentDescription: string;
}

const suffix = Date.now().toString(36);
const settings: Settings = {
  roleName: `MiniXdrAccess-${suffix}`,
  roleDescription: "Mini-XDR access, v1",
  enrollmentToken: ENROLLMENT_TOKEN,
  documentDescription: "Install the Mini-XDR agent",
};
const parameterName = `/mini-xdr/${suffix}/agent-config`;
const documentName = `MiniXdr-${suffix}-AgentInstall`;

function documentContent(description: string): string {
  return JSON.stringify(
    {
      schemaVersion: "2.2",
      description,
      parameters: { ConfigParameterName: { type: "String", description: "SSM parameter with the agent config" } },
      mainSteps: [
        {
          action: "aws:runShellScript",
          name: "installLinux",
          precondition: { StringEquals: ["platformType", "Linux"] },
          inputs: { runCommand: ["echo install {{ ConfigParameterName }}"] },
        },
      ],
    },
    null,
    2,
  );
}

async function program() {
  const tags = { "mini-xdr:tenant": "acme", "mini-xdr:managed-by": "mini-xdr-onboarding" };
  const provider = new aws.Provider("customer", {
    region: REGION as aws.Region,
    assumeRoles: [{ roleArn: BOOTSTRAP_ROLE_ARN, externalId: pulumi.secret(EXTERNAL_ID), sessionName: "mini-xdr-acme" }],
    allowedAccountIds: [CUSTOMER_ACCOUNT],
  });
  const opts = { provider };
  const role = new aws.iam.Role(
    "access-role",
    {
      name: settings.roleName,
      description: settings.roleDescription,
      assumeRolePolicy: pulumi.secret(EXTERNAL_ID).apply((externalId) =>
        JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { AWS: "arn:aws:iam::111111111111:root" },
              Action: "sts:AssumeRole",
              Condition: { StringEquals: { "sts:ExternalId": externalId } },
            },
          ],
        }),
      ),
      maxSessionDuration: 3600,
      tags,
    },
    opts,
  );
  new aws.iam.RolePolicy(
    "access-policy",
    {
      name: "mini-xdr-access",
      role: role.name,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: ["ec2:DescribeInstances"], Resource: "*" }],
      }),
    },
    opts,
  );
  const parameter = new aws.ssm.Parameter(
    "agent-config",
    {
      name: parameterName,
      type: "SecureString",
      description: "Mini-XDR agent configuration",
      value: pulumi.secret(JSON.stringify({ backendUrl: "https://agents.example.test", token: settings.enrollmentToken })),
      tags,
    },
    opts,
  );
  const document = new aws.ssm.Document(
    "agent-install",
    {
      name: documentName,
      documentType: "Command",
      documentFormat: "JSON",
      content: documentContent(settings.documentDescription),
      tags,
    },
    opts,
  );
  const association = new aws.ssm.Association(
    "agent-association",
    {
      associationName: `mini-xdr-${suffix}`,
      name: document.name,
      documentVersion: document.latestVersion,
      targets: [{ key: "InstanceIds", values: ["*"] }],
      scheduleExpression: "rate(30 minutes)",
      parameters: { ConfigParameterName: parameter.name },
      maxConcurrency: "25%",
      maxErrors: "25%",
      complianceSeverity: "HIGH",
    },
    opts,
  );
  return {
    roleArn: role.arn,
    roleUniqueId: role.uniqueId,
    parameterArn: parameter.arn,
    parameterValue: parameter.value,
    documentLatestVersion: document.latestVersion,
    documentHash: document.hash,
    associationId: association.associationId,
  };
}

/** Clients acting in the customer account, like the provider: base credentials from the environment, then AssumeRole. */
async function customerClients() {
  const { Credentials: c } = await new STSClient({ region: REGION }).send(
    new AssumeRoleCommand({ RoleArn: BOOTSTRAP_ROLE_ARN, RoleSessionName: "test-verify", ExternalId: EXTERNAL_ID }),
  );
  const credentials = { accessKeyId: c!.AccessKeyId!, secretAccessKey: c!.SecretAccessKey!, sessionToken: c!.SessionToken };
  return {
    credentials,
    iam: new IAMClient({ region: REGION, credentials }),
    ssm: new SSMClient({ region: REGION, credentials }),
  };
}

async function awsErrorName(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "no error";
  } catch (error) {
    return (error as Error).name;
  }
}

/** The stack's checkpoint exactly as the file backend stores it. */
async function rawCheckpoint(backendDir: string, stackName: string): Promise<string> {
  return readFile(join(backendDir, ".pulumi", "stacks", "standin-provider-test", `${stackName}.json`), "utf8");
}

/** Collects per-resource ops and engine diagnostics of one operation. */
function recorder() {
  const ops = new Map<string, string[]>();
  const diagnostics: string[] = [];
  const onEvent = (event: EngineEvent) => {
    const meta = event.resourcePreEvent?.metadata;
    if (meta) ops.set(meta.type, [...(ops.get(meta.type) ?? []), meta.op]);
    const diag = event.diagnosticEvent;
    if (diag && (diag.severity === "warning" || diag.severity === "error")) diagnostics.push(`${diag.severity}: ${diag.message.trim()}`);
  };
  return { ops, diagnostics, onEvent };
}

describe("stand-in pulumi-resource-aws through the Pulumi engine", () => {
  let backendDir: string;
  let stack: Stack;
  let clients: Awaited<ReturnType<typeof customerClients>>;
  const warnings: string[] = [];

  beforeAll(async () => {
    backendDir = await mkdtemp(join(tmpdir(), "standin-provider-backend-"));
    stack = await LocalWorkspace.createOrSelectStack(
      { stackName: `standin-${suffix}`, projectName: "standin-provider-test", program },
      {
        pulumiHome: join(backendDir, ".pulumi-home"),
        envVars: {
          PULUMI_BACKEND_URL: `file://${backendDir}`,
          PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "test-passphrase",
        },
      },
    );
    clients = await customerClients();
  });

  afterAll(async () => {
    if (warnings.length) console.log(`engine warnings:\n${[...new Set(warnings)].join("\n")}`);
    // Leave nothing behind if a test failed half-way.
    await stack?.destroy().catch(() => undefined);
    if (backendDir) await rm(backendDir, { recursive: true, force: true });
  });

  it("up creates every resource in the customer account and region, secrets kept secret", async () => {
    // Preview of a fresh stack: check and diff see unknowns (document.latestVersion, role.name, ...).
    const planned = await stack.preview();
    expect(planned.changeSummary).toEqual({ create: 7 });

    const rec = recorder();
    const result = await stack.up({ onEvent: rec.onEvent });
    warnings.push(...rec.diagnostics);
    expect(result.summary.result).toBe("succeeded");
    expect(result.summary.resourceChanges).toMatchObject({ create: 7 }); // stack, provider, 5 resources

    expect(result.outputs.roleArn!.value).toBe(`arn:aws:iam::${CUSTOMER_ACCOUNT}:role/${settings.roleName}`);
    expect(result.outputs.parameterValue!.secret).toBe(true);
    expect(result.outputs.associationId!.value).toMatch(/^assoc-[0-9a-f-]{36}$/);
    expect(result.outputs.documentLatestVersion!.value).toBe("1");

    const { Role } = await clients.iam.send(new GetRoleCommand({ RoleName: settings.roleName }));
    expect(Role?.Arn).toBe(`arn:aws:iam::${CUSTOMER_ACCOUNT}:role/${settings.roleName}`);
    expect(Role?.Description).toBe("Mini-XDR access, v1");
    expect(JSON.parse(decodeURIComponent(Role!.AssumeRolePolicyDocument!)).Statement[0].Condition).toEqual({
      StringEquals: { "sts:ExternalId": EXTERNAL_ID },
    });
    expect(Role?.Tags).toEqual(expect.arrayContaining([{ Key: "mini-xdr:tenant", Value: "acme" }]));
    const policy = await clients.iam.send(new GetRolePolicyCommand({ RoleName: settings.roleName, PolicyName: "mini-xdr-access" }));
    expect(JSON.parse(decodeURIComponent(policy.PolicyDocument!)).Statement[0].Action).toEqual(["ec2:DescribeInstances"]);

    const { Parameter } = await clients.ssm.send(new GetParameterCommand({ Name: parameterName, WithDecryption: true }));
    expect(Parameter?.Type).toBe("SecureString");
    expect(JSON.parse(Parameter!.Value!).token).toBe(ENROLLMENT_TOKEN);
    expect(Parameter?.ARN).toBe(`arn:aws:ssm:${REGION}:${CUSTOMER_ACCOUNT}:parameter${parameterName}`);
    const { TagList } = await clients.ssm.send(new ListTagsForResourceCommand({ ResourceType: "Parameter", ResourceId: parameterName }));
    expect(TagList).toEqual(expect.arrayContaining([{ Key: "mini-xdr:tenant", Value: "acme" }]));

    const { Document } = await clients.ssm.send(new DescribeDocumentCommand({ Name: documentName }));
    expect(Document).toMatchObject({ DocumentType: "Command", DocumentFormat: "JSON", Owner: CUSTOMER_ACCOUNT });

    const associations = await listStandInAssociations({ accountId: CUSTOMER_ACCOUNT, region: REGION });
    expect(associations).toHaveLength(1);
    expect(associations[0]).toMatchObject({
      AssociationId: result.outputs.associationId!.value,
      Name: documentName,
      DocumentVersion: "1",
      Targets: [{ Key: "InstanceIds", Values: ["*"] }],
      Parameters: { ConfigParameterName: [parameterName] },
      ScheduleExpression: "rate(30 minutes)",
    });

    // Nothing landed in moto's default account (the base credentials) or in the environment's region.
    const defaultIam = new IAMClient({ region: REGION });
    expect(await awsErrorName(defaultIam.send(new GetRoleCommand({ RoleName: settings.roleName })))).toBe("NoSuchEntityException");
    const otherRegion = new SSMClient({ region: "us-east-1", credentials: clients.credentials });
    expect(await awsErrorName(otherRegion.send(new GetParameterCommand({ Name: parameterName })))).toBe("ParameterNotFound");

    // A second preview sees nothing to do: diff is stable against what create returned.
    const again = await stack.preview();
    expect(Object.keys(again.changeSummary)).toEqual(["same"]);

    // Secrets stay encrypted in the checkpoint: neither the token nor the external id appear in clear text.
    // (Read the backend's file: the Automation API's exportStack runs `stack export --show-secrets`.)
    const state = await rawCheckpoint(backendDir, stack.name);
    expect(state).toContain(parameterName); // it is the right file
    expect(state).not.toContain(ENROLLMENT_TOKEN);
    expect(state).not.toContain(EXTERNAL_ID);
  });

  it("a changed description, parameter value and document content update in place", async () => {
    const before = await clients.iam.send(new GetRoleCommand({ RoleName: settings.roleName }));
    settings.roleDescription = "Mini-XDR access, v2";
    settings.enrollmentToken = `${ENROLLMENT_TOKEN}-rotated`;
    settings.documentDescription = "Install the Mini-XDR agent (v2)";

    const preview = recorder();
    const planned = await stack.preview({ onEvent: preview.onEvent });
    warnings.push(...preview.diagnostics);
    expect(planned.changeSummary).toMatchObject({ update: 4 }); // role, parameter, document, association
    expect(planned.changeSummary.replace ?? 0).toBe(0);
    expect(preview.ops.get("aws:iam/role:Role")).toEqual(["update"]);
    expect(preview.ops.get("aws:ssm/parameter:Parameter")).toEqual(["update"]);

    const rec = recorder();
    const result = await stack.up({ onEvent: rec.onEvent });
    warnings.push(...rec.diagnostics);
    expect(result.summary.resourceChanges).toMatchObject({ update: 4 });
    expect(result.summary.resourceChanges?.replace ?? 0).toBe(0);

    const after = await clients.iam.send(new GetRoleCommand({ RoleName: settings.roleName }));
    expect(after.Role?.RoleId).toBe(before.Role?.RoleId); // same role, not a new one
    expect(after.Role?.Description).toBe("Mini-XDR access, v2");
    const { Parameter } = await clients.ssm.send(new GetParameterCommand({ Name: parameterName, WithDecryption: true }));
    expect(JSON.parse(Parameter!.Value!).token).toBe(`${ENROLLMENT_TOKEN}-rotated`);
    expect(Parameter?.Version).toBe(2);
    const { Document } = await clients.ssm.send(new DescribeDocumentCommand({ Name: documentName }));
    expect(Document).toMatchObject({ LatestVersion: "2", DefaultVersion: "2" });
    expect(result.outputs.documentLatestVersion!.value).toBe("2");
    const [association] = await listStandInAssociations({ accountId: CUSTOMER_ACCOUNT, region: REGION });
    expect(association).toMatchObject({ DocumentVersion: "2", AssociationVersion: "2" });
    expect(await rawCheckpoint(backendDir, stack.name)).not.toContain(settings.enrollmentToken);

    // refresh reads every resource back (the association from the stand-in's store) and finds no drift.
    const refreshed = await stack.refresh();
    expect(Object.keys(refreshed.summary.resourceChanges ?? {})).toEqual(["same"]);
    expect(Object.keys((await stack.preview()).changeSummary)).toEqual(["same"]);
  });

  it("a changed role name replaces the role (and its policy)", async () => {
    const oldName = settings.roleName;
    settings.roleName = `MiniXdrAccess-${suffix}-renamed`;

    const preview = recorder();
    await stack.preview({ onEvent: preview.onEvent });
    expect(preview.ops.get("aws:iam/role:Role")).toContain("replace");
    expect(preview.ops.get("aws:iam/rolePolicy:RolePolicy")).toContain("replace");
    expect(preview.ops.get("aws:ssm/parameter:Parameter")).toEqual(["same"]);

    const rec = recorder();
    const result = await stack.up({ onEvent: rec.onEvent });
    warnings.push(...rec.diagnostics);
    expect(result.summary.resourceChanges).toMatchObject({ replace: 2 });
    expect(result.outputs.roleArn!.value).toBe(`arn:aws:iam::${CUSTOMER_ACCOUNT}:role/${settings.roleName}`);
    expect(await awsErrorName(clients.iam.send(new GetRoleCommand({ RoleName: oldName })))).toBe("NoSuchEntityException");
    await clients.iam.send(new GetRolePolicyCommand({ RoleName: settings.roleName, PolicyName: "mini-xdr-access" }));
  });

  it("an AWS error surfaces as the engine's error with the AWS message", async () => {
    // A role of the name we are about to take already exists in the customer account.
    const taken = `MiniXdrAccess-${suffix}-taken`;
    await clients.iam.send(new CreateRoleCommand({ RoleName: taken, AssumeRolePolicyDocument: "{}" }));
    const previous = settings.roleName;
    settings.roleName = taken;
    try {
      const error = await stack.up().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toMatch(/EntityAlreadyExists: Role with name .*-taken already exists/);
      if (process.env.STANDIN_TEST_VERBOSE) console.log(error?.message);
    } finally {
      settings.roleName = previous;
      await clients.iam.send(new DeleteRoleCommand({ RoleName: taken }));
    }
  });

  it("provider configuration is enforced at Configure (allowedAccountIds checked against the assumed role's account)", async () => {
    const wrongAccount = await LocalWorkspace.createOrSelectStack(
      {
        stackName: `standin-${suffix}-wrong-account`,
        projectName: "standin-provider-test",
        program: async () => {
          const provider = new aws.Provider("customer", {
            region: REGION as aws.Region,
            assumeRoles: [{ roleArn: BOOTSTRAP_ROLE_ARN, externalId: EXTERNAL_ID, sessionName: "mini-xdr-acme" }],
            allowedAccountIds: ["999999999999"],
          });
          new aws.ssm.Parameter("p", { name: `/mini-xdr/${suffix}/never`, type: "String", value: "x" }, { provider });
        },
      },
      {
        pulumiHome: join(backendDir, ".pulumi-home"),
        envVars: {
          PULUMI_BACKEND_URL: `file://${backendDir}`,
          PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "test-passphrase",
        },
      },
    );
    try {
      const error = await wrongAccount.up().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toMatch(/AWS account ID not allowed: 210987654321/);
      if (process.env.STANDIN_TEST_VERBOSE) console.log(error?.message);
    } finally {
      await wrongAccount.destroy().catch(() => undefined);
      await wrongAccount.workspace.removeStack(wrongAccount.name).catch(() => undefined);
    }
  });

  it("destroy removes everything", async () => {
    const result = await stack.destroy();
    expect(result.summary.result).toBe("succeeded");
    expect(await awsErrorName(clients.iam.send(new GetRoleCommand({ RoleName: settings.roleName })))).toBe("NoSuchEntityException");
    expect(await awsErrorName(clients.ssm.send(new GetParameterCommand({ Name: parameterName })))).toBe("ParameterNotFound");
    expect(await awsErrorName(clients.ssm.send(new DescribeDocumentCommand({ Name: documentName })))).toBe("InvalidDocument");
    expect(await listStandInAssociations({ accountId: CUSTOMER_ACCOUNT, region: REGION })).toEqual([]);
  });
});
