/**
 * Bootstrap upgrades the platform drives (issue 22, part 3), through the service as a process, moto's S3, IAM and
 * CloudFormation, and the real AWS CLI as the customer.
 *
 * The platform's previous release published bootstrap version 1 (the test publishes it as that release did: the
 * current template less `iam:ListInstanceProfilesForRole`, content-addressed in the template bucket); the customer
 * created their stack from it. The service runs version 2 (one more action), which the tenant stack needs:
 * 1. the quick-start's first up is held, with the reason, instead of failing on the missing action;
 * 2. the tenant sees the update: version 1 running, version 2 current, the added action, the update command;
 * 3. the customer applies it in moto's CloudFormation with that command (through test/harness/cloudformation-standin.ts:
 *    moto's update leaves a role's tags as they were, AWS updates them; the stand-in does what AWS does);
 * 4. the next read shows version 2, the held up proceeds and succeeds;
 * 5. operators see how many tenants run each version.
 * Then a permission AWS refuses a run: an organization's SCP denies ssm:CreateDocument in a region the tenant adds
 * (the SSM stand-in answers as AWS does; moto evaluates no policy); the up fails, and the tenant's progress lists the
 * missing permission with AWS's cause and its fix until an up goes through.
 */
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { buildBootstrapTemplate, versionedTemplate } from "../../services/integration/bootstrap-template-fns";
import { startCloudFormationStandIn } from "../harness/cloudformation-standin";
import { asInvitedAdmin, screenChecks } from "../harness/console-browser";
import { awsAsCustomer, createStackFromQuickCreateLink, customerAccount } from "../harness/customer-cloudformation";
import { serviceUnderTest } from "../harness/service-under-test";
import { newTenantRecord, PLATFORM_PRINCIPAL_ARN } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const REGION = "us-east-1";
const BUCKET = "mini-xdr-upgrade-templates";
const NEW_ACTION = "iam:ListInstanceProfilesForRole";
const WAIT = { timeoutMs: 240_000, retryErrors: true };
const waitFor = waitForWith(WAIT);

const tenant = newTenantRecord(`upgrade-${Date.now().toString(36)}`);
const service = serviceUnderTest({ name: "bootstrap-upgrade", ssmStandIn: true, env: { BOOTSTRAP_TEMPLATE_BUCKET: BUCKET }, wait: WAIT });
const { call } = service;
const { screenshots, checkScreen } = screenChecks();
afterAll(() => {
  if (screenshots.length) console.log(`bootstrap upgrade screenshots:\n${screenshots.map((file) => `  ${file}`).join("\n")}`);
});

/** The tenant's admin, signed in through an invitation link, sees the update on the Settings page. */
async function updateOnTheSettingsPage(addedAction: string, heldRunReason: string): Promise<void> {
  await asInvitedAdmin(call, tenant.slug, async (page) => {
    await page.getByRole("button", { name: "Settings" }).click();
    const update = page.locator("#bootstrap-version");
    await update.getByRole("heading", { name: "Bootstrap update available" }).waitFor();
    const text = await update.innerText();
    expect(text).toContain(`+ ${addedAction}`);
    expect(text).toContain(heldRunReason);
    expect(await update.getByRole("link", { name: "Update the bootstrap stack" }).getAttribute("href")).toMatch(
      /#\/stacks\/update\/template\?stackId=/,
    );
    await checkScreen(page, "30-bootstrap-update-available");
  });
}

/** Version 1, as the previous release rendered and published it: today's template without NEW_ACTION. */
async function publishVersionOne(): Promise<{ version: string; url: string }> {
  const template = buildBootstrapTemplate({ platformPrincipalArn: PLATFORM_PRINCIPAL_ARN }) as {
    Resources: { BootstrapPolicy: { Properties: { PolicyDocument: { Statement: { Action: string | string[] }[] } } } };
  };
  for (const statement of template.Resources.BootstrapPolicy.Properties.PolicyDocument.Statement) {
    if (Array.isArray(statement.Action)) statement.Action = statement.Action.filter((action) => action !== NEW_ACTION);
  }
  const { body, version } = versionedTemplate(template as unknown as Record<string, unknown>);
  const s3 = new S3Client({ region: REGION });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET })).catch(() => undefined);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `bootstrap/${version}.json`, Body: body, ContentType: "application/json" }));
  s3.destroy();
  return { version, url: `https://${BUCKET}.s3.${REGION}.amazonaws.com/bootstrap/${version}.json` };
}

