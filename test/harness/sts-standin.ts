/**
 * An STS stand-in on 127.0.0.1 that answers AssumeRole as AWS does, in front of moto. moto 5.2.5 grants AssumeRole for
 * any role ARN, existing or not, whatever its trust policy and external ID; AWS refuses (403 AccessDenied) unless the
 * role exists and its trust policy admits the caller with the external ID presented. This stand-in checks exactly
 * that against moto's own IAM (the role and its trust policy, read in the role's account) with the IAM simulator
 * (test/harness/iam-simulation.ts), treating the caller as `callerPrincipalArn`; an admitted call, and every other STS call, is
 * forwarded to moto unchanged. As in AWS, a trust policy without an `sts:ExternalId` condition admits the caller with
 * any external ID and with none (test/integration/confused-deputy.test.ts pins that): the platform's negative probe relies on it. Tests
 * point the SDK at it with the standard AWS_ENDPOINT_URL_STS; every service process that test/harness/service-process.ts
 * startServer() starts gets one unless the test set AWS_ENDPOINT_URL_STS itself.
 *
 * A presigned GetCallerIdentity (the URL inside an EKS token, replayed by the EKS stand-in's token webhook) is
 * answered as AWS does: for the signer's credentials, and 403 once the URL has expired. moto reads the caller from an
 * Authorization header only and answers its default user for a presigned URL, so the stand-in checks the expiry and
 * hands moto the signer's access key id (moto's own AWSAccessKeyId query parameter).
 */
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { GetRoleCommand, IAMClient, NoSuchEntityException } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { trustAdmits } from "./iam-simulation";

export interface StsStandIn {
  url: string;
  /** AssumeRole calls seen: role, external ID, and whether they were admitted. */
  calls: { roleArn: string; externalId: string | null; admitted: boolean }[];
  /**
   * The account of a session this stand-in handed out (its access key id), as AWS knows it: the stand-ins of regional
   * services (test/harness/ec2-standin.ts, ssm-standin.ts) answer per account with it.
   */
  accountOf(accessKeyId: string | undefined): string | undefined;
  stop(): Promise<void>;
}

const expired = () =>
  `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>Request has expired.</Message></Error><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ErrorResponse>`;

/**
 * A presigned GetCallerIdentity as moto understands the call (undefined for any other request), or "expired": a form
 * POST with an Authorization header naming the signer's key and STS (moto routes by the header's credential scope and
 * reads the caller from it; a bare GET it takes for S3). moto checks no signature, here or anywhere.
 */
function presignedCallerIdentity(url: string): { body: Buffer; authorization: string } | "expired" | undefined {
  const query = new URL(url, "http://stand-in").searchParams;
  const credential = query.get("X-Amz-Credential");
  if (query.get("Action") !== "GetCallerIdentity" || !credential) return undefined;
  const signedAt = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(query.get("X-Amz-Date") ?? "");
  const expiresIn = Number(query.get("X-Amz-Expires") ?? "0");
  if (!signedAt) return "expired";
  const [, y, mo, d, h, mi, se] = signedAt.map(Number) as number[];
  if (Date.UTC(y!, mo! - 1, d, h, mi, se) + expiresIn * 1000 < Date.now()) return "expired";
  return {
    body: Buffer.from(new URLSearchParams({ Action: "GetCallerIdentity", Version: query.get("Version") ?? "2011-06-15" }).toString()),
    authorization: `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${query.get("X-Amz-SignedHeaders") ?? "host"}, Signature=${query.get("X-Amz-Signature") ?? ""}`,
  };
}

const denied = (roleArn: string, caller: string) =>
  `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: ${caller} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}</Message></Error><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ErrorResponse>`;

/**
 * `motoUrl`: where the stand-in reads roles (moto's IAM); `forwardUrl` (default `motoUrl`): where admitted calls and
 * every other STS call go (a proxy in front of moto, when the service under test talks to one).
 */
