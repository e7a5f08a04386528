/**
 * Customer-like estates, unlike the Mini Corp fixture (one region, every instance tagged): several regions, mostly
 * untagged instances, Linux and Windows, stopped and terminated ones, instances SSM does not manage (no instance
 * profile, or no SSM agent), missing Name tags, unicode tag values, one instance with 50 tags (EC2's limit), and
 * any size (thousands).
 *
 * `planEstate` is pure and deterministic (a seeded generator); `seedEstate` launches the plan in the moto server
 * through the standard EC2 endpoint (AWS_ENDPOINT_URL) with the credentials given (the customer account's, e.g. an
 * assumed bootstrap or access role), stops and terminates what the plan says, and registers the managed instances
 * with the SSM stand-in (test/harness/ssm-standin.ts), the managed-instance registry SSM keeps per region.
 */
import {
  DescribeImagesCommand,
  EC2Client,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type _InstanceType,
} from "@aws-sdk/client-ec2";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@aws-sdk/types";
import type { EstateInstance } from "../../programs/tenant/targeting-fns";
import type { ManagedInstance, SsmStandIn } from "./ssm-standin";

export type Platform = "linux" | "windows";

/** Why SSM does not manage an instance; Default Host Management fixes the first, not the second. */
export type UnmanagedReason = "no_instance_profile" | "no_ssm_agent";

export interface PlannedInstance {
  /** Stable name of the instance in the plan (not a tag): `<region>/<n>` or a feature name. */
  key: string;
  region: string;
  platform: Platform;
  instanceType: string;
  state: "running" | "stopped" | "terminated";
  tags: Record<string, string>;
  /** Instance metadata tags on (the install document's exclusion check can read them). */
  metadataTags: boolean;
  unmanaged?: UnmanagedReason;
}

export interface EstatePlan {
  regions: string[];
  instances: PlannedInstance[];
}

export interface EstateOptions {
  /** Default: us-east-1, eu-west-1, ap-southeast-2. The first is the home region. */
  regions?: string[];
  /** Number of instances (at least the special ones, 14). Default 30. */
  size?: number;
  seed?: number;
}

export const DEFAULT_ESTATE_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/** The 50 tags of the tag-heavy instance (EC2 allows 50 user tags per resource). */
function fiftyTags(): Record<string, string> {
  const tags: Record<string, string> = { Name: "tag-heavy-analytics" };
  for (let i = 1; Object.keys(tags).length < 50; i++) tags[`cost:dimension-${String(i).padStart(2, "0")}`] = `value-${i}`;
  return tags;
}

