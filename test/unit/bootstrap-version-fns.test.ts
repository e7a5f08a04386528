/** Bootstrap versions, pure: the policy difference action by action, when an up waits, and the update's instructions. */
import { describe, expect, it } from "vitest";
import { buildBootstrapTemplate, renderBootstrapTemplate, versionedTemplate } from "../../services/integration/bootstrap-template-fns";
import { grantedActions, holdFor, policyActionsOf, policyChanges, updateInstructions } from "../../services/integration/bootstrap-version-fns";

const PRINCIPAL = "arn:aws:iam::999999999999:role/MiniXdrPlatform";

/** The current template with one action taken out of the bootstrap role's policy (an older version). */
function withoutAction(action: string): string {
  const template = buildBootstrapTemplate({ platformPrincipalArn: PRINCIPAL }) as {
    Resources: { BootstrapPolicy: { Properties: { PolicyDocument: { Statement: { Action: string | string[] }[] } } } };
  };
  for (const statement of template.Resources.BootstrapPolicy.Properties.PolicyDocument.Statement) {
    if (Array.isArray(statement.Action)) statement.Action = statement.Action.filter((a) => a !== action);
  }
  return versionedTemplate(template as unknown as Record<string, unknown>).body;
}

describe("bootstrap versions", () => {
  const current = renderBootstrapTemplate({ platformPrincipalArn: PRINCIPAL }).body;

  it("reads every action of the role's policy and of the boundary, with its statement", () => {
    const actions = policyActionsOf(current);
    expect(actions).toContainEqual({ policy: "role", effect: "Allow", action: "iam:ListRoleTags", statement: "ReadOwnVersionTag" });
    expect(actions.some((entry) => entry.policy === "boundary")).toBe(true);
    expect(policyChanges(actions, actions)).toEqual({ added: [], removed: [] });
  });

  it("lists what an update adds and removes, and which actions the role gains", () => {
    const older = policyActionsOf(withoutAction("ssm:CreateDocument"));
    const changes = policyChanges(older, policyActionsOf(current));
    expect(changes).toEqual({ added: [{ policy: "role", effect: "Allow", action: "ssm:CreateDocument", statement: "OurDocument" }], removed: [] });
    expect(grantedActions(changes, older)).toEqual(["ssm:CreateDocument"]);
    // An action moved from one statement to another is a change, but no new grant.
    const moved = policyChanges(older, [...older, { policy: "role", effect: "Allow", action: "ssm:GetParameter", statement: "Elsewhere" }]);
    expect(grantedActions(moved, older)).toEqual([]);
  });

  it("holds an up that needs a granted action; never a preview, never for an action the stack does not use", () => {
    const args = { granted: ["ssm:CreateDocument"], needed: new Set(["ssm:CreateDocument"]), running: "aaaaaaaaaaaa", current: "bbbbbbbbbbbb" };
    expect(holdFor("up", args)).toEqual({
      reason:
        "waits for the bootstrap stack update to version bbbbbbbbbbbb: the stack needs ssm:CreateDocument, which version aaaaaaaaaaaa does not grant",
      actions: ["ssm:CreateDocument"],
      version: "bbbbbbbbbbbb",
    });
    expect(holdFor("preview", args)).toBeUndefined();
    expect(holdFor("up", { ...args, needed: new Set(["ssm:PutParameter"]) })).toBeUndefined();
  });

  it("gives the update as CloudFormation's update page and as an AWS CLI command keeping the parameters", () => {
    const update = updateInstructions({
      region: "eu-west-1",
      stackName: "MiniXdr-Bootstrap-acme",
      templateUrl: "https://b.s3.eu-west-1.amazonaws.com/bootstrap/x.json",
    });
    expect(update.consoleUrl).toBe(
      "https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/update/template?stackId=MiniXdr-Bootstrap-acme&templateURL=https%3A%2F%2Fb.s3.eu-west-1.amazonaws.com%2Fbootstrap%2Fx.json",
    );
    expect(update.cliCommand).toBe(
      "aws cloudformation update-stack --region eu-west-1 --stack-name MiniXdr-Bootstrap-acme --template-url https://b.s3.eu-west-1.amazonaws.com/bootstrap/x.json --parameters ParameterKey=ExternalId,UsePreviousValue=true ParameterKey=TenantSlug,UsePreviousValue=true --capabilities CAPABILITY_NAMED_IAM",
    );
  });

  it("updates an organization through its management stack, keeping every parameter, so the StackSet rolls the new version out", () => {
    const update = updateInstructions({
      region: "us-east-1",
      stackName: "MiniXdr-Organization-acme",
      templateUrl: "https://b.s3.us-east-1.amazonaws.com/bootstrap/o.json",
      parameters: ["TenantSlug", "ExternalId", "OrganizationalUnitIds", "IncludeManagementAccount"],
    });
    expect(update.cliCommand).toContain(
      "--stack-name MiniXdr-Organization-acme --template-url https://b.s3.us-east-1.amazonaws.com/bootstrap/o.json",
    );
    expect(update.cliCommand).toContain(
      "ParameterKey=OrganizationalUnitIds,UsePreviousValue=true ParameterKey=IncludeManagementAccount,UsePreviousValue=true",
    );
  });
});