export async function startStsStandIn(options: { motoUrl: string; callerPrincipalArn: string; forwardUrl?: string }): Promise<StsStandIn> {
  const readers = new Map<string, IAMClient>();
  /** moto's IAM in the role's account (moto maps assumed-role credentials to the role's account). */
  async function iamOf(accountId: string): Promise<IAMClient> {
    let iam = readers.get(accountId);
    if (!iam) {
      const sts = new STSClient({ region: "us-east-1", endpoint: options.motoUrl });
      const session = await sts.send(
        new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${accountId}:role/StsStandInReader`, RoleSessionName: "sts-standin" }),
      );
      sts.destroy();
      iam = new IAMClient({
        region: "us-east-1",
        endpoint: options.motoUrl,
        credentials: {
          accessKeyId: session.Credentials!.AccessKeyId!,
          secretAccessKey: session.Credentials!.SecretAccessKey!,
          sessionToken: session.Credentials!.SessionToken!,
        },
      });
      readers.set(accountId, iam);
    }
    return iam;
  }

  async function admits(roleArn: string, externalId: string | null): Promise<boolean> {
    const match = /^arn:aws:iam::(\d{12}):role\/(?:.*\/)?([\w+=,.@-]+)$/.exec(roleArn);
    if (!match) return false;
    try {
      const role = await (await iamOf(match[1]!)).send(new GetRoleCommand({ RoleName: match[2]! }));
      const trust = JSON.parse(decodeURIComponent(role.Role!.AssumeRolePolicyDocument!)) as object;
      return await trustAdmits(trust, {
        roleArn,
        principal: options.callerPrincipalArn,
        context: externalId === null ? {} : { "sts:ExternalId": externalId },
      });
    } catch (error) {
      if (error instanceof NoSuchEntityException) return false;
      throw error;
    }
  }

  const calls: StsStandIn["calls"] = [];
  const accounts = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const form = new URLSearchParams(body.toString());
      try {
        const presigned = req.method === "GET" ? presignedCallerIdentity(req.url ?? "/") : undefined;
        if (presigned === "expired") {
          res.writeHead(403, { "content-type": "text/xml" });
          res.end(expired());
          return;
        }
        if (form.get("Action") === "AssumeRole") {
          const roleArn = form.get("RoleArn") ?? "";
          const externalId = form.get("ExternalId");
          const admitted = await admits(roleArn, externalId);
          calls.push({ roleArn, externalId, admitted });
          if (!admitted) {
            res.writeHead(403, { "content-type": "text/xml" });
            res.end(denied(roleArn, options.callerPrincipalArn));
            return;
          }
        }
        const target = new URL(options.forwardUrl ?? options.motoUrl);
        const assumedAccount = form.get("Action") === "AssumeRole" ? /^arn:aws:iam::(\d{12}):/.exec(form.get("RoleArn") ?? "")?.[1] : undefined;
        const forwarded = httpRequest(
          presigned
            ? {
                host: target.hostname,
                port: target.port,
                method: "POST",
                path: "/",
                headers: {
                  host: target.host,
                  authorization: presigned.authorization,
                  "content-type": "application/x-www-form-urlencoded",
                  "x-amz-security-token": new URL(req.url ?? "/", "http://stand-in").searchParams.get("X-Amz-Security-Token") ?? "",
                },
              }
            : { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
          (answer) => {
            if (!assumedAccount) {
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              answer.pipe(res);
              return;
            }
            const parts: Buffer[] = [];
            answer.on("data", (chunk: Buffer) => parts.push(chunk));
            answer.on("end", () => {
              const text = Buffer.concat(parts);
              const key = /<AccessKeyId>([^<]+)<\/AccessKeyId>/.exec(text.toString())?.[1];
              if (key) accounts.set(key, assumedAccount);
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              res.end(text);
            });
          },
        );
        forwarded.on("error", (error) => {
          res.writeHead(502);
          res.end(String(error));
        });
        forwarded.end(presigned ? presigned.body : body);
      } catch (error) {
        res.writeHead(500);
        res.end(String(error));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    accountOf: (accessKeyId) => (accessKeyId ? accounts.get(accessKeyId) : undefined),
    async stop() {
      for (const iam of readers.values()) iam.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
