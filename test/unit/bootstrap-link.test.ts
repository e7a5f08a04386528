import { describe, expect, it } from "vitest";
import { ZodError } from "zod";
import {
  bootstrapRoleArn,
  buildBootstrapLink,
  buildOffboardingInstructions,
  buildQuickCreateUrl,
} from "../../services/integration/bootstrap-link-fns";
import { templateObjectUrl } from "../../services/integration/bootstrap-template-publisher";

const TEMPLATE_URL = "https://mini-xdr-templates.s3.us-east-1.amazonaws.com/bootstrap/0123456789ab.json";

function zodFields(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ZodError) return [...new Set(error.issues.map((issue) => issue.path.join(".")))];
    throw error;
  }
  throw new Error("no error thrown");
}

describe("the quick-create link", () => {
  it("opens the CloudFormation console's quick create with the template, the stack name and the parameters", () => {
    const link = buildBootstrapLink({
      tenantSlug: "mini-corp",
      externalId: "mxdr-ext-4f1c2b7e9a0d4c1b8e6f",
      region: "eu-west-1",
      templateUrl: TEMPLATE_URL,
    });
    expect(link.quickCreateUrl).toBe(
      "https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/quickcreate" +
        "?templateURL=https%3A%2F%2Fmini-xdr-templates.s3.us-east-1.amazonaws.com%2Fbootstrap%2F0123456789ab.json" +
        "&stackName=MiniXdr-Bootstrap-mini-corp&param_TenantSlug=mini-corp&param_ExternalId=mxdr-ext-4f1c2b7e9a0d4c1b8e6f",
    );
    expect(link).toMatchObject({ stackName: "MiniXdr-Bootstrap-mini-corp", roleName: "MiniXdrBootstrap-mini-corp", region: "eu-west-1" });
    const fragment = new URL(link.quickCreateUrl).hash.slice("#/stacks/quickcreate?".length);
    expect(Object.fromEntries(new URLSearchParams(fragment))).toEqual({
      templateURL: TEMPLATE_URL,
      stackName: "MiniXdr-Bootstrap-mini-corp",
      param_TenantSlug: "mini-corp",
      param_ExternalId: "mxdr-ext-4f1c2b7e9a0d4c1b8e6f",
    });
  });

  it("encodes parameter values", () => {
    const url = buildQuickCreateUrl({ region: "us-east-1", templateUrl: TEMPLATE_URL, stackName: "S", parameters: { ExternalId: "a+b=c/d@e" } });
    expect(url.endsWith("&param_ExternalId=a%2Bb%3Dc%2Fd%40e")).toBe(true);
  });

  it("accepts only https URLs of S3 objects as the template", () => {
    const base = { region: "us-east-1", stackName: "MiniXdr-Bootstrap-x", parameters: {} };
    for (const ok of [
      TEMPLATE_URL,
      "https://s3.amazonaws.com/mini-xdr-templates/bootstrap/a.json",
      "https://s3.eu-west-1.amazonaws.com/mini-xdr-templates/bootstrap/a.json",
      "https://mini-xdr-templates.s3.amazonaws.com/bootstrap/a.json",
      templateObjectUrl({ bucket: "mini-xdr-templates", region: "ap-southeast-2" }, "bootstrap/a.json"),
    ]) {
      expect(() => buildQuickCreateUrl({ ...base, templateUrl: ok }), ok).not.toThrow();
    }
    for (const bad of [
      "http://mini-xdr-templates.s3.us-east-1.amazonaws.com/bootstrap/a.json",
      "https://example.com/bootstrap/a.json",
      "https://mini-xdr-templates.s3.us-east-1.amazonaws.com.evil.example/a.json",
      "https://127.0.0.1:9000/mini-xdr-templates/a.json",
      "https://mini-xdr-templates.s3.us-east-1.amazonaws.com/",
      "not a url",
    ]) {
      expect(
        zodFields(() => buildQuickCreateUrl({ ...base, templateUrl: bad })),
        bad,
      ).toEqual(["templateUrl"]);
    }
  });

  it("names the bad field of a tenant's link", () => {
    expect(
      zodFields(() => buildBootstrapLink({ tenantSlug: "Mini Corp", externalId: "short", region: "mars-1", templateUrl: TEMPLATE_URL })).sort(),
    ).toEqual(["externalId", "region", "tenantSlug"]);
  });

  it("knows the role ARN the stack creates in the customer's account", () => {
    expect(bootstrapRoleArn({ accountId: "210987654321", tenantSlug: "mini-corp" })).toBe(
      "arn:aws:iam::210987654321:role/MiniXdrBootstrap-mini-corp",
    );
  });
});

describe("the offboarding instructions", () => {
  it("tell the customer how to delete the bootstrap stack, in the console and with the CLI", () => {
    const instructions = buildOffboardingInstructions({ tenantSlug: "mini-corp", region: "eu-west-1" });
    expect(instructions.cliCommand).toBe("aws cloudformation delete-stack --stack-name MiniXdr-Bootstrap-mini-corp --region eu-west-1");
    expect(instructions.consoleUrl.startsWith("https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks?")).toBe(true);
    expect(instructions.consoleUrl).toContain("filteringText=MiniXdr-Bootstrap-mini-corp");
    expect(instructions.text).toContain(instructions.cliCommand);
    expect(instructions.text).toContain(instructions.consoleUrl);
    expect(instructions.text).toMatch(/nothing of Mini-XDR is left/);
  });
});
