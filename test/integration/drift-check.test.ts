/**
 * Drift through the Automation API with the real Pulumi CLI against moto behind the stand-in pulumi-resource-aws
 * (whose `read` reads each resource back from moto): out-of-band changes in the customer's account (the XDR role's
 * trust policy edited with IAM UpdateAssumeRolePolicy, one region's agent parameter deleted) are found by
 * `pulumi refresh --preview-only` naming the resource and the property, without changing the state; an `up` with
 * refresh brings the account back, and the next check finds nothing.
 */
import { GetRoleCommand, UpdateAssumeRolePolicyCommand } from "@aws-sdk/client-iam";
import { DeleteParameterCommand, GetParameterCommand, type SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configureTenantStack,
  destroyTenantStack,
  driftCheckTenantStack,
  openTenantStack,
  stackNameFor,
  removeTenantStack,
  upTenantStack,
  type AutomationSettings,
} from "../../automation";
import { customerAccountClients } from "../harness/customer-account";
import { temporaryAutomationSettings } from "../harness/pulumi-project";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";

const SLUG = "drift-it";
const REGIONS = ["us-east-1", "eu-west-1"];
const ROLE = `MiniXdrAccess-${SLUG}`;
const PARAMETER = `/mini-xdr/${SLUG}/agent-config`;
const config = { ...miniCorpTenantConfig({ tenantSlug: SLUG }), regions: REGIONS };

let settings: AutomationSettings;
let clients: Awaited<ReturnType<typeof customerAccountClients>>;
let euSsm: SSMClient;

async function stack() {
  const opened = await openTenantStack(settings, stackNameFor(SLUG), { create: true });
  await configureTenantStack(opened, config);
  return opened;
}

async function trustPolicy(): Promise<string> {
  const { Role } = await clients.iam.send(new GetRoleCommand({ RoleName: ROLE }));
  return decodeURIComponent(Role!.AssumeRolePolicyDocument!);
}

beforeAll(async () => {
  settings = await temporaryAutomationSettings();
  clients = await customerAccountClients(config.bootstrapRoleArn);
  const eu = await customerAccountClients(config.bootstrapRoleArn, "eu-west-1");
  euSsm = eu.ssm;
  const up = await upTenantStack(await stack());
  expect(up.changeSummary.create).toBeGreaterThan(0);
});

afterAll(async () => {
  const opened = await openTenantStack(settings, stackNameFor(SLUG), { create: false }).catch(() => undefined);
  if (opened) {
    await destroyTenantStack(opened);
    await removeTenantStack(opened);
  }
});

describe("drift check (refresh --preview-only)", () => {
  it("finds nothing on a stack that matches the account", async () => {
    const check = await driftCheckTenantStack(await stack());
    expect(check.drifted).toEqual([]);
  });

  it("names the edited trust policy and the deleted parameter, changes nothing; up with refresh restores both", async () => {
    const original = await trustPolicy();
    const edited = JSON.parse(original);
    edited.Statement[0].Condition = { StringEquals: { "sts:ExternalId": "someone-else" } };
    await clients.iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: ROLE, PolicyDocument: JSON.stringify(edited) }));
    await euSsm.send(new DeleteParameterCommand({ Name: PARAMETER }));

    const events: unknown[] = [];
    const check = await driftCheckTenantStack(await stack(), { onEvent: (event) => events.push(event) });
    if (process.env.DRIFT_DEBUG) console.log(JSON.stringify(events, null, 1));
    expect(check.drifted).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "aws:iam/role:Role", op: "update", properties: expect.arrayContaining(["assumeRolePolicy"]) }),
        expect.objectContaining({ type: "aws:ssm/parameter:Parameter", op: "delete", urn: expect.stringContaining("eu-west-1") }),
      ]),
    );
    expect(check.drifted).toHaveLength(2);
    // Preview only: the state still holds the parameter, so a second check finds the same drift.
    expect((await driftCheckTenantStack(await stack())).drifted).toHaveLength(2);
    await expect(euSsm.send(new GetParameterCommand({ Name: PARAMETER }))).rejects.toThrow();

    const fixed = await upTenantStack(await stack(), { refresh: true });
    expect(fixed.changeSummary).toMatchObject({ create: 1, update: 1 });
    expect(JSON.parse(await trustPolicy())).toEqual(JSON.parse(original));
    expect((await euSsm.send(new GetParameterCommand({ Name: PARAMETER }))).Parameter?.Name).toBe(PARAMETER);
    expect((await driftCheckTenantStack(await stack())).drifted).toEqual([]);
  });
});
