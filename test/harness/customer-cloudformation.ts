/**
 * The customer's side of the quick-create link on the emulator: the AWS CLI (pinned, .tools/awscli-venv) acting in the
 * customer's account creates the bootstrap stack from the link's template URL and prefilled parameters, as the AWS
 * console's quick-create page would (CAPABILITY_NAMED_IAM), or deletes it. moto maps assumed-role credentials to the
 * role's account; the endpoint is the standard AWS_ENDPOINT_URL.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, resolve } from "node:path";
import { IAMClient } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { REPO_ROOT } from "./moto";

export interface CustomerAccount {
  accountId: string;
  region: string;
  env: NodeJS.ProcessEnv;
  iam: IAMClient;
}

function awsCli(): string {
  const bin = resolve(REPO_ROOT, process.env.AWS_CLI_BIN ?? ".tools/awscli-venv/bin/aws");
  if (!existsSync(bin)) throw new Error(`the AWS CLI is not at ${bin}: run \`bash scripts/toolchain.sh\``);
  return bin;
}

export async function customerAccount(accountId: string, region = "us-east-1"): Promise<CustomerAccount> {
  const sts = new STSClient({ region });
  const session = await sts.send(
    new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${accountId}:role/CustomerAdmin`, RoleSessionName: "customer-admin" }),
  );
  sts.destroy();
  const credentials = {
    accessKeyId: session.Credentials!.AccessKeyId!,
    secretAccessKey: session.Credentials!.SecretAccessKey!,
    sessionToken: session.Credentials!.SessionToken!,
  };
  return {
    accountId,
    region,
    iam: new IAMClient({ region, credentials }),
    env: {
      PATH: [dirname(awsCli()), process.env.PATH].filter(Boolean).join(delimiter),
      HOME: process.env.HOME,
      AWS_ENDPOINT_URL: process.env.AWS_ENDPOINT_URL,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_SESSION_TOKEN: credentials.sessionToken,
      AWS_DEFAULT_REGION: region,
      AWS_CONFIG_FILE: "/dev/null",
      AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    },
  };
}

/** Runs the AWS CLI as the customer; resolves to its JSON output. */
export async function awsAsCustomer(customer: CustomerAccount, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(awsCli(), [...args, "--output", "json"], { env: customer.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolvePromise(stdout) : reject(new Error(`aws ${args.join(" ")}: exit ${code}\n${stderr}`))));
  });
}

/** What the quick-create page does with the link: create the stack from its template URL and prefilled parameters. */
export async function createStackFromQuickCreateLink(
  customer: CustomerAccount,
  quickCreateUrl: string,
  overrides: Record<string, string> = {},
): Promise<{ stackName: string; status: string }> {
  const url = new URL(quickCreateUrl);
  const prefilled = new URLSearchParams(url.hash.slice(url.hash.indexOf("?") + 1));
  const stackName = prefilled.get("stackName")!;
  const prefilledParameters = [...prefilled.entries()]
    .filter(([key]) => key.startsWith("param_"))
    .map(([key, value]) => [key.slice("param_".length), value] as const);
  // What the customer types on the page: a value over a prefilled one, or one the link left empty.
  const named = new Map<string, string>([...prefilledParameters, ...Object.entries(overrides)]);
  const parameters = [...named].map(([name, value]) => `ParameterKey=${name},ParameterValue=${value.replaceAll(",", "\\,")}`);
  const region = url.searchParams.get("region") ?? customer.region;
  await awsAsCustomer(customer, [
    "cloudformation",
    "create-stack",
    "--region",
    region,
    "--stack-name",
    stackName,
    "--template-url",
    prefilled.get("templateURL")!,
    "--capabilities",
    "CAPABILITY_NAMED_IAM",
    "--parameters",
    ...parameters,
  ]);
  await awsAsCustomer(customer, ["cloudformation", "wait", "stack-create-complete", "--region", region, "--stack-name", stackName]);
  const described = JSON.parse(await awsAsCustomer(customer, ["cloudformation", "describe-stacks", "--region", region, "--stack-name", stackName]));
  return { stackName, status: described.Stacks[0].StackStatus as string };
}
