/** `aws:ssm/parameter:Parameter` and `aws:ssm/document:Document` against the SSM API. */
import {
  AddTagsToResourceCommand,
  CreateDocumentCommand,
  DeleteDocumentCommand,
  DeleteParameterCommand,
  DescribeDocumentCommand,
  GetDocumentCommand,
  GetParameterCommand,
  ListTagsForResourceCommand,
  PutParameterCommand,
  RemoveTagsFromResourceCommand,
  UpdateDocumentCommand,
  UpdateDocumentDefaultVersionCommand,
  type DocumentDescription,
  type ResourceTypeForTagging,
  type SSMClient,
} from "@aws-sdk/client-ssm";
import type { AwsContext } from "./config";
import { errorCode } from "./config";
import { autoName, awsFailure, compact, mergeTags, type ResourceHandler } from "./resource";
import { deepEqual, isObject, jsonEqual, secret, tagChanges, toAwsTags, type Props } from "./values";

const code = (error: unknown) => errorCode(error).replace(/Exception$/, "");

async function liveTags(ssm: SSMClient, type: ResourceTypeForTagging, id: string): Promise<Record<string, string>> {
  const { TagList } = await ssm.send(new ListTagsForResourceCommand({ ResourceType: type, ResourceId: id }));
  return Object.fromEntries((TagList ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]));
}

async function syncTags(ssm: SSMClient, type: ResourceTypeForTagging, id: string, olds: unknown, news: Record<string, string>) {
  const { set, remove } = tagChanges(olds, news);
  if (remove.length) await ssm.send(new RemoveTagsFromResourceCommand({ ResourceType: type, ResourceId: id, TagKeys: remove }));
  if (set.length) await ssm.send(new AddTagsToResourceCommand({ ResourceType: type, ResourceId: id, Tags: set }));
}

function userTags(ctx: AwsContext, live: Record<string, string>, state: Props): Record<string, string> | undefined {
  const tags = Object.fromEntries(
    Object.entries(live).filter(([k]) => !(ctx.config.defaultTags && k in ctx.config.defaultTags) || (isObject(state.tags) && k in state.tags)),
  );
  return state.tags === undefined && Object.keys(tags).length === 0 ? undefined : tags;
}

// ---------------------------------------------------------------------------------------------------------------
// Parameter

function parameterValue(inputs: Props): string | undefined {
  const value = inputs.value ?? inputs.insecureValue;
  return value === undefined ? undefined : String(value);
}

async function parameterOutputs(ctx: AwsContext, inputs: Props, name: string, tags: Record<string, string>) {
  const region = ctx.region(inputs.region);
  const { Parameter: live } = await ctx.ssm(region).send(new GetParameterCommand({ Name: name, WithDecryption: true }));
  return compact({
    ...inputs,
    name,
    region,
    arn: live?.ARN,
    version: live?.Version,
    type: live?.Type ?? inputs.type,
    keyId: inputs.keyId ?? (inputs.type === "SecureString" ? "alias/aws/ssm" : ""),
    dataType: live?.DataType ?? inputs.dataType,
    tagsAll: tags,
    // `value` is a secret in the provider schema, whatever the program passed.
    ...(inputs.insecureValue !== undefined ? { insecureValue: live?.Value } : { value: secret(live?.Value) }),
  });
}

