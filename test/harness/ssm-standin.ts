/**
 * The narrowest stand-in for the SSM calls moto does not implement (shared/TOOLCHAIN-NOTES.md):
 * DescribeInstanceInformation (which instances are SSM managed instances), DescribeInstanceAssociationsStatus
 * (what the association did on an instance), DescribeAssociationExecutions and DescribeAssociationExecutionTargets
 * (an association's runs, and each instance's command in them), ListAssociations (the stand-in provider's
 * associations of the caller's account and region), GetCommandInvocation for those commands (the step's
 * exit code and output, as the install script printed it: `output`), and GetServiceSetting (Default Host Management,
 * which the stack sets through the stand-in provider's own store). An HTTP server on 127.0.0.1, set as the SSM endpoint through the SDK's standard AWS_ENDPOINT_URL_SSM, answers those from
 * a managed-instance registry the test controls and from the stand-in provider's stores, and forwards every other
 * SSM call (SendCommand, GetCommandInvocation, parameters, documents) unchanged to the moto server. It records which
 * access key signed each call, so a test can prove the tenant's assumed-role session was used.
 *
 * Regional as SSM is: the region of a call is the one of its SigV4 credential scope. An instance is only known in
 * its own region, and an association (from the stand-in provider's store, test/harness/aws-provider) only applies to
 * the managed instances of its own region that match its targets (InstanceIds, tag:<key>), minus those its document
 * skips (the install document's exclusion check: the ExcludeTagKey/ExcludeTagValue parameters, read on the instance
 * from instance metadata, so it only works where the instance serves its tags there).
 */
import { createHash } from "node:crypto";
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { listStandInAssociations, type StandInAssociation } from "./aws-provider/association-store";
import { getStandInServiceSetting, parseSettingId } from "./aws-provider/service-setting";

type AssociationStatus = "Success" | "Failed" | "Pending" | "InProgress";

/** What the document's step printed on the instance (SSM keeps it with the command invocation). */
export interface StepOutput {
  responseCode: number;
  stdout: string;
  stderr: string;
}

export interface ManagedInstance {
  instanceId: string;
  platformType: "Linux" | "Windows";
  pingStatus?: "Online" | "ConnectionLost" | "Inactive";
  /** The region the instance lives in; default: the stand-in's default region. */
  region?: string;
  /** The account it lives in: only that account's sessions see it (when the stand-in knows the caller's account). */
  accountId?: string;
  /** The instance's EC2 tags (association tag targets and the exclusion check look at them). */
  tags?: Record<string, string>;
  /** false: the instance does not serve its tags in instance metadata, so the document's exclusion check cannot see them. */
  metadataTags?: boolean;
  /** What an association run does on this instance (default Success) when the status comes from the associations. */
  outcome?: { status: AssociationStatus; detailedStatus?: string; errorCode?: string; output?: StepOutput };
  /**
   * A fixed association result on this instance, reported as is (the stand-in provider's associations are then not
   * looked at); none = computed from the associations of the instance's region.
   */
  association?: {
    documentName: string;
    status: AssociationStatus;
    detailedStatus?: string;
    errorCode?: string;
    executedAt: Date;
    output?: StepOutput;
  };
}

export interface SsmStandInOptions {
  /** Region of instances that name none (default: AWS_REGION, else us-east-1). */
  defaultRegion?: string;
  /** The customer account whose associations and service settings apply (default: any account). */
  accountId?: string;
  /** The caller's account from its access key id (the STS stand-in's accountOf): SSM, like AWS, answers per account. */
  accountOf?(accessKeyId: string | undefined): string | undefined;
}

export interface SsmCall {
  action: string;
  region: string | undefined;
  accessKeyId: string | undefined;
  emulated: boolean;
  /** The request's JSON body. */
  input: Record<string, unknown>;
}