/** Mulberry32: a small deterministic generator, so a plan is the same for the same seed. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function planEstate(options: EstateOptions = {}): EstatePlan {
  const regions = options.regions ?? DEFAULT_ESTATE_REGIONS;
  const [home, second = home, third = second] = regions as [string, ...string[]];
  const base = (key: string, region: string, fields: Partial<PlannedInstance> = {}): PlannedInstance => ({
    key,
    region,
    platform: "linux",
    instanceType: "t3.micro",
    state: "running",
    tags: {},
    metadataTags: false,
    ...fields,
  });
  // Every feature of a customer estate, whatever the size.
  const special: PlannedInstance[] = [
    base("untagged-linux", home),
    base("windows-unicode-name", home, {
      platform: "windows",
      instanceType: "m5.large",
      tags: { Name: "Serveur de fichiers — Zürich 東京", Abteilung: "Finanzen/Überweisungen" },
    }),
    base("stopped-linux", home, { state: "stopped", tags: { Name: "batch-runner" } }),
    base("terminated-linux", home, { state: "terminated", tags: { Name: "old-build-agent" } }),
    base("unmanaged-no-profile", home, { tags: { Name: "legacy-app" }, unmanaged: "no_instance_profile" }),
    base("tag-heavy", home, { tags: fiftyTags(), metadataTags: true }),
    base("excluded", home, { tags: { Name: "pci-vault", "xdr:monitor": "false" }, metadataTags: true }),
    base("excluded-tags-not-in-metadata", second, { tags: { "xdr:monitor": "false" }, metadataTags: false }),
    base("opted-in", second, { tags: { Name: "web-1", "xdr:monitor": "true" } }),
    base("untagged-windows", second, { platform: "windows", instanceType: "m5.large" }),
    base("stopped-windows", second, { platform: "windows", instanceType: "m5.large", state: "stopped" }),
    base("untagged-linux-third", third),
    base("unmanaged-no-agent-windows", third, { platform: "windows", instanceType: "m5.large", unmanaged: "no_ssm_agent" }),
    base("terminated-windows", third, { platform: "windows", instanceType: "m5.large", state: "terminated" }),
  ];
  const size = Math.max(options.size ?? 30, special.length);
  const random = generator(options.seed ?? 20260429);
  const pick = <T>(choices: readonly T[]) => choices[Math.floor(random() * choices.length)]!;
  const teams = ["payments", "data", "platform", "ventes", "データ基盤"];
  const filler: PlannedInstance[] = [];
  for (let n = 0; special.length + filler.length < size; n++) {
    const region = regions[n % regions.length]!;
    const roll = random();
    const platform: Platform = random() < 0.7 ? "linux" : "windows";
    const tags: Record<string, string> = {};
    if (random() < 0.6) tags.Name = `${platform === "linux" ? "srv" : "WIN"}-${region}-${n}`;
    if (random() < 0.3) tags.team = pick(teams);
    filler.push(
      base(`${region}/${n}`, region, {
        platform,
        instanceType: platform === "linux" ? pick(["t3.micro", "t3.small", "m5.large"]) : "m5.large",
        state: roll < 0.03 ? "terminated" : roll < 0.13 ? "stopped" : "running",
        tags,
        metadataTags: random() < 0.5,
        unmanaged: random() < 0.15 ? pick(["no_instance_profile", "no_ssm_agent"] as const) : undefined,
      }),
    );
  }
  return { regions, instances: [...special, ...filler] };
}

export interface SeededInstance extends PlannedInstance {
  instanceId: string;
}

export interface SeededEstate {
  regions: string[];
  instances: SeededInstance[];
  /** By plan key. */
  byKey(key: string): SeededInstance;
  /**
   * The SSM managed instances (what DescribeInstanceInformation lists per region): not terminated, not unmanaged.
   * With Default Host Management on, instances that only lacked an instance profile are managed too.
   */
  managedInstances(options?: { defaultHostManagement?: boolean }): ManagedInstance[];
  /** The estate as the targeting evaluator (programs/tenant/targeting-fns.ts) sees it. */
  asTargetingInstances(options?: { defaultHostManagement?: boolean }): EstateInstance[];
}

type Credentials = AwsCredentialIdentity | AwsCredentialIdentityProvider;

const isManaged = (instance: PlannedInstance, defaultHostManagement: boolean) =>
  instance.state !== "terminated" && (!instance.unmanaged || (defaultHostManagement && instance.unmanaged === "no_instance_profile"));

async function defaultAmis(ec2: EC2Client): Promise<Record<Platform, string>> {
  const windows = await ec2.send(new DescribeImagesCommand({ Filters: [{ Name: "platform", Values: ["windows"] }] }));
  const all = await ec2.send(new DescribeImagesCommand({ Owners: ["amazon"] }));
  const win = windows.Images?.[0]?.ImageId;
  const linux = all.Images?.find((image) => !image.Platform && image.ImageId)?.ImageId;
  if (!win || !linux) throw new Error("moto has no default Windows/Linux AMIs in this region (MOTO_EC2_LOAD_DEFAULT_AMIS off?)");
  return { windows: win, linux };
}

const chunks = <T>(items: T[], size: number) =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, i * size + size));

