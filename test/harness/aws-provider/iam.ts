/** `aws:iam/role:Role`, `aws:iam/rolePolicy:RolePolicy` and `aws:iam/rolePolicyAttachment:RolePolicyAttachment` against the IAM API. */
import {
  AttachRolePolicyCommand,
  DetachRolePolicyCommand,
  ListAttachedRolePoliciesCommand,
  CreateRoleCommand,
  DeleteRoleCommand,
  DeleteRolePermissionsBoundaryCommand,
  DeleteRolePolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  ListRolePoliciesCommand,
  ListRoleTagsCommand,
  PutRolePermissionsBoundaryCommand,
  PutRolePolicyCommand,
  TagRoleCommand,
  UntagRoleCommand,
  UpdateAssumeRolePolicyCommand,
  UpdateRoleCommand,
  type Role,
} from "@aws-sdk/client-iam";
import type { AwsContext } from "./config";
import { errorCode } from "./config";
import { autoName, awsFailure, compact, mergeTags, type ResourceHandler } from "./resource";
import { isObject, jsonEqual, tagChanges, toAwsTags, type Props } from "./values";

const notFound = (error: unknown) => errorCode(error) === "NoSuchEntity" || errorCode(error) === "NoSuchEntityException";

/** IAM returns policy documents URL-encoded. */
function decodePolicy(document: string | undefined): string | undefined {
  return document === undefined ? undefined : decodeURIComponent(document);
}

/** Keeps the configured spelling of a JSON document when AWS returns the same document formatted differently. */
function keepSpelling(configured: unknown, live: string | undefined): unknown {
  return live !== undefined && jsonEqual(configured, live) ? configured : live;
}

function roleOutputs(_ctx: AwsContext, inputs: Props, role: Role | undefined, tags: Record<string, string>): Props {
  return compact({
    ...inputs,
    arn: role?.Arn,
    uniqueId: role?.RoleId,
    createDate: role?.CreateDate?.toISOString(),
    name: role?.RoleName ?? inputs.name,
    tagsAll: tags,
    inlinePolicies: inputs.inlinePolicies ?? [],
    managedPolicyArns: inputs.managedPolicyArns ?? [],
    description: inputs.description ?? role?.Description,
  });
}

