/**
 * Permission findings in PostgreSQL (services/core/permission-findings.ts): one row per account, region and action,
 * counted when met again, resolved when the call goes through, capped per tenant, and kept apart between tenants.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { organizations, permissionFindings } from "../../db/schema";
import { MAX_PERMISSION_FINDINGS_PER_TENANT, openPermissionFindings, recordPermissionObservation } from "../../services/core/permission-findings";
import type { DeniedCall } from "../../services/core/permission-findings-fns";
import { realPostgres } from "../harness/databases";

const ACCOUNT = "210987654321";
let database: Database;
let cleanup: () => Promise<void>;
let acme: number;
let other: number;

const denial = (region: string, action = "ec2:DescribeInstances"): DeniedCall => ({ action, resource: null, region, cause: "no_allow" });

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  const rows = await database.db
    .insert(organizations)
    .values([
      { name: "Acme", slug: "acme-findings" },
      { name: "Other", slug: "other-findings" },
    ])
    .returning({ id: organizations.id });
  [acme, other] = rows.map((row) => row.id) as [number, number];
});

afterAll(async () => cleanup?.());

describe("permission findings", () => {
  it("counts a denial met again, and resolves it when the same call goes through", async () => {
    const observe = (denied: DeniedCall[], allowedRegions: string[] = []) =>
      recordPermissionObservation(database.db, {
        organizationId: acme,
        awsAccountId: ACCOUNT,
        source: "discovery",
        denied,
        allowed: (finding) => allowedRegions.includes(finding.region),
      });
    await observe([denial("eu-west-1"), denial("us-east-1", "rds:DescribeDBInstances")]);
    await observe([denial("eu-west-1")], ["us-east-1"]);
    const open = await openPermissionFindings(database.db, acme);
    expect(open.map((finding) => [finding.region, finding.action, finding.occurrences])).toEqual([["eu-west-1", "ec2:DescribeInstances", 2]]);
    expect(await openPermissionFindings(database.db, other)).toEqual([]);
  });

  it("keeps at most the cap per tenant: resolved findings make room, then new ones are dropped", async () => {
    const many = Array.from({ length: MAX_PERMISSION_FINDINGS_PER_TENANT + 20 }, (_, i) => denial(`us-east-1`, `ssm:Action${i}`));
    await recordPermissionObservation(database.db, {
      organizationId: other,
      awsAccountId: null,
      source: "run",
      denied: many,
      allowed: () => false,
    });
    const stored = await database.db.select().from(permissionFindings);
    const ofOther = stored.filter((row) => row.organizationId === other);
    expect(ofOther).toHaveLength(MAX_PERMISSION_FINDINGS_PER_TENANT);
    expect(new Set(ofOther.map((row) => row.awsAccountId))).toEqual(new Set(["unknown"]));
    // The other tenant's findings were not touched to make room.
    expect(stored.filter((row) => row.organizationId === acme)).toHaveLength(2);

    // Half are resolved by a successful run: new denials take their place.
    await recordPermissionObservation(database.db, {
      organizationId: other,
      awsAccountId: null,
      source: "run",
      denied: [denial("ap-south-1", "ssm:PutParameter")],
      allowed: (finding) => Number(finding.action.slice("ssm:Action".length)) % 2 === 0,
    });
    const open = await openPermissionFindings(database.db, other);
    expect(open).toHaveLength(MAX_PERMISSION_FINDINGS_PER_TENANT / 2 + 1);
    expect(open[0]).toMatchObject({ region: "ap-south-1", action: "ssm:PutParameter" });
  });
});