export interface SsmStandIn {
  endpoint: string;
  /**
   * Actions (`ssm:CreateDocument`) an organization's service control policy denies, per region, in every account: AWS
   * answers each such call with 400 AccessDeniedException, "... with an explicit deny in a service control policy"
   * (moto evaluates no policy). Mutable: a test adds and lifts denials.
   */
  scpDenies: { region: string; action: string }[];
  /** Replaces the managed-instance registry (every region). */
  setInstances(instances: ManagedInstance[]): void;
  /** Adds or replaces instances of the registry. */
  addInstances(instances: ManagedInstance[]): void;
  calls: SsmCall[];
  stop(): Promise<void>;
}

const EMULATED = new Set([
  "DescribeInstanceInformation",
  "DescribeInstanceAssociationsStatus",
  "DescribeAssociationExecutions",
  "DescribeAssociationExecutionTargets",
  "ListAssociations",
  "GetServiceSetting",
]);

/** The install document's step that runs on each platform (programs/tenant/agent-document.ts). */
const STEP_OF_PLATFORM = { Linux: "InstallAgentLinux", Windows: "InstallAgentWindows" } as const;

/** A command id as SSM makes them (a UUID), stable for an (execution, instance). */
function commandIdOf(executionId: string, instanceId: string): string {
  const hex = createHash("sha256").update(`${executionId}/${instanceId}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

const epochSeconds = (date: Date) => date.getTime() / 1000;

/** Which associations of the region apply the agent on the instance: target match, minus the document's own skip. */
function appliesTo(association: StandInAssociation, instance: ManagedInstance): boolean {
  const tags = instance.tags ?? {};
  // SSM's target keys the stack uses; every target entry must match.
  const targeted =
    association.Targets.length > 0 &&
    association.Targets.every(({ Key, Values }) =>
      Key === "InstanceIds"
        ? Values.includes("*") || Values.includes(instance.instanceId)
        : Key === "tag-key"
          ? Values.some((key) => key in tags)
          : Key.startsWith("tag:") && tags[Key.slice(4)] !== undefined && Values.includes(tags[Key.slice(4)]!),
    );
  if (!targeted) return false;
  const excludeKey = association.Parameters?.ExcludeTagKey?.[0];
  const excludeValue = association.Parameters?.ExcludeTagValue?.[0];
  const skipped = Boolean(excludeKey) && instance.metadataTags !== false && tags[excludeKey!] === excludeValue;
  return !skipped;
}

const PAGE_MAX = 50;

export async function startSsmStandIn(motoEndpoint: string, options: SsmStandInOptions = {}): Promise<SsmStandIn> {
  const defaultRegion = options.defaultRegion ?? process.env.AWS_REGION ?? "us-east-1";
  /** instance id -> instance, one map per region. */
  let registry = new Map<string, Map<string, ManagedInstance>>();
  const calls: SsmCall[] = [];
  const scpDenies: SsmStandIn["scpDenies"] = [];
  const moto = new URL(motoEndpoint);
  const regionOf = (instance: ManagedInstance) => instance.region ?? defaultRegion;
  const register = (instances: ManagedInstance[]) => {
    for (const instance of instances) {
      const region = regionOf(instance);
      if (!registry.has(region)) registry.set(region, new Map());
      registry.get(region)!.set(instance.instanceId, instance);
    }
  };

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
    res.end(JSON.stringify(body));
  };

  /** An instance of another account is not there for this caller. */
  const visibleTo = (caller: string | undefined) => (instance: ManagedInstance) => !caller || !instance.accountId || instance.accountId === caller;

  const describeInstanceInformation = (region: string, input: Record<string, unknown>, caller?: string) => {
    let instances = [...(registry.get(region)?.values() ?? [])].filter(visibleTo(caller));
    const filters = [
      ...((input.Filters as { Key: string; Values: string[] }[] | undefined) ?? []),
      ...((input.InstanceInformationFilterList as { key: string; valueSet: string[] }[] | undefined) ?? []).map((f) => ({
        Key: f.key,
        Values: f.valueSet,
      })),
    ];
    for (const filter of filters) {
      if (filter.Key === "InstanceIds" || filter.Key === "InstanceId") instances = instances.filter((i) => filter.Values.includes(i.instanceId));
      else if (filter.Key === "PlatformTypes" || filter.Key === "PlatformType")
        instances = instances.filter((i) => filter.Values.includes(i.platformType));
      else if (filter.Key === "PingStatus") instances = instances.filter((i) => filter.Values.includes(i.pingStatus ?? "Online"));
    }
    const max = Math.min(Number(input.MaxResults ?? PAGE_MAX) || PAGE_MAX, PAGE_MAX);
    const offset = input.NextToken ? Number(Buffer.from(String(input.NextToken), "base64url").toString("utf8")) : 0;
    const page = instances.slice(offset, offset + max);
    const next = offset + max < instances.length ? Buffer.from(String(offset + max)).toString("base64url") : undefined;
    return {
      InstanceInformationList: page.map((instance) => ({
        InstanceId: instance.instanceId,
        PingStatus: instance.pingStatus ?? "Online",
        PlatformType: instance.platformType,
        AgentVersion: "3.3.0.0",
        ResourceType: "EC2Instance",
      })),
      ...(next ? { NextToken: next } : {}),
    };
  };

  const describeAssociationsStatus = async (region: string, InstanceId: string, caller?: string) => {
    const instance = registry.get(region)?.get(InstanceId);
    if (!instance || !visibleTo(caller)(instance)) return undefined;
    const fixed = instance.association;
    if (fixed) {
      return [
        {
          AssociationId: `assoc-${InstanceId}`,
          Name: fixed.documentName,
          InstanceId,
          ExecutionDate: epochSeconds(fixed.executedAt),
          Status: fixed.status,
          DetailedStatus: fixed.detailedStatus ?? fixed.status,
          ...(fixed.errorCode ? { ErrorCode: fixed.errorCode } : {}),
        },
      ];
    }
    const associations = await listStandInAssociations({ accountId: instance.accountId ?? options.accountId, region });
    const outcome = instance.outcome ?? { status: "Success" as const };
    return associations
      .filter((association) => association.Region === region && appliesTo(association, instance))
      .map((association) => ({
        AssociationId: association.AssociationId,
        Name: association.Name,
        DocumentVersion: association.DocumentVersion,
        AssociationVersion: association.AssociationVersion,
        InstanceId,
        ExecutionDate: epochSeconds(new Date(association.LastUpdateAssociationDate)),
        Status: outcome.status,
        DetailedStatus: outcome.detailedStatus ?? outcome.status,
        ...(outcome.errorCode ? { ErrorCode: outcome.errorCode } : {}),
        ...(association.AssociationName ? { AssociationName: association.AssociationName } : {}),
      }));
  };

  /**
   * An association's latest run on the instances of the region it applies to: one execution (`exec-<association>`),
   * and per instance its result and the command that ran the document there (whose output GetCommandInvocation gives).
   */
  const executionTargets = async (region: string, associationId: string, caller?: string) => {
    const targets: { instance: ManagedInstance; status: AssociationStatus; detailedStatus?: string; executedAt: Date; output?: StepOutput }[] = [];
    for (const instance of registry.get(region)?.values() ?? []) {
      if (!visibleTo(caller)(instance)) continue;
      const fixed = instance.association;
      if (fixed) {
        if (`assoc-${instance.instanceId}` === associationId) targets.push({ instance, ...fixed });
        continue;
      }
      const associations = await listStandInAssociations({ accountId: instance.accountId ?? options.accountId, region });
      const association = associations.find((candidate) => candidate.AssociationId === associationId && candidate.Region === region);
      if (!association || !appliesTo(association, instance)) continue;
      const outcome = instance.outcome ?? { status: "Success" as const };
      targets.push({ instance, ...outcome, executedAt: new Date(association.LastUpdateAssociationDate) });
    }
    return targets;
  };

  const describeAssociationExecutions = async (region: string, input: Record<string, unknown>, caller?: string) => {
    const associationId = String(input.AssociationId ?? "");
    const targets = await executionTargets(region, associationId, caller);
    if (targets.length === 0) return { AssociationExecutions: [] };
    const failed = targets.some((target) => target.status === "Failed");
    return {
      AssociationExecutions: [
        {
          AssociationId: associationId,
          ExecutionId: `exec-${associationId}`,
          Status: failed ? "Failed" : "Success",
          DetailedStatus: failed ? "Failed" : "Success",
          CreatedTime: epochSeconds(new Date(Math.max(...targets.map((target) => target.executedAt.getTime())))),
          ResourceCountByStatus: JSON.stringify({ [failed ? "Failed" : "Success"]: targets.length }),
        },
      ],
    };
  };

  const describeAssociationExecutionTargets = async (region: string, input: Record<string, unknown>, caller?: string) => {
    const associationId = String(input.AssociationId ?? "");
    const executionId = String(input.ExecutionId ?? "");
    if (executionId !== `exec-${associationId}`) return undefined;
    const filters = (input.Filters as { Key: string; Value: string }[] | undefined) ?? [];
    const wanted = filters.find((filter) => filter.Key === "ResourceId")?.Value;
    const targets = (await executionTargets(region, associationId, caller)).filter((target) => !wanted || target.instance.instanceId === wanted);
    return {
      AssociationExecutionTargets: targets.map((target) => ({
        AssociationId: associationId,
        ExecutionId: executionId,
        ResourceId: target.instance.instanceId,
        ResourceType: "ManagedInstance",
        Status: target.status,
        DetailedStatus: target.detailedStatus ?? target.status,
        LastExecutionDate: epochSeconds(target.executedAt),
        OutputSource: { OutputSourceId: commandIdOf(executionId, target.instance.instanceId), OutputSourceType: "RunCommand" },
      })),
    };
  };

  /** GetCommandInvocation for a command of an association run (others are moto's); undefined: not one of ours. */
  const associationInvocation = async (region: string, input: Record<string, unknown>, caller?: string) => {
    const instance = registry.get(region)?.get(String(input.InstanceId ?? ""));
    if (!instance || !visibleTo(caller)(instance)) return undefined;
    const associationIds = instance.association
      ? [`assoc-${instance.instanceId}`]
      : (await listStandInAssociations({ accountId: instance.accountId ?? options.accountId, region })).map(
          (association) => association.AssociationId,
        );
    for (const associationId of associationIds) {
      if (commandIdOf(`exec-${associationId}`, instance.instanceId) !== input.CommandId) continue;
      const [target] = await executionTargets(region, associationId, caller).then((all) => all.filter((t) => t.instance === instance));
      if (!target) return undefined;
      const step = STEP_OF_PLATFORM[instance.platformType];
      // A document of several steps: SSM wants the step's name, and only the one that ran has output.
      if (input.PluginName !== undefined && input.PluginName !== step) {
        return { error: { __type: "InvalidPluginName", message: `the step ${String(input.PluginName)} did not run on ${instance.instanceId}` } };
      }
      const output = target.output ?? { responseCode: target.status === "Success" ? 0 : 1, stdout: "", stderr: "" };
      return {
        CommandId: input.CommandId,
        InstanceId: instance.instanceId,
        DocumentName: instance.association?.documentName ?? "",
        PluginName: step,
        ResponseCode: output.responseCode,
        Status: target.status,
        StatusDetails: target.detailedStatus ?? target.status,
        StandardOutputContent: output.stdout.slice(-24_000),
        StandardErrorContent: output.stderr.slice(-8_000),
      };
    }
    return undefined;
  };

  /** Default Host Management and other service settings: read from the stand-in provider's regional store. */
  const serviceSetting = async (region: string, input: Record<string, unknown>) => {
    const parsed = parseSettingId(String(input.SettingId ?? ""));
    const accountId = options.accountId ?? parsed.accountId;
    const stored = accountId ? await getStandInServiceSetting({ accountId, region, settingId: parsed.settingId }) : undefined;
    return {
      ServiceSetting: stored
        ? { ...stored, LastModifiedDate: epochSeconds(new Date(stored.LastModifiedDate)) }
        : {
            SettingId: parsed.settingId,
            SettingValue: "",
            Status: "Default",
            ARN: `arn:aws:ssm:${region}:${accountId ?? ""}:servicesetting${parsed.settingId}`,
          },
    };
  };

  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    const action = String(req.headers["x-amz-target"] ?? "").replace(/^AmazonSSM\./, "");
    const credential = /Credential=([^/]+)\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ""));
    const accessKeyId = credential?.[1];
    const region = credential?.[2];
    let input: Record<string, unknown> = {};
    try {
      input = JSON.parse(body.toString("utf8") || "{}") as Record<string, unknown>;
    } catch {
      // not JSON: forwarded as is
    }
    calls.push({ action, region, accessKeyId, emulated: EMULATED.has(action), input });
    if (scpDenies.some((deny) => deny.region === region && deny.action === `ssm:${action}`)) {
      const account = options.accountOf?.(accessKeyId) ?? options.accountId ?? "123456789012";
      const name = String(input.Name ?? "*");
      const kind = action.includes("Document") ? "document" : action.includes("Parameter") ? "parameter" : "association";
      return answer(res, 400, {
        __type: "AccessDeniedException",
        message: `User: arn:aws:sts::${account}:assumed-role/caller/session is not authorized to perform: ssm:${action} on resource: arn:aws:ssm:${region}:${account}:${kind}/${name.replace(/^\//, "")} with an explicit deny in a service control policy`,
      });
    }
    try {
      if (EMULATED.has(action) && !region) {
        return answer(res, 400, { __type: "IncompleteSignatureException", message: "no SigV4 credential scope: the region is unknown" });
      }
      const caller = options.accountOf?.(accessKeyId);
      if (action === "DescribeInstanceInformation") return answer(res, 200, describeInstanceInformation(region!, input, caller));
      if (action === "DescribeInstanceAssociationsStatus") {
        const InstanceId = String(input.InstanceId);
        const infos = await describeAssociationsStatus(region!, InstanceId, caller);
        if (!infos) return answer(res, 400, { __type: "InvalidInstanceId", message: `${InstanceId} is not a managed instance in ${region}` });
        return answer(res, 200, { InstanceAssociationStatusInfos: infos });
      }
      if (action === "GetServiceSetting") return answer(res, 200, await serviceSetting(region!, input));
      if (action === "ListAssociations") {
        const associations = await listStandInAssociations({ accountId: caller ?? options.accountId, region: region! });
        const max = Math.min(Number(input.MaxResults ?? PAGE_MAX) || PAGE_MAX, PAGE_MAX);
        return answer(res, 200, {
          Associations: associations.slice(0, max).map((association) => ({
            AssociationId: association.AssociationId,
            Name: association.Name,
            AssociationVersion: association.AssociationVersion,
            Targets: association.Targets,
            ...(association.AssociationName ? { AssociationName: association.AssociationName } : {}),
          })),
        });
      }
      if (action === "DescribeAssociationExecutions") return answer(res, 200, await describeAssociationExecutions(region!, input, caller));
      if (action === "DescribeAssociationExecutionTargets") {
        const targets = await describeAssociationExecutionTargets(region!, input, caller);
        if (!targets) return answer(res, 400, { __type: "AssociationExecutionDoesNotExist", message: `no execution ${String(input.ExecutionId)}` });
        return answer(res, 200, targets);
      }
      if (action === "GetCommandInvocation" && region) {
        const invocation = await associationInvocation(region, input, caller);
        if (invocation && "error" in invocation) return answer(res, 400, invocation.error);
        if (invocation) {
          calls[calls.length - 1]!.emulated = true;
          return answer(res, 200, invocation);
        }
      }
    } catch (error) {
      return answer(res, 500, { __type: "InternalServerError", message: error instanceof Error ? error.message : String(error) });
    }
    const forwarded = request({ hostname: moto.hostname, port: moto.port, method: req.method, path: req.url, headers: req.headers }, (upstream) => {
      res.writeHead(upstream.statusCode ?? 502, upstream.headers);
      upstream.pipe(res);
    });
    forwarded.on("error", (error) => answer(res, 502, { __type: "StandInForwardError", message: error.message }));
    forwarded.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    setInstances(instances) {
      registry = new Map();
      register(instances);
    },
    addInstances: register,
    calls,
    scpDenies,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
