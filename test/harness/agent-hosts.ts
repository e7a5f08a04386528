/**
 * Agents on the customer's hosts, as the install script runs them: read the region's agent config (the SecureString
 * the tenant stack wrote in the customer's account) and enroll with its enrollment token and the instance's signed
 * identity document.
 */
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { Call, CallFn } from "./caller";
import { customerAccountCredentials } from "./customer-account";
import { enrollmentBody } from "./instance-identity";

/** Enrolls the agent of an instance of the tenant's account (POST /v1/agents/enroll); the answer, 201 when enrolled. */
export function agentEnroller(
  call: CallFn,
  tenant: { slug: string; account: string },
): (instance: { region: string; instanceId: string }) => Promise<Call> {
  let credentials: ReturnType<typeof customerAccountCredentials> | undefined;
  const tokens = new Map<string, Promise<string>>();
  const enrollmentTokenIn = async (region: string) => {
    credentials ??= customerAccountCredentials(tenant.account);
    const ssm = new SSMClient({ region, credentials: await credentials });
    try {
      const parameter = await ssm.send(new GetParameterCommand({ Name: `/mini-xdr/${tenant.slug}/agent-config`, WithDecryption: true }));
      return JSON.parse(parameter.Parameter!.Value!).enrollmentToken as string;
    } finally {
      ssm.destroy();
    }
  };
  return async ({ region, instanceId }) => {
    if (!tokens.has(region)) tokens.set(region, enrollmentTokenIn(region));
    const body = enrollmentBody(await tokens.get(region)!, { accountId: tenant.account, region, instanceId });
    return call("POST", "/v1/agents/enroll", { token: null, body });
  };
}
