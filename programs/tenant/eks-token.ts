/**
 * The exec credential plugin of the tenant stack's EKS kubeconfigs (eks-kubeconfig.ts): prints a Kubernetes
 * ExecCredential whose token is what `aws eks get-token` makes, `k8s-aws-v1.` and the base64url of a presigned STS
 * GetCallerIdentity URL (60 s) that signs the `x-k8s-aws-id: <cluster>` header, as the access role (assumed with the
 * tenant's external ID, from the platform's own credentials of the standard chain). EKS replays the URL to learn
 * who calls. The STS endpoint is the SDK's own (the standard AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL apply).
 *
 * Run by node with types stripped (no imports of this repository), started by the Kubernetes provider.
 */
import { createHash, createHmac } from "node:crypto";
import { AssumeRoleCommand, type AssumeRoleCommandOutput, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { SignatureV4 } from "@smithy/signature-v4";

const TOKEN_PREFIX = "k8s-aws-v1.";
const PRESIGNED_SECONDS = 60;
const ASSUME_ATTEMPTS = 5;
/** EKS accepts a token for 15 minutes; client-go asks again a little before. */
const TOKEN_LIFETIME_MS = 14 * 60_000;

const bytes = (data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof data === "string" ? data : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);

class Sha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: this is an exec credential plugin started from a Mini-XDR kubeconfig`);
  return value;
}

class EndpointCaptured extends Error {}

/** The STS endpoint the SDK resolves for a region (endpoint variables honoured): a request built but never sent. */
async function stsRequest(client: STSClient) {
  let captured: { protocol: string; hostname: string; port?: number; path: string } | undefined;
  client.middlewareStack.add(
    (_next) => async (args) => {
      captured = args.request as typeof captured;
      throw new EndpointCaptured();
    },
    { step: "build", priority: "low", name: "miniXdrCaptureEndpoint" },
  );
  await client.send(new GetCallerIdentityCommand({})).catch((error: unknown) => {
    if (!(error instanceof EndpointCaptured)) throw error;
  });
  if (!captured) throw new Error("the STS endpoint could not be resolved");
  return captured;
}

async function main(): Promise<void> {
  const cluster = required("MINI_XDR_EKS_CLUSTER");
  const region = required("MINI_XDR_EKS_REGION");
  const platform = new STSClient({ region });
  const assume = new AssumeRoleCommand({
    RoleArn: required("MINI_XDR_EKS_ROLE_ARN"),
    ExternalId: required("MINI_XDR_EKS_EXTERNAL_ID"),
    RoleSessionName: required("MINI_XDR_EKS_SESSION_NAME"),
    DurationSeconds: 900,
  });
  // IAM is eventually consistent: a role the same up just created may be refused for a few seconds.
  let answer: AssumeRoleCommandOutput | undefined;
  for (let attempt = 1; !answer; attempt++) {
    try {
      answer = await platform.send(assume);
    } catch (error) {
      if (attempt >= ASSUME_ATTEMPTS || (error as { name?: string }).name !== "AccessDenied") throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** (attempt - 1)));
    }
  }
  platform.destroy();
  const { Credentials } = answer;
  if (!Credentials?.AccessKeyId || !Credentials.SecretAccessKey) throw new Error("STS AssumeRole answered no credentials");
  const credentials = {
    accessKeyId: Credentials.AccessKeyId,
    secretAccessKey: Credentials.SecretAccessKey,
    sessionToken: Credentials.SessionToken,
  };
  const session = new STSClient({ region, credentials });
  const endpoint = await stsRequest(session);
  session.destroy();

  const signer = new SignatureV4({ credentials, region, service: "sts", sha256: Sha256 });
  const host = endpoint.port ? `${endpoint.hostname}:${endpoint.port}` : endpoint.hostname;
  const presigned = await signer.presign(
    {
      method: "GET",
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port,
      path: endpoint.path || "/",
      query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
      headers: { host, "x-k8s-aws-id": cluster },
    },
    { expiresIn: PRESIGNED_SECONDS },
  );
  const query = new URLSearchParams(presigned.query as Record<string, string>).toString();
  const url = `${endpoint.protocol}//${host}${presigned.path}?${query}`;
  const token = TOKEN_PREFIX + Buffer.from(url).toString("base64url");
  process.stdout.write(
    JSON.stringify({
      apiVersion: "client.authentication.k8s.io/v1beta1",
      kind: "ExecCredential",
      status: { token, expirationTimestamp: new Date(Date.now() + TOKEN_LIFETIME_MS).toISOString() },
    }),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`mini-xdr eks-token: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
