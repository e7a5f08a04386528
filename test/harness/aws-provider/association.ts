/**
 * `aws:ssm/association:Association`.
 *
 * moto implements no SSM association API, so associations live in the stand-in's own store (association-store.ts,
 * a directory named by STANDIN_AWS_STATE_DIR). The document is still checked against moto, as CreateAssociation
 * would (InvalidDocument when it does not exist in the caller's account and region).
 */
import { randomUUID } from "node:crypto";
import { DescribeDocumentCommand } from "@aws-sdk/client-ssm";
import type { AwsContext } from "./config";
import { deleteAssociation, getAssociation, putAssociation, standInStateDir, type StandInAssociation } from "./association-store";
import { awsFailure, compact, mergeTags, type ResourceHandler } from "./resource";
import { isObject, type Props } from "./values";

function fromInputs(ctx: AwsContext, inputs: Props, previous?: StandInAssociation): Omit<StandInAssociation, "AssociationId"> {
  const now = new Date().toISOString();
  const targets = Array.isArray(inputs.targets) ? inputs.targets : [];
  const parameters = isObject(inputs.parameters) ? inputs.parameters : undefined;
  return {
    AssociationName: inputs.associationName as string | undefined,
    AssociationVersion: String(previous ? Number(previous.AssociationVersion) + 1 : 1),
    Name: String(inputs.name),
    DocumentVersion: (inputs.documentVersion as string | undefined) ?? "$DEFAULT",
    Targets: targets.filter(isObject).map((t) => ({
      Key: String(t.key),
      Values: Array.isArray(t.values) ? t.values.map(String) : [],
    })),
    ScheduleExpression: inputs.scheduleExpression as string | undefined,
    // SSM association parameters are lists of strings; the Pulumi input is a map of strings.
    Parameters: parameters
      ? Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, Array.isArray(v) ? v.map(String) : [String(v)]]))
      : undefined,
    MaxConcurrency: inputs.maxConcurrency as string | undefined,
    MaxErrors: inputs.maxErrors as string | undefined,
    ComplianceSeverity: inputs.complianceSeverity as string | undefined,
    ApplyOnlyAtCronInterval: inputs.applyOnlyAtCronInterval as boolean | undefined,
    SyncCompliance: inputs.syncCompliance as string | undefined,
    Tags: mergeTags(ctx.config.defaultTags, inputs.tags),
    AccountId: ctx.accountId,
    Region: ctx.region(inputs.region),
    Date: previous?.Date ?? now,
    LastUpdateAssociationDate: now,
    Overview: previous?.Overview ?? { Status: "Pending", DetailedStatus: "Creating" },
  };
}

function outputs(inputs: Props, a: StandInAssociation): Props {
  return compact({
    ...inputs,
    associationId: a.AssociationId,
    arn: `arn:aws:ssm:${a.Region}:${a.AccountId}:association/${a.AssociationId}`,
    documentVersion: a.DocumentVersion,
    region: a.Region,
    targets: a.Targets.map((t) => ({ key: t.Key, values: t.Values })),
    tagsAll: a.Tags ?? {},
  });
}

async function checkDocument(ctx: AwsContext, inputs: Props): Promise<void> {
  const version = inputs.documentVersion as string | undefined;
  await ctx.ssm(ctx.region(inputs.region)).send(
    new DescribeDocumentCommand({
      Name: String(inputs.name),
      DocumentVersion: version && !version.startsWith("$") ? version : undefined,
    }),
  );
}

export const association: ResourceHandler = {
  token: "aws:ssm/association:Association",
  inputs: [
    "name",
    "associationName",
    "documentVersion",
    "targets",
    "scheduleExpression",
    "parameters",
    "maxConcurrency",
    "maxErrors",
    "complianceSeverity",
    "applyOnlyAtCronInterval",
    "automationTargetParameterName",
    "calendarNames",
    "outputLocation",
    "syncCompliance",
    "waitForSuccessTimeoutSeconds",
    "tags",
    "region",
  ],
  replaceOnChanges: ["name", "region"],
  computedInputs: ["documentVersion", "targets", "region"],
  validate(news) {
    return news.name === undefined ? [{ property: "name", reason: "required" }] : [];
  },
  async create(ctx, inputs) {
    const root = standInStateDir();
    try {
      await checkDocument(ctx, inputs);
      const record: StandInAssociation = { AssociationId: `assoc-${randomUUID()}`, ...fromInputs(ctx, inputs) };
      await putAssociation(root, record);
      return { id: record.AssociationId, outs: outputs(inputs, record) };
    } catch (error) {
      throw awsFailure(`creating SSM Association (${String(inputs.name)})`, error);
    }
  },
  async read(ctx, id, state) {
    const record = await getAssociation(standInStateDir(), ctx.accountId, ctx.region(state.region), id);
    if (!record) return undefined;
    return outputs(
      {
        ...state,
        associationName: record.AssociationName,
        name: record.Name,
        scheduleExpression: record.ScheduleExpression,
        maxConcurrency: record.MaxConcurrency,
        maxErrors: record.MaxErrors,
        complianceSeverity: record.ComplianceSeverity,
      },
      record,
    );
  },
  async update(ctx, id, _olds, news) {
    const root = standInStateDir();
    try {
      const previous = await getAssociation(root, ctx.accountId, ctx.region(news.region), id);
      if (!previous) throw Object.assign(new Error(`Association ${id} does not exist`), { name: "AssociationDoesNotExist" });
      await checkDocument(ctx, news);
      const record: StandInAssociation = { AssociationId: id, ...fromInputs(ctx, news, previous) };
      await putAssociation(root, record);
      return outputs(news, record);
    } catch (error) {
      throw awsFailure(`updating SSM Association (${id})`, error);
    }
  },
  async delete(ctx, id, state) {
    await deleteAssociation(standInStateDir(), ctx.accountId, ctx.region(state.region), id);
  },
};
