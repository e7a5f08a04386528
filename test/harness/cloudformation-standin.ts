/**
 * A CloudFormation stand-in on 127.0.0.1, in front of moto, for the one thing moto's CloudFormation does not do: an
 * UpdateStack leaves an AWS::IAM::Role's Tags as they were (moto's Role.update_from_cloudformation_json updates only
 * the description and session duration). AWS updates a role's tags in place (update without interruption), so after
 * moto has applied an update, this stand-in sets each role's tags to what the new template says, through moto's IAM
 * in the caller's account (the caller's access key names the account to moto).
 *
 * Every request goes to moto unchanged. Tags resolve literal values and `Ref` to a parameter, as the bootstrap
 * template uses them. Point the customer's AWS CLI at it with AWS_ENDPOINT_URL_CLOUDFORMATION.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { forwardRequest, readRequestBody, relayAnswer } from "./request-body";
import { IAMClient, ListRoleTagsCommand, TagRoleCommand, UntagRoleCommand } from "@aws-sdk/client-iam";

export interface CloudFormationStandIn {
  url: string;
  /** Roles whose tags were brought to their template after an update: `<stack>/<role name>`. */
  retagged: string[];
  stop(): Promise<void>;
}

type TagValue = string | { Ref?: string };

const unescapeXml = (text: string) =>
  text.replace(/&(lt|gt|quot|apos|amp|#\d+);/g, (_, entity: string) =>
    entity === "lt"
      ? "<"
      : entity === "gt"
        ? ">"
        : entity === "quot"
          ? '"'
          : entity === "apos"
            ? "'"
            : entity === "amp"
              ? "&"
              : String.fromCharCode(Number(entity.slice(1))),
  );

const allOf = (xml: string, element: string) =>
  [...xml.matchAll(new RegExp(`<${element}>([\\s\\S]*?)</${element}>`, "g"))].map((m) => unescapeXml(m[1]!));

async function retagRoles(motoUrl: string, accessKeyId: string, region: string, stackName: string): Promise<string[]> {
  // moto's CloudFormation (query protocol) as the caller: moto names the account by the access key and checks no signature.
  const authorization = `AWS4-HMAC-SHA256 Credential=${accessKeyId}/20260101/${region}/cloudformation/aws4_request, SignedHeaders=host, Signature=0`;
  const query = async (action: string) => {
    const response = await fetch(motoUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization },
      body: new URLSearchParams({ Action: action, Version: "2010-05-15", StackName: stackName }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${action}: ${response.status} ${text}`);
    return text;
  };
  const template = JSON.parse(allOf(await query("GetTemplate"), "TemplateBody")[0] ?? "{}") as {
    Resources?: Record<string, { Type: string; Properties?: { Tags?: { Key: string; Value: TagValue }[] } }>;
  };
  // Each <member> of these answers holds one parameter or one resource (split at each opening, nested or not).
  const members = (xml: string) => xml.split("<member>").slice(1);
  const parameters = new Map(
    members(await query("DescribeStacks")).flatMap((member) => {
      const [key] = allOf(member, "ParameterKey");
      const [value] = allOf(member, "ParameterValue");
      return key !== undefined && value !== undefined ? [[key, value] as const] : [];
    }),
  );
  const resources = members(await query("DescribeStackResources")).map((member) => ({
    logicalId: allOf(member, "LogicalResourceId")[0],
    physicalId: allOf(member, "PhysicalResourceId")[0],
  }));
  const iam = new IAMClient({ region: "us-east-1", endpoint: motoUrl, credentials: { accessKeyId, secretAccessKey: "stand-in" } });
  try {
    const retagged: string[] = [];
    for (const [logicalId, resource] of Object.entries(template.Resources ?? {})) {
      if (resource.Type !== "AWS::IAM::Role") continue;
      const roleName = resources.find((r) => r.logicalId === logicalId)?.physicalId;
      if (!roleName) continue;
      const wanted = (resource.Properties?.Tags ?? []).map(({ Key, Value }) => ({
        Key,
        Value: typeof Value === "string" ? Value : (parameters.get(Value.Ref ?? "") ?? ""),
      }));
      const { Tags: present = [] } = await iam.send(new ListRoleTagsCommand({ RoleName: roleName }));
      const gone = present.filter((tag) => !wanted.some((w) => w.Key === tag.Key)).map((tag) => tag.Key!);
      if (gone.length > 0) await iam.send(new UntagRoleCommand({ RoleName: roleName, TagKeys: gone }));
      if (wanted.length > 0) await iam.send(new TagRoleCommand({ RoleName: roleName, Tags: wanted }));
      retagged.push(`${stackName}/${roleName}`);
    }
    return retagged;
  } finally {
    iam.destroy();
  }
}

export async function startCloudFormationStandIn(motoUrl: string): Promise<CloudFormationStandIn> {
  const target = new URL(motoUrl);
  const retagged: string[] = [];
  const server: Server = createServer(async (req, res) => {
    const body = await readRequestBody(req);
    const form = new URLSearchParams(body.toString());
    const credential = /Credential=([^/]+)\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ""));
    forwardRequest(target, req, body, async (status, headers, text) => {
      if (form.get("Action") === "UpdateStack" && status === 200 && credential) {
        try {
          retagged.push(...(await retagRoles(motoUrl, credential[1]!, credential[2]!, form.get("StackName")!)));
        } catch (error) {
          relayAnswer(
            res,
            500,
            { "content-type": "text/plain" },
            Buffer.from(`cloudformation stand-in: retagging the stack's roles failed: ${String(error)}`),
          );
          return;
        }
      }
      relayAnswer(res, status, headers, text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    retagged,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
