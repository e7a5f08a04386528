/**
 * The customer's AWS account in moto: credentials acting in it, the instances it runs, the bootstrap role it creates
 * for us. moto maps assumed-role credentials to the role's account, so assuming a role lands every call in that
 * account. Endpoint: AWS_ENDPOINT_URL.
 */
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { CreateRoleCommand, EntityAlreadyExistsException, GetRoleCommand, IAMClient, NoSuchEntityException } from "@aws-sdk/client-iam";
import { SSMClient } from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";

/** IAM and SSM clients acting in the customer's account through its bootstrap role. */
export async function customerAccountClients(roleArn: string, region = "us-east-1") {
  const sts = new STSClient({ region });
  const assumed = await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: "mini-xdr-test", ExternalId: "test-assertions" }));
  const credentials = {
    accessKeyId: assumed.Credentials!.AccessKeyId!,
    secretAccessKey: assumed.Credentials!.SecretAccessKey!,
    sessionToken: assumed.Credentials!.SessionToken!,
  };
  return { iam: new IAMClient({ region, credentials }), ssm: new SSMClient({ region, credentials }) };
}

/** Credentials acting in `accountId` on moto (moto maps assumed-role credentials to the role's account). */
export async function customerAccountCredentials(accountId: string) {
  // The customer acts as the account's owner: straight to moto, never through a test's STS stand-in.
  const sts = new STSClient({ region: "us-east-1", ...(process.env.AWS_ENDPOINT_URL ? { endpoint: process.env.AWS_ENDPOINT_URL } : {}) });
  try {
    const assumed = await sts.send(
      new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${accountId}:role/OrganizationAccountAccessRole`, RoleSessionName: "mini-xdr-test-setup" }),
    );
    return {
      accessKeyId: assumed.Credentials!.AccessKeyId!,
      secretAccessKey: assumed.Credentials!.SecretAccessKey!,
      sessionToken: assumed.Credentials!.SessionToken!,
    };
  } finally {
    sts.destroy();
  }
}

/** An Amazon Linux AMI id moto knows. */
/** Whether `roleName` exists in the customer's account, read as the account's owner. */
export async function roleExists(accountId: string, roleName: string): Promise<boolean> {
  const iam = new IAMClient({ region: "us-east-1", credentials: await customerAccountCredentials(accountId) });
  try {
    await iam.send(new GetRoleCommand({ RoleName: roleName }));
    return true;
  } catch (error) {
    if (error instanceof NoSuchEntityException) return false;
    throw error;
  } finally {
    iam.destroy();
  }
}

export const LINUX_AMI = "ami-760aaa0f";

/** Launches `count` Linux instances in the customer's account, tagged Name=web and xdr:monitor=true; their ids, sorted. */
export async function launchMonitoredInstances(accountId: string, { region = "us-east-1", count = 2 } = {}): Promise<string[]> {
  const ec2 = new EC2Client({ region, credentials: await customerAccountCredentials(accountId) });
  try {
    const launched = await ec2.send(
      new RunInstancesCommand({
        ImageId: LINUX_AMI,
        MinCount: count,
        MaxCount: count,
        InstanceType: "t3.micro",
        TagSpecifications: [
          {
            ResourceType: "instance",
            Tags: [
              { Key: "Name", Value: "web" },
              { Key: "xdr:monitor", Value: "true" },
            ],
          },
        ],
      }),
    );
    return launched.Instances!.map((instance) => instance.InstanceId!).sort();
  } finally {
    ec2.destroy();
  }
}

/**
 * Creates the customer's bootstrap role in moto (what the customer's CloudFormation quick-create stack would do): it
 * trusts the platform's account with an `sts:ExternalId` condition (`externalId: null`: WITHOUT one, the careless
 * role a confused deputy would assume). Idempotent: an existing role is left as it is. Returns the role ARN.
 */
export async function createBootstrapRole({
  accountId,
  roleName,
  externalId,
  trustedAccountId = "123456789012",
}: {
  accountId: string;
  roleName: string;
  externalId: string | null;
  trustedAccountId?: string;
}): Promise<string> {
  const iam = new IAMClient({ region: "us-east-1", credentials: await customerAccountCredentials(accountId) });
  try {
    await iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { AWS: `arn:aws:iam::${trustedAccountId}:root` },
              Action: "sts:AssumeRole",
              ...(externalId === null ? {} : { Condition: { StringEquals: { "sts:ExternalId": externalId } } }),
            },
          ],
        }),
        Tags: [{ Key: "mini-xdr:purpose", Value: "bootstrap" }],
      }),
    );
  } catch (error) {
    if (!(error instanceof EntityAlreadyExistsException)) throw error;
  } finally {
    iam.destroy();
  }
  return `arn:aws:iam::${accountId}:role/${roleName}`;
}