export const parameter: ResourceHandler = {
  token: "aws:ssm/parameter:Parameter",
  inputs: ["name", "type", "value", "insecureValue", "description", "tier", "dataType", "keyId", "allowedPattern", "overwrite", "tags", "region"],
  replaceOnChanges: ["name", "region"],
  computedInputs: ["name", "keyId", "dataType", "region"],
  defaults(news, olds, urn) {
    return {
      tier: "Standard",
      dataType: "text",
      ...news,
      name: news.name ?? olds.name ?? autoName(urn, 2048),
    };
  },
  validate(news) {
    const failures = [];
    if (news.type === undefined) failures.push({ property: "type", reason: "required" });
    if (news.value === undefined && news.insecureValue === undefined) {
      failures.push({ property: "value", reason: "one of `value` or `insecureValue` must be set" });
    }
    if (news.value !== undefined && news.insecureValue !== undefined) {
      failures.push({ property: "insecureValue", reason: "conflicts with `value`" });
    }
    return failures;
  },
  async create(ctx, inputs) {
    const name = String(inputs.name);
    const ssm = ctx.ssm(ctx.region(inputs.region));
    const tags = mergeTags(ctx.config.defaultTags, inputs.tags);
    const overwrite = inputs.overwrite === true;
    try {
      await ssm.send(
        new PutParameterCommand({
          Name: name,
          Type: inputs.type as "String" | "StringList" | "SecureString",
          Value: parameterValue(inputs),
          Description: (inputs.description as string | undefined) || undefined,
          Tier: inputs.tier as "Standard" | "Advanced" | "Intelligent-Tiering" | undefined,
          DataType: inputs.dataType as string | undefined,
          KeyId: (inputs.keyId as string | undefined) || undefined,
          AllowedPattern: (inputs.allowedPattern as string | undefined) || undefined,
          Overwrite: overwrite || undefined,
          // PutParameter refuses Tags together with Overwrite; tag afterwards then.
          Tags: !overwrite && toAwsTags(tags).length ? toAwsTags(tags) : undefined,
        }),
      );
      if (overwrite) await syncTags(ssm, "Parameter", name, {}, tags);
      return { id: name, outs: await parameterOutputs(ctx, inputs, name, tags) };
    } catch (error) {
      throw awsFailure(`creating SSM Parameter (${name})`, error);
    }
  },
  async read(ctx, id, state) {
    const ssm = ctx.ssm(ctx.region(state.region));
    try {
      const { Parameter: live } = await ssm.send(new GetParameterCommand({ Name: id, WithDecryption: true }));
      if (!live) return undefined;
      const tags = await liveTags(ssm, "Parameter", id);
      const valueKey = state.insecureValue !== undefined ? "insecureValue" : "value";
      return compact({
        ...state,
        name: live.Name,
        type: live.Type,
        [valueKey]: valueKey === "value" ? secret(live.Value) : live.Value,
        version: live.Version,
        arn: live.ARN,
        dataType: live.DataType,
        tags: userTags(ctx, tags, state),
        tagsAll: tags,
      });
    } catch (error) {
      if (code(error) === "ParameterNotFound") return undefined;
      throw awsFailure(`reading SSM Parameter (${id})`, error);
    }
  },
  async update(ctx, id, olds, news) {
    const ssm = ctx.ssm(ctx.region(news.region));
    const tags = mergeTags(ctx.config.defaultTags, news.tags);
    const changed = (key: string) => !deepEqual(olds[key], news[key]);
    try {
      if (["value", "insecureValue", "type", "description", "tier", "dataType", "keyId", "allowedPattern"].some(changed)) {
        await ssm.send(
          new PutParameterCommand({
            Name: id,
            Type: news.type as "String" | "StringList" | "SecureString",
            Value: parameterValue(news),
            Description: (news.description as string | undefined) ?? "",
            Tier: news.tier as "Standard" | "Advanced" | "Intelligent-Tiering" | undefined,
            DataType: news.dataType as string | undefined,
            KeyId: (news.keyId as string | undefined) || undefined,
            AllowedPattern: (news.allowedPattern as string | undefined) || undefined,
            Overwrite: true,
          }),
        );
      }
      await syncTags(ssm, "Parameter", id, olds.tagsAll ?? olds.tags, tags);
      return await parameterOutputs(ctx, { ...news, keyId: news.keyId ?? olds.keyId }, id, tags);
    } catch (error) {
      throw awsFailure(`updating SSM Parameter (${id})`, error);
    }
  },
  async delete(ctx, id, state) {
    try {
      await ctx.ssm(ctx.region(state.region)).send(new DeleteParameterCommand({ Name: id }));
    } catch (error) {
      if (code(error) === "ParameterNotFound") return;
      throw awsFailure(`deleting SSM Parameter (${id})`, error);
    }
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Document

function documentOutputs(ctx: AwsContext, inputs: Props, d: DocumentDescription | undefined, tags: Record<string, string>) {
  const region = ctx.region(inputs.region);
  const name = d?.Name ?? String(inputs.name);
  return compact({
    ...inputs,
    name,
    region,
    arn: `arn:aws:ssm:${region}:${d?.Owner || ctx.accountId}:document/${name}`,
    createdDate: d?.CreatedDate?.toISOString(),
    defaultVersion: d?.DefaultVersion,
    description: d?.Description ?? "",
    documentVersion: d?.DocumentVersion,
    latestVersion: d?.LatestVersion,
    hash: d?.Hash,
    hashType: d?.HashType,
    owner: d?.Owner,
    status: d?.Status,
    schemaVersion: d?.SchemaVersion,
    platformTypes: d?.PlatformTypes ?? [],
    parameters: (d?.Parameters ?? []).map((p) => compact({ name: p.Name, type: p.Type, description: p.Description, defaultValue: p.DefaultValue })),
    tagsAll: tags,
  });
}

export const document: ResourceHandler = {
  token: "aws:ssm/document:Document",
  inputs: ["name", "content", "documentType", "documentFormat", "targetType", "versionName", "tags", "region"],
  replaceOnChanges: ["name", "documentType", "region"],
  computedInputs: ["region"],
  jsonInputs: ["content"],
  defaults(news) {
    return { documentFormat: "JSON", ...news };
  },
  validate(news) {
    const failures = [];
    for (const key of ["name", "content", "documentType"]) {
      if (news[key] === undefined) failures.push({ property: key, reason: "required" });
    }
    return failures;
  },
  async create(ctx, inputs) {
    const name = String(inputs.name);
    const ssm = ctx.ssm(ctx.region(inputs.region));
    const tags = mergeTags(ctx.config.defaultTags, inputs.tags);
    try {
      const { DocumentDescription: created } = await ssm.send(
        new CreateDocumentCommand({
          Name: name,
          Content: String(inputs.content),
          DocumentType: inputs.documentType as "Command",
          DocumentFormat: inputs.documentFormat as "JSON" | "YAML" | "TEXT",
          TargetType: (inputs.targetType as string | undefined) || undefined,
          VersionName: (inputs.versionName as string | undefined) || undefined,
          Tags: toAwsTags(tags).length ? toAwsTags(tags) : undefined,
        }),
      );
      return { id: name, outs: documentOutputs(ctx, inputs, created, tags) };
    } catch (error) {
      throw awsFailure(`creating SSM Document (${name})`, error);
    }
  },
  async read(ctx, id, state) {
    const ssm = ctx.ssm(ctx.region(state.region));
    try {
      const { Document: live } = await ssm.send(new DescribeDocumentCommand({ Name: id }));
      const content = await ssm.send(
        new GetDocumentCommand({ Name: id, DocumentVersion: live?.DefaultVersion, DocumentFormat: live?.DocumentFormat }),
      );
      const tags = await liveTags(ssm, "Document", id);
      return documentOutputs(
        ctx,
        {
          ...state,
          content: jsonEqual(state.content, content.Content) ? state.content : content.Content,
          documentType: live?.DocumentType,
          documentFormat: live?.DocumentFormat,
          tags: userTags(ctx, tags, state),
        },
        live,
        tags,
      );
    } catch (error) {
      if (code(error) === "InvalidDocument") return undefined;
      throw awsFailure(`reading SSM Document (${id})`, error);
    }
  },
  async update(ctx, id, olds, news) {
    const ssm = ctx.ssm(ctx.region(news.region));
    const tags = mergeTags(ctx.config.defaultTags, news.tags);
    try {
      const contentChanged =
        !jsonEqual(olds.content, news.content) ||
        olds.documentFormat !== news.documentFormat ||
        (olds.targetType ?? "") !== (news.targetType ?? "") ||
        (olds.versionName ?? "") !== (news.versionName ?? "");
      if (contentChanged) {
        const { DocumentDescription: updated } = await ssm.send(
          new UpdateDocumentCommand({
            Name: id,
            Content: String(news.content),
            DocumentVersion: "$LATEST",
            DocumentFormat: news.documentFormat as "JSON" | "YAML" | "TEXT",
            TargetType: (news.targetType as string | undefined) || undefined,
            VersionName: (news.versionName as string | undefined) || undefined,
          }),
        );
        if (updated?.DocumentVersion) {
          await ssm.send(new UpdateDocumentDefaultVersionCommand({ Name: id, DocumentVersion: updated.DocumentVersion }));
        }
      }
      await syncTags(ssm, "Document", id, olds.tagsAll ?? olds.tags, tags);
      const { Document: live } = await ssm.send(new DescribeDocumentCommand({ Name: id }));
      return documentOutputs(ctx, news, live, tags);
    } catch (error) {
      throw awsFailure(`updating SSM Document (${id})`, error);
    }
  },
  async delete(ctx, id, state) {
    try {
      await ctx.ssm(ctx.region(state.region)).send(new DeleteDocumentCommand({ Name: id }));
    } catch (error) {
      if (code(error) === "InvalidDocument") return;
      throw awsFailure(`deleting SSM Document (${id})`, error);
    }
  },
};
