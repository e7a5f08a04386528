/**
 * A customer-like estate (test/harness/estates.ts) in moto, and the regional SSM stand-in over it.
 *
 * moto has no DescribeInstanceInformation and no DescribeInstanceAssociationsStatus: test/harness/ssm-standin.ts
 * answers exactly those, per region (the region of the request's SigV4 scope), from its managed-instance registry
 * and the stand-in provider's association store; here the associations are put in that store directly, as the stack
 * would create them (the tenant stack tests create them through the real engine). The stand-in's answer is checked
 * against the pure targeting evaluator (programs/tenant/targeting-fns.ts): the two model the same AWS behaviour
 * independently, so they must agree instance by instance.
 */
import { randomUUID } from "node:crypto";
import { EC2Client, paginateDescribeInstances, type Instance } from "@aws-sdk/client-ec2";
import { DescribeInstanceAssociationsStatusCommand, paginateDescribeInstanceInformation, SSMClient } from "@aws-sdk/client-ssm";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tenantConfigSchema } from "../../programs/tenant/config";
import { buildAccessPolicy } from "../../programs/tenant/policies";
import { associationModels } from "../../programs/tenant/targeting-fns";
import { compareTargeting } from "../harness/targeting-check";
import { deleteAssociation, putAssociation, standInStateDir } from "../harness/aws-provider/association-store";
import { planEstate, seedEstate, type SeededEstate } from "../harness/estates";
import { startSsmStandIn, type SsmStandIn } from "../harness/ssm-standin";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";

// An account of its own, so nothing else in moto or the association store mixes in.
const ACCOUNT = "356789012345";
const REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"];
/** The tenant runs in the first two; the third is outside its regions. */
const TENANT_REGIONS = REGIONS.slice(0, 2);
const DOCUMENT = "MiniXdr-InstallAgent-estate-it";

let credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
let standIn: SsmStandIn;
let estate: SeededEstate;
const createdAssociations: { region: string; id: string }[] = [];

const ssmIn = (region: string) => new SSMClient({ region, endpoint: standIn.endpoint, credentials });