/**
 * Launches the plan in moto (one RunInstances per group of identical instances, so thousands stay quick), then stops
 * and terminates, and registers the managed instances with the SSM stand-in when one is given.
 */
export async function seedEstate(
  plan: EstatePlan,
  { credentials, ssmStandIn, defaultHostManagement = false }: { credentials?: Credentials; ssmStandIn?: SsmStandIn; defaultHostManagement?: boolean },
): Promise<SeededEstate> {
  const seeded: SeededInstance[] = [];
  for (const region of plan.regions) {
    const ec2 = new EC2Client({ region, credentials });
    try {
      const amis = await defaultAmis(ec2);
      const groups = new Map<string, PlannedInstance[]>();
      for (const instance of plan.instances.filter((i) => i.region === region)) {
        const key = JSON.stringify([instance.platform, instance.instanceType, instance.tags, instance.metadataTags]);
        groups.set(key, [...(groups.get(key) ?? []), instance]);
      }
      for (const group of groups.values()) {
        const [first] = group as [PlannedInstance];
        const tags = Object.entries(first.tags).map(([Key, Value]) => ({ Key, Value }));
        const launched = await ec2.send(
          new RunInstancesCommand({
            ImageId: amis[first.platform],
            InstanceType: first.instanceType as _InstanceType,
            MinCount: group.length,
            MaxCount: group.length,
            MetadataOptions: { HttpTokens: "required", InstanceMetadataTags: first.metadataTags ? "enabled" : "disabled" },
            ...(tags.length ? { TagSpecifications: [{ ResourceType: "instance", Tags: tags }] } : {}),
          }),
        );
        const ids = (launched.Instances ?? []).map((instance) => instance.InstanceId!);
        if (ids.length !== group.length) throw new Error(`moto launched ${ids.length} of ${group.length} instances in ${region}`);
        for (const [i, instance] of group.entries()) seeded.push({ ...instance, instanceId: ids[i]! });
      }
      const inRegion = seeded.filter((instance) => instance.region === region);
      for (const batch of chunks(
        inRegion.filter((i) => i.state === "stopped").map((i) => i.instanceId),
        500,
      )) {
        await ec2.send(new StopInstancesCommand({ InstanceIds: batch }));
      }
      for (const batch of chunks(
        inRegion.filter((i) => i.state === "terminated").map((i) => i.instanceId),
        500,
      )) {
        await ec2.send(new TerminateInstancesCommand({ InstanceIds: batch }));
      }
    } finally {
      ec2.destroy();
    }
  }
  const order = new Map(plan.instances.map((instance, index) => [instance.key, index]));
  seeded.sort((a, b) => order.get(a.key)! - order.get(b.key)!);
  const estate: SeededEstate = {
    regions: plan.regions,
    instances: seeded,
    byKey(key) {
      const found = seeded.find((instance) => instance.key === key);
      if (!found) throw new Error(`no instance ${key} in the estate`);
      return found;
    },
    managedInstances({ defaultHostManagement: dhmc = false } = {}) {
      return seeded
        .filter((instance) => isManaged(instance, dhmc))
        .map((instance) => ({
          instanceId: instance.instanceId,
          region: instance.region,
          platformType: instance.platform === "windows" ? "Windows" : "Linux",
          pingStatus: instance.state === "stopped" ? "ConnectionLost" : "Online",
          tags: instance.tags,
          metadataTags: instance.metadataTags,
        }));
    },
    asTargetingInstances({ defaultHostManagement: dhmc = false } = {}) {
      return seeded.map((instance) => ({
        instanceId: instance.instanceId,
        region: instance.region,
        tags: instance.tags,
        managed: isManaged(instance, dhmc),
        state: instance.state,
        metadataTags: instance.metadataTags,
      }));
    },
  };
  ssmStandIn?.addInstances(estate.managedInstances({ defaultHostManagement }));
  return estate;
}