describe("bootstrap upgrades (service process, moto S3, IAM and CloudFormation, the AWS CLI)", () => {
  it("holds the up that needs the newer version, shows the update, and proceeds once the customer applied it", async () => {
    const one = await publishVersionOne();
    await service.createTenant(tenant, { name: "Upgrade Corp", regions: [REGION] });
    const link = await call("GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap`);
    expect(link.status, link.text).toBe(200);
    const two = link.body.template_version as string;
    expect(two).not.toBe(one.version);

    // The customer created their stack from version 1 (the link of the previous release).
    const customer = await customerAccount(tenant.account, REGION);
    const oldLink = link.body.quick_create_url.replace(encodeURIComponent(link.body.template_url), encodeURIComponent(one.url));
    expect(oldLink).not.toBe(link.body.quick_create_url);
    expect((await createStackFromQuickCreateLink(customer, oldLink)).status).toBe("CREATE_COMPLETE");
    const outputs = JSON.parse(
      await awsAsCustomer(customer, ["cloudformation", "describe-stacks", "--region", REGION, "--stack-name", link.body.stack_name]),
    ).Stacks[0].Outputs as { OutputKey: string; OutputValue: string }[];
    expect(outputs).toContainEqual(expect.objectContaining({ OutputKey: "BootstrapVersion", OutputValue: one.version }));

    // The service connects; the quick start's first up waits for the update instead of failing on the missing action.
    expect((await call("POST", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap/wait`)).status).toBe(202);
    const held = await waitFor("the first up, held", async () => {
      const [run] = (await call("GET", `/v1/tenants/${tenant.slug}/runs?kind=up`)).body.runs ?? [];
      return run?.held_for ? run : undefined;
    });
    expect(held).toMatchObject({ status: "queued", held_for: { actions: [NEW_ACTION], version: two } });
    expect(held.held_for.reason).toBe(
      `waits for the bootstrap stack update to version ${two}: the stack needs ${NEW_ACTION}, which version ${one.version} does not grant`,
    );

    // The tenant sees the update, action by action, and how to apply it.
    const before = await call("GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap/version`);
    expect(before.status, before.text).toBe(200);
    expect(before.body).toMatchObject({ current_version: two, running_version: one.version, update_available: true });
    expect(before.body.changes.added).toEqual([
      expect.objectContaining({ policy: "role", effect: "Allow", action: NEW_ACTION, statement: "ReadOurRoles" }),
    ]);
    expect(before.body.changes.removed).toEqual([]);
    expect(before.body.held_runs).toEqual([expect.objectContaining({ run_id: held.id, actions: [NEW_ACTION] })]);
    expect(before.body.update.console_url).toContain(`#/stacks/update/template?stackId=${link.body.stack_name}`);
    console.log(`bootstrap update offered to the tenant:\n${JSON.stringify(before.body, null, 2)}`);
    await updateOnTheSettingsPage(NEW_ACTION, held.held_for.reason);

    // The customer applies it with the command they were given.
    const [, ...args] = (before.body.update.cli_command as string).split(" ");
    const cloudFormation = await startCloudFormationStandIn(process.env.AWS_ENDPOINT_URL!);
    try {
      const throughStandIn = { ...customer, env: { ...customer.env, AWS_ENDPOINT_URL_CLOUDFORMATION: cloudFormation.url } };
      await awsAsCustomer(throughStandIn, args);
      await awsAsCustomer(throughStandIn, [
        "cloudformation",
        "wait",
        "stack-update-complete",
        "--region",
        REGION,
        "--stack-name",
        link.body.stack_name,
      ]);
      expect(cloudFormation.retagged).toEqual([`${link.body.stack_name}/MiniXdrBootstrap-${tenant.slug}`]);
    } finally {
      await cloudFormation.stop();
    }

    // The next read shows version 2; the held up goes and succeeds.
    const after = await call("GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap/version`);
    expect(after.body).toMatchObject({
      current_version: two,
      running_version: two,
      update_available: false,
      changes: null,
      update: null,
      held_runs: [],
    });
    const settled = await service.settledRun(tenant.slug, held.id);
    expect(settled).toMatchObject({ status: "succeeded", held_for: null });

    const counts = await call("GET", "/v1/bootstrap/versions");
    expect(counts.status, counts.text).toBe(200);
    expect(counts.body.current_version).toBe(two);
    expect(counts.body.versions).toContainEqual({ version: two, tenants: 1 });
    // A tenant token may not read the fleet's versions.
    const token = await service.issueToken(tenant.slug, "upgrade");
    expect((await call("GET", "/v1/bootstrap/versions", { token })).status).toBe(403);
  });

  it("keeps what AWS refused a run as a missing permission with its fix, until an up goes through", async () => {
    const patched = await call("PATCH", `/v1/tenants/${tenant.slug}`, { body: { integration_settings: { regions: [REGION, "eu-west-1"] } } });
    expect(patched.status, patched.text).toBe(200);
    service.ssm.scpDenies.push({ region: "eu-west-1", action: "ssm:CreateDocument" });
    try {
      const up = await call("POST", `/v1/tenants/${tenant.slug}/runs`, { body: { kind: "up" } });
      expect(up.status, up.text).toBe(202);
      expect(await service.settledRun(tenant.slug, up.body.run_id)).toMatchObject({ status: "failed" });
      const { body: progress } = await call("GET", `/v1/tenants/${tenant.slug}/progress`);
      expect(progress.missing_permissions).toContainEqual(
        expect.objectContaining({
          aws_account_id: tenant.account,
          region: "eu-west-1",
          action: "ssm:CreateDocument",
          resource: expect.stringMatching(/^arn:aws:ssm:eu-west-1:\d{12}:document\//),
          cause: "service_control_policy",
          source: "run",
          fix: "ask your AWS administrator to allow ssm:CreateDocument in eu-west-1 for the Mini-XDR roles (the organization's policy denies it)",
        }),
      );
      console.log(`missing permission a run met:\n${JSON.stringify(progress.missing_permissions, null, 2)}`);
    } finally {
      service.ssm.scpDenies.length = 0;
    }
    const again = await call("POST", `/v1/tenants/${tenant.slug}/runs`, { body: { kind: "up" } });
    expect(await service.settledRun(tenant.slug, again.body.run_id)).toMatchObject({ status: "succeeded" });
    const { body: after } = await call("GET", `/v1/tenants/${tenant.slug}/progress`);
    expect(after.missing_permissions.filter((entry: { source: string }) => entry.source === "run")).toEqual([]);
  });
});
