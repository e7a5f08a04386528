import { IAMClient } from "@aws-sdk/client-iam";
import { SSMClient } from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";

/**
 * AWS clients acting in the customer's account on the moto server: moto maps assumed-role credentials to the
 * role's account, so assuming the bootstrap role lands every call in that account. Endpoint: AWS_ENDPOINT_URL.
 */
export async function customerAccountClients(roleArn: string, region = "us-east-1") {
  const sts = new STSClient({ region });
  const assumed = await sts.send(
    new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: "mini-xdr-test", ExternalId: "test-assertions" }),
  );
  const credentials = {
    accessKeyId: assumed.Credentials!.AccessKeyId!,
    secretAccessKey: assumed.Credentials!.SecretAccessKey!,
    sessionToken: assumed.Credentials!.SessionToken!,
  };
  return { iam: new IAMClient({ region, credentials }), ssm: new SSMClient({ region, credentials }) };
}