beforeAll(async () => {
  const sts = new STSClient({ region: "us-east-1" });
  const assumed = await sts.send(
    new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${ACCOUNT}:role/MiniXdrBootstrap`, RoleSessionName: "estate-test", ExternalId: "estate-test" }),
  );
  sts.destroy();
  credentials = {
    accessKeyId: assumed.Credentials!.AccessKeyId!,
    secretAccessKey: assumed.Credentials!.SecretAccessKey!,
    sessionToken: assumed.Credentials!.SessionToken!,
  };
  standIn = await startSsmStandIn(process.env.AWS_ENDPOINT_URL!, { accountId: ACCOUNT });
  estate = await seedEstate(planEstate({ regions: REGIONS, size: 40 }), { credentials, ssmStandIn: standIn });
});

afterAll(async () => {
  for (const { region, id } of createdAssociations) await deleteAssociation(standInStateDir(), ACCOUNT, region, id);
  await standIn?.stop();
});

describe("a customer-like estate", () => {
  it("plans every feature at any size, the same for the same seed", () => {
    const plan = planEstate({ size: 3000 });
    expect(plan.instances).toHaveLength(3000);
    expect(planEstate({ size: 3000 })).toEqual(plan);
    const count = (predicate: (i: (typeof plan.instances)[number]) => boolean) => plan.instances.filter(predicate).length;
    expect(new Set(plan.instances.map((i) => i.region))).toEqual(new Set(REGIONS));
    expect(count((i) => i.platform === "windows")).toBeGreaterThan(300);
    expect(count((i) => i.state === "stopped")).toBeGreaterThan(100);
    expect(count((i) => i.state === "terminated")).toBeGreaterThan(10);
    expect(count((i) => i.unmanaged !== undefined)).toBeGreaterThan(100);
    expect(count((i) => Object.keys(i.tags).length === 0)).toBeGreaterThan(300);
    expect(count((i) => !("Name" in i.tags))).toBeGreaterThan(600);
    expect(count((i) => Object.keys(i.tags).length === 50)).toBe(1);
  });

  it("is in moto's EC2, region by region, with its states, unicode tags and the 50-tag instance", async () => {
    for (const region of REGIONS) {
      const ec2 = new EC2Client({ region, credentials });
      const live: Instance[] = [];
      for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 10 }, {})) {
        for (const reservation of page.Reservations ?? []) live.push(...(reservation.Instances ?? []));
      }
      ec2.destroy();
      const planned = estate.instances.filter((instance) => instance.region === region);
      expect(live.map((instance) => instance.InstanceId).sort(), region).toEqual(planned.map((i) => i.instanceId).sort());
      for (const instance of planned) {
        const found = live.find((l) => l.InstanceId === instance.instanceId)!;
        expect(found.State?.Name, instance.key).toBe(instance.state);
        expect(Object.fromEntries((found.Tags ?? []).map((t) => [t.Key, t.Value])), instance.key).toEqual(instance.tags);
        expect(String(found.Platform ?? "linux").toLowerCase(), instance.key).toBe(instance.platform);
        expect(found.MetadataOptions?.InstanceMetadataTags, instance.key).toBe(instance.metadataTags ? "enabled" : "disabled");
      }
    }
    expect(Object.keys(estate.byKey("tag-heavy").tags)).toHaveLength(50);
    expect(estate.byKey("windows-unicode-name").tags.Name).toBe("Serveur de fichiers — Zürich 東京");
  });

  it("lists each region's managed instances only in that region, paginated as SSM does", async () => {
    for (const region of REGIONS) {
      const client = ssmIn(region);
      const listed: string[] = [];
      let pages = 0;
      for await (const page of paginateDescribeInstanceInformation({ client, pageSize: 5 }, {})) {
        pages++;
        listed.push(...(page.InstanceInformationList ?? []).map((info) => info.InstanceId!));
      }
      client.destroy();
      const expected = estate
        .managedInstances()
        .filter((m) => m.region === region)
        .map((m) => m.instanceId);
      expect(listed.sort(), region).toEqual(expected.sort());
      expect(pages).toBe(Math.max(1, Math.ceil(expected.length / 5)));
    }
    // Neither unmanaged nor terminated instances are managed instances.
    const managed = new Set(estate.managedInstances().map((m) => m.instanceId));
    for (const key of ["unmanaged-no-profile", "unmanaged-no-agent-windows", "terminated-linux"]) {
      expect(managed.has(estate.byKey(key).instanceId), key).toBe(false);
    }
    // Default Host Management makes the instance without a profile managed, not the one without an SSM agent.
    const withDhmc = new Set(estate.managedInstances({ defaultHostManagement: true }).map((m) => m.instanceId));
    expect(withDhmc.has(estate.byKey("unmanaged-no-profile").instanceId)).toBe(true);
    expect(withDhmc.has(estate.byKey("unmanaged-no-agent-windows").instanceId)).toBe(false);
  });

  it("applies each region's association only to that region's managed instances it targets, as the evaluator predicts", async () => {
    const config = tenantConfigSchema.parse(
      miniCorpTenantConfig({
        customerAccountId: ACCOUNT,
        bootstrapRoleArn: `arn:aws:iam::${ACCOUNT}:role/MiniXdrBootstrap`,
        regions: TENANT_REGIONS,
      }),
    );
    const models = associationModels(config.targeting, config.regions);
    for (const model of models) {
      const id = `assoc-${randomUUID()}`;
      const now = new Date().toISOString();
      await putAssociation(standInStateDir(), {
        AssociationId: id,
        AssociationVersion: "1",
        Name: DOCUMENT,
        Targets: model.targets.map((t) => ({ Key: t.key, Values: t.values })),
        Parameters: {
          ConfigParameterName: ["/mini-xdr/estate-it/agent-config"],
          ...(model.exclusionTag ? { ExcludeTagKey: [model.exclusionTag.key], ExcludeTagValue: [model.exclusionTag.value] } : {}),
        },
        AccountId: ACCOUNT,
        Region: model.region,
        Date: now,
        LastUpdateAssociationDate: now,
        Overview: { Status: "Success" },
      });
      createdAssociations.push({ region: model.region, id });
    }
    const policy = buildAccessPolicy({ customerAccountId: ACCOUNT, documentName: DOCUMENT, regions: config.regions, targeting: config.targeting });
    const predicted = await compareTargeting(estate.asTargetingInstances(), {
      associations: models,
      policy,
      accountId: ACCOUNT,
      documentName: DOCUMENT,
    });

    const applied: string[] = [];
    for (const managed of estate.managedInstances()) {
      const client = ssmIn(managed.region!);
      const status = await client.send(new DescribeInstanceAssociationsStatusCommand({ InstanceId: managed.instanceId }));
      client.destroy();
      const infos = status.InstanceAssociationStatusInfos ?? [];
      expect(infos.length, managed.instanceId).toBeLessThanOrEqual(1);
      if (infos.length === 1) {
        expect(infos[0]).toMatchObject({ Name: DOCUMENT, Status: "Success" });
        applied.push(managed.instanceId);
      }
    }
    expect(applied.sort()).toEqual([...predicted.installed].sort());
    // What that means on this estate: nothing outside the tenant's regions, no excluded instance that can show its tag.
    const region3 = new Set(estate.instances.filter((i) => i.region === REGIONS[2]).map((i) => i.instanceId));
    expect(applied.some((id) => region3.has(id))).toBe(false);
    expect(applied).not.toContain(estate.byKey("excluded").instanceId);
    expect(applied).toContain(estate.byKey("excluded-tags-not-in-metadata").instanceId);
    expect(applied).toContain(estate.byKey("stopped-windows").instanceId);
    // The documented limitation is the only disagreement between the association and the policy.
    expect(predicted.installedButNotRetryable).toEqual([estate.byKey("excluded-tags-not-in-metadata").instanceId]);
    expect(predicted.retryableButNotInstalled).toEqual([]);
  });

  it("knows an instance only in its own region", async () => {
    const instance = estate.byKey("untagged-linux");
    const elsewhere = ssmIn("eu-west-1");
    await expect(elsewhere.send(new DescribeInstanceAssociationsStatusCommand({ InstanceId: instance.instanceId }))).rejects.toMatchObject({
      name: "InvalidInstanceId",
    });
    elsewhere.destroy();
  });
});