export const role: ResourceHandler = {
  token: "aws:iam/role:Role",
  inputs: [
    "name",
    "namePrefix",
    "assumeRolePolicy",
    "description",
    "maxSessionDuration",
    "path",
    "permissionsBoundary",
    "forceDetachPolicies",
    "tags",
  ],
  replaceOnChanges: ["name", "namePrefix", "path"],
  computedInputs: ["name"],
  jsonInputs: ["assumeRolePolicy"],
  defaults(news, olds, urn) {
    const name = news.name ?? olds.name ?? (typeof news.namePrefix === "string" ? undefined : autoName(urn));
    return { path: "/", maxSessionDuration: 3600, forceDetachPolicies: false, ...news, ...(name ? { name } : {}) };
  },
  validate(news) {
    const failures = [];
    if (news.assumeRolePolicy === undefined) failures.push({ property: "assumeRolePolicy", reason: "required" });
    return failures;
  },
  async create(ctx, inputs, urn) {
    const name = String(inputs.name ?? `${inputs.namePrefix ?? ""}${autoName(urn, 32)}`);
    const tags = mergeTags(ctx.config.defaultTags, inputs.tags);
    try {
      const { Role: created } = await ctx.iam().send(
        new CreateRoleCommand({
          RoleName: name,
          AssumeRolePolicyDocument: policyText(inputs.assumeRolePolicy),
          Description: (inputs.description as string | undefined) || undefined,
          MaxSessionDuration: inputs.maxSessionDuration as number | undefined,
          Path: inputs.path as string | undefined,
          PermissionsBoundary: (inputs.permissionsBoundary as string | undefined) || undefined,
          Tags: toAwsTags(tags).length ? toAwsTags(tags) : undefined,
        }),
      );
      return { id: name, outs: roleOutputs(ctx, { ...inputs, name }, created, tags) };
    } catch (error) {
      throw awsFailure(`creating IAM Role (${name})`, error);
    }
  },
  async read(ctx, id, state) {
    try {
      const { Role: live } = await ctx.iam().send(new GetRoleCommand({ RoleName: id }));
      if (!live) return undefined;
      const { Tags } = await ctx.iam().send(new ListRoleTagsCommand({ RoleName: id }));
      const tags = Object.fromEntries((Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]));
      // Tags that come only from the provider's defaultTags belong to tagsAll, not to tags.
      const userTags = Object.fromEntries(
        Object.entries(tags).filter(([k]) => !(ctx.config.defaultTags && k in ctx.config.defaultTags) || (isObject(state.tags) && k in state.tags)),
      );
      return roleOutputs(
        ctx,
        {
          ...state,
          name: live.RoleName,
          assumeRolePolicy: keepSpelling(state.assumeRolePolicy, decodePolicy(live.AssumeRolePolicyDocument)),
          description: live.Description ?? "",
          maxSessionDuration: live.MaxSessionDuration,
          path: live.Path,
          permissionsBoundary: live.PermissionsBoundary?.PermissionsBoundaryArn,
          tags: state.tags === undefined && Object.keys(userTags).length === 0 ? undefined : userTags,
        },
        live,
        tags,
      );
    } catch (error) {
      if (notFound(error)) return undefined;
      throw awsFailure(`reading IAM Role (${id})`, error);
    }
  },
  async update(ctx, id, olds, news) {
    const iam = ctx.iam();
    try {
      if (!jsonEqual(olds.assumeRolePolicy, news.assumeRolePolicy)) {
        await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: id, PolicyDocument: policyText(news.assumeRolePolicy) }));
      }
      if ((olds.description ?? "") !== (news.description ?? "") || olds.maxSessionDuration !== news.maxSessionDuration) {
        await iam.send(
          new UpdateRoleCommand({
            RoleName: id,
            Description: (news.description as string | undefined) ?? "",
            MaxSessionDuration: news.maxSessionDuration as number | undefined,
          }),
        );
      }
      if ((olds.permissionsBoundary ?? "") !== (news.permissionsBoundary ?? "")) {
        if (news.permissionsBoundary) {
          await iam.send(new PutRolePermissionsBoundaryCommand({ RoleName: id, PermissionsBoundary: String(news.permissionsBoundary) }));
        } else {
          await iam.send(new DeleteRolePermissionsBoundaryCommand({ RoleName: id }));
        }
      }
      const tags = mergeTags(ctx.config.defaultTags, news.tags);
      const { set, remove } = tagChanges(olds.tagsAll ?? olds.tags, tags);
      if (remove.length) await iam.send(new UntagRoleCommand({ RoleName: id, TagKeys: remove }));
      if (set.length) await iam.send(new TagRoleCommand({ RoleName: id, Tags: set }));
      const { Role: live } = await iam.send(new GetRoleCommand({ RoleName: id }));
      return roleOutputs(ctx, { ...news, name: id }, live, tags);
    } catch (error) {
      throw awsFailure(`updating IAM Role (${id})`, error);
    }
  },
  async delete(ctx, id) {
    const iam = ctx.iam();
    try {
      // Inline policies block DeleteRole (DeleteConflict); remove them first.
      let marker: string | undefined;
      do {
        const page = await iam.send(new ListRolePoliciesCommand({ RoleName: id, Marker: marker }));
        for (const policyName of page.PolicyNames ?? []) {
          await iam.send(new DeleteRolePolicyCommand({ RoleName: id, PolicyName: policyName }));
        }
        marker = page.IsTruncated ? page.Marker : undefined;
      } while (marker);
      await iam.send(new DeleteRoleCommand({ RoleName: id }));
    } catch (error) {
      if (notFound(error)) return;
      throw awsFailure(`deleting IAM Role (${id})`, error);
    }
  },
};

function policyText(policy: unknown): string {
  return typeof policy === "string" ? policy : JSON.stringify(policy);
}

function splitPolicyId(id: string): { roleName: string; policyName: string } {
  const at = id.indexOf(":");
  if (at < 0) throw new Error(`unexpected IAM Role Policy id ${id}: expected <role-name>:<policy-name>`);
  return { roleName: id.slice(0, at), policyName: id.slice(at + 1) };
}

