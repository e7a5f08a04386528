/**
 * `aws:eks/accessEntry:AccessEntry` and `aws:eks/accessPolicyAssociation:AccessPolicyAssociation` against the EKS
 * API (moto has neither: tests put the EKS stand-in, test/harness/eks-standin.ts, in front of it). Ids as the real
 * provider's: `<cluster>:<principal ARN>` and `<cluster>#<principal ARN>#<policy ARN>`.
 */
import {
  type AccessScope,
  AssociateAccessPolicyCommand,
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  DisassociateAccessPolicyCommand,
  ListAssociatedAccessPoliciesCommand,
  TagResourceCommand,
  UntagResourceCommand,
} from "@aws-sdk/client-eks";
import type { AwsContext } from "./config";
import { errorCode } from "./config";
import { awsFailure, compact, mergeTags, type ResourceHandler } from "./resource";
import { tagChanges } from "./values";

const notFound = (error: unknown) => errorCode(error) === "ResourceNotFoundException";

async function describeEntry(ctx: AwsContext, region: string, clusterName: string, principalArn: string) {
  try {
    return (await ctx.eks(region).send(new DescribeAccessEntryCommand({ clusterName, principalArn }))).accessEntry;
  } catch (error) {
    if (notFound(error)) return undefined;
    throw awsFailure(`reading EKS Access Entry (${clusterName}:${principalArn})`, error);
  }
}

export const accessEntry: ResourceHandler = {
  token: "aws:eks/accessEntry:AccessEntry",
  inputs: ["clusterName", "principalArn", "type", "kubernetesGroups", "userName", "tags", "region"],
  replaceOnChanges: ["clusterName", "principalArn", "type", "region"],
  computedInputs: ["region", "type", "kubernetesGroups", "userName"],
  async create(ctx, inputs) {
    const region = ctx.region(inputs.region);
    const tags = mergeTags(ctx.config.defaultTags, inputs.tags);
    const { accessEntry: entry } = await ctx
      .eks(region)
      .send(
        new CreateAccessEntryCommand({
          clusterName: String(inputs.clusterName),
          principalArn: String(inputs.principalArn),
          type: inputs.type === undefined ? undefined : String(inputs.type),
          kubernetesGroups: inputs.kubernetesGroups as string[] | undefined,
          username: inputs.userName === undefined ? undefined : String(inputs.userName),
          tags,
        }),
      )
      .catch((error: unknown) => {
        throw awsFailure(`creating EKS Access Entry (${String(inputs.clusterName)}:${String(inputs.principalArn)})`, error);
      });
    return {
      id: `${String(inputs.clusterName)}:${String(inputs.principalArn)}`,
      outs: compact({
        ...inputs,
        region,
        accessEntryArn: entry?.accessEntryArn,
        userName: entry?.username,
        kubernetesGroups: entry?.kubernetesGroups ?? [],
        type: entry?.type,
        tagsAll: tags,
        createdAt: entry?.createdAt?.toISOString(),
        modifiedAt: entry?.modifiedAt?.toISOString(),
      }),
    };
  },
  async read(ctx, _id, state) {
    const region = ctx.region(state.region);
    const entry = await describeEntry(ctx, region, String(state.clusterName), String(state.principalArn));
    if (!entry) return undefined;
    return compact({ ...state, userName: entry.username, kubernetesGroups: entry.kubernetesGroups ?? [], tagsAll: entry.tags ?? {} });
  },
  async update(ctx, _id, olds, news) {
    const region = ctx.region(news.region);
    const tags = mergeTags(ctx.config.defaultTags, news.tags);
    const { set, remove } = tagChanges(olds.tagsAll, tags);
    const arn = String(olds.accessEntryArn);
    if (remove.length > 0) await ctx.eks(region).send(new UntagResourceCommand({ resourceArn: arn, tagKeys: remove }));
    if (set.length > 0) {
      await ctx.eks(region).send(new TagResourceCommand({ resourceArn: arn, tags: Object.fromEntries(set.map((t) => [t.Key, t.Value])) }));
    }
    return compact({ ...olds, ...news, region, tagsAll: tags });
  },
  async delete(ctx, _id, state) {
    await ctx
      .eks(ctx.region(state.region))
      .send(new DeleteAccessEntryCommand({ clusterName: String(state.clusterName), principalArn: String(state.principalArn) }))
      .catch((error: unknown) => {
        if (!notFound(error)) throw awsFailure(`deleting EKS Access Entry (${String(state.clusterName)}:${String(state.principalArn)})`, error);
      });
  },
};

const scopeOf = (value: unknown): AccessScope => {
  const scope = value as { type?: string; namespaces?: string[] } | undefined;
  return { type: scope?.type === "namespace" ? "namespace" : "cluster", ...(scope?.namespaces?.length ? { namespaces: scope.namespaces } : {}) };
};

export const accessPolicyAssociation: ResourceHandler = {
  token: "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
  inputs: ["clusterName", "principalArn", "policyArn", "accessScope", "region"],
  replaceOnChanges: ["clusterName", "principalArn", "policyArn", "accessScope", "region"],
  computedInputs: ["region"],
  async create(ctx, inputs) {
    const region = ctx.region(inputs.region);
    const clusterName = String(inputs.clusterName);
    const principalArn = String(inputs.principalArn);
    const policyArn = String(inputs.policyArn);
    const answer = await ctx
      .eks(region)
      .send(new AssociateAccessPolicyCommand({ clusterName, principalArn, policyArn, accessScope: scopeOf(inputs.accessScope) }))
      .catch((error: unknown) => {
        throw awsFailure(`creating EKS Access Policy Association (${clusterName}#${principalArn}#${policyArn})`, error);
      });
    return {
      id: `${clusterName}#${principalArn}#${policyArn}`,
      outs: compact({ ...inputs, region, associatedAt: answer.associatedAccessPolicy?.associatedAt?.toISOString() }),
    };
  },
  async read(ctx, _id, state) {
    const region = ctx.region(state.region);
    try {
      const { associatedAccessPolicies } = await ctx
        .eks(region)
        .send(new ListAssociatedAccessPoliciesCommand({ clusterName: String(state.clusterName), principalArn: String(state.principalArn) }));
      return associatedAccessPolicies?.some((policy) => policy.policyArn === state.policyArn) ? state : undefined;
    } catch (error) {
      if (notFound(error)) return undefined;
      throw awsFailure(`reading EKS Access Policy Association (${String(state.clusterName)})`, error);
    }
  },
  async update(_ctx, _id, olds, news) {
    return { ...olds, ...news };
  },
  async delete(ctx, _id, state) {
    await ctx
      .eks(ctx.region(state.region))
      .send(
        new DisassociateAccessPolicyCommand({
          clusterName: String(state.clusterName),
          principalArn: String(state.principalArn),
          policyArn: String(state.policyArn),
        }),
      )
      .catch((error: unknown) => {
        if (!notFound(error)) throw awsFailure(`deleting EKS Access Policy Association (${String(state.clusterName)})`, error);
      });
  },
};