export const rolePolicy: ResourceHandler = {
  token: "aws:iam/rolePolicy:RolePolicy",
  inputs: ["name", "namePrefix", "role", "policy"],
  replaceOnChanges: ["name", "namePrefix", "role"],
  computedInputs: ["name"],
  jsonInputs: ["policy"],
  defaults(news, olds, urn) {
    const name = news.name ?? olds.name ?? (typeof news.namePrefix === "string" ? undefined : autoName(urn, 128));
    return { ...news, ...(name ? { name } : {}) };
  },
  validate(news) {
    const failures = [];
    if (news.role === undefined) failures.push({ property: "role", reason: "required" });
    if (news.policy === undefined) failures.push({ property: "policy", reason: "required" });
    return failures;
  },
  async create(ctx, inputs, urn) {
    const roleName = String(inputs.role);
    const policyName = String(inputs.name ?? `${inputs.namePrefix ?? ""}${autoName(urn, 64)}`);
    const id = `${roleName}:${policyName}`;
    try {
      await ctx.iam().send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: policyName, PolicyDocument: policyText(inputs.policy) }));
      return { id, outs: compact({ ...inputs, name: policyName, role: roleName }) };
    } catch (error) {
      throw awsFailure(`creating IAM Role Policy (${id})`, error);
    }
  },
  async read(ctx, id, state) {
    const { roleName, policyName } = splitPolicyId(id);
    try {
      const live = await ctx.iam().send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
      return compact({
        ...state,
        name: policyName,
        role: roleName,
        policy: keepSpelling(state.policy, decodePolicy(live.PolicyDocument)),
      });
    } catch (error) {
      if (notFound(error)) return undefined;
      throw awsFailure(`reading IAM Role Policy (${id})`, error);
    }
  },
  async update(ctx, id, _olds, news) {
    const { roleName, policyName } = splitPolicyId(id);
    try {
      await ctx.iam().send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: policyName, PolicyDocument: policyText(news.policy) }));
      return compact({ ...news, name: policyName, role: roleName });
    } catch (error) {
      throw awsFailure(`updating IAM Role Policy (${id})`, error);
    }
  },
  async delete(ctx, id) {
    const { roleName, policyName } = splitPolicyId(id);
    try {
      await ctx.iam().send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
    } catch (error) {
      if (notFound(error)) return;
      throw awsFailure(`deleting IAM Role Policy (${id})`, error);
    }
  },
};

/** `<role>-<8 hex>` like the bridged provider's id; role and policy ARN live in the state. */
export const rolePolicyAttachment: ResourceHandler = {
  token: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  inputs: ["role", "policyArn"],
  replaceOnChanges: ["role", "policyArn"],
  validate(news) {
    const failures = [];
    if (news.role === undefined) failures.push({ property: "role", reason: "required" });
    if (news.policyArn === undefined) failures.push({ property: "policyArn", reason: "required" });
    return failures;
  },
  async create(ctx, inputs, urn) {
    const roleName = String(inputs.role);
    const policyArn = String(inputs.policyArn);
    try {
      await ctx.iam().send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: policyArn }));
      return { id: `${roleName}-${autoName(urn).slice(-7)}`, outs: compact({ ...inputs, role: roleName, policyArn }) };
    } catch (error) {
      throw awsFailure(`attaching IAM Policy (${policyArn}) to IAM Role (${roleName})`, error);
    }
  },
  async read(ctx, _id, state) {
    try {
      const live = await ctx.iam().send(new ListAttachedRolePoliciesCommand({ RoleName: String(state.role) }));
      const attached = (live.AttachedPolicies ?? []).some((policy) => policy.PolicyArn === state.policyArn);
      return attached ? state : undefined;
    } catch (error) {
      if (notFound(error)) return undefined;
      throw awsFailure(`reading IAM Role Policy Attachment (${String(state.role)})`, error);
    }
  },
  async update(_ctx, _id, _olds, news) {
    return news; // every input replaces
  },
  async delete(ctx, _id, state) {
    try {
      await ctx.iam().send(new DetachRolePolicyCommand({ RoleName: String(state.role), PolicyArn: String(state.policyArn) }));
    } catch (error) {
      if (notFound(error)) return;
      throw awsFailure(`detaching IAM Policy (${String(state.policyArn)}) from IAM Role (${String(state.role)})`, error);
    }
  },
};
