/**
 * The bootstrap template and every IAM policy we write, through the checkers the toolchain pins in .tools/
 * (scripts/toolchain.sh): cfn-lint and checkov on the generated template, parliament on each policy. A missing checker
 * fails these tests. Each checker is first shown a known-bad input, so a checker that silently checks nothing fails too.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resourceNames } from "../../programs/tenant/naming";
import { buildAccessPolicy, buildTrustPolicy } from "../../programs/tenant/policies";
import {
  bootstrapArns,
  buildBootstrapPolicy,
  buildBootstrapTrustPolicy,
  buildPermissionsBoundaryPolicy,
} from "../../services/integration/bootstrap-policy-fns";
import { renderBootstrapTemplate } from "../../services/integration/bootstrap-template-fns";
import { buildOrganizationReaderPolicy, renderOrganizationTemplate } from "../../services/integration/organization-template-fns";
import type { PolicyDocument } from "../../programs/tenant/policy-document";
import { PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";
import { REPO_ROOT } from "../harness/moto";
import { DEFAULT_EXCLUSION_TAG, DEFAULT_TARGET_TAG } from "../../programs/tenant/config";

const DEFAULT_TARGETING = { mode: "all_managed" as const, targetTag: DEFAULT_TARGET_TAG, exclusionTag: DEFAULT_EXCLUSION_TAG };

const ACCOUNT = "210987654321";
const SLUG = "mini-corp";

function checker(name: "cfn-lint" | "checkov" | "parliament"): string {
  const bin = path.join(REPO_ROOT, ".tools", `${name}-venv`, "bin", name);
  if (!existsSync(bin)) throw new Error(`${name} not found at ${bin}: run \`bash scripts/toolchain.sh\` (it pins ${name} in .tools/${name}-venv)`);
  return bin;
}

async function run(bin: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, BC_API_KEY: "" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

let workDir: string;
let templateFile: string;
let organizationTemplateFile: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "mini-xdr-bootstrap-checkers-"));
  templateFile = path.join(workDir, "bootstrap.json");
  await writeFile(templateFile, renderBootstrapTemplate({ platformPrincipalArn: PLATFORM_PRINCIPAL_ARN }).body);
  organizationTemplateFile = path.join(workDir, "organization.json");
  await writeFile(
    organizationTemplateFile,
    renderOrganizationTemplate({
      platformPrincipalArn: PLATFORM_PRINCIPAL_ARN,
      bootstrapTemplateUrl: "https://mini-xdr-templates.s3.us-east-1.amazonaws.com/bootstrap/0123456789ab.json",
    }),
  );
});

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("cfn-lint", () => {
  it("rejects a broken template (the checker is live)", async () => {
    const broken = path.join(workDir, "broken.json");
    await writeFile(broken, JSON.stringify({ Resources: { Role: { Type: "AWS::IAM::Role", Properties: { RoleName: 7 } } } }));
    const result = await run(checker("cfn-lint"), [broken]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toMatch(/E\d{4}/);
  });

  it("finds nothing in the bootstrap template", async () => {
    const result = await run(checker("cfn-lint"), ["--format", "parseable", templateFile]);
    expect(result.stdout + result.stderr).toBe("");
    expect(result.code).toBe(0);
  });

  it("finds nothing in the organization template (reader role, StackSet, the management account's opt-in role)", async () => {
    const result = await run(checker("cfn-lint"), ["--format", "parseable", organizationTemplateFile]);
    expect(result.stdout + result.stderr).toBe("");
    expect(result.code).toBe(0);
  });
});

interface CheckovReport {
  results: { failed_checks: { check_id: string; check_name: string; resource: string }[] };
  summary: { passed: number; failed: number; skipped: number; parsing_errors: number; resource_count: number; checkov_version: string };
}

async function checkov(file: string): Promise<CheckovReport> {
  // --skip-download: no call to the vendor's platform; the tests stay on this machine.
  const result = await run(checker("checkov"), ["-f", file, "--framework", "cloudformation", "--skip-download", "--output", "json", "--compact"]);
  try {
    return JSON.parse(result.stdout) as CheckovReport;
  } catch {
    throw new Error(`checkov gave no JSON report (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

describe("checkov", () => {
  it("flags a role with an admin policy (the checker is live)", async () => {
    const admin = path.join(workDir, "admin.json");
    await writeFile(
      admin,
      JSON.stringify({
        Resources: {
          Admin: {
            Type: "AWS::IAM::Role",
            Properties: {
              AssumeRolePolicyDocument: {
                Version: "2012-10-17",
                Statement: [{ Effect: "Allow", Principal: { AWS: "*" }, Action: "sts:AssumeRole" }],
              },
              Policies: [
                { PolicyName: "all", PolicyDocument: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] } },
              ],
            },
          },
        },
      }),
    );
    const report = await checkov(admin);
    expect(report.results.failed_checks.length).toBeGreaterThan(0);
  });

  it("passes the bootstrap template with nothing failed or skipped", async () => {
    const report = await checkov(templateFile);
    expect(report.results.failed_checks.map((check) => `${check.check_id} ${check.check_name} (${check.resource})`)).toEqual([]);
    expect(report.summary).toMatchObject({ failed: 0, skipped: 0, parsing_errors: 0, resource_count: 3 });
    expect(report.summary.passed).toBeGreaterThan(5);
  });

  it("passes the organization template with nothing failed or skipped", async () => {
    const report = await checkov(organizationTemplateFile);
    expect(report.results.failed_checks.map((check) => `${check.check_id} ${check.check_name} (${check.resource})`)).toEqual([]);
    // The reader role, the StackSet, and the three resources of the management account's opt-in.
    expect(report.summary).toMatchObject({ failed: 0, skipped: 0, parsing_errors: 0, resource_count: 5 });
  });
});

interface ParliamentFinding {
  issue: string;
  severity: string;
  detail: unknown;
}

/** parliament's findings of severity medium or higher; it reads the policy from stdin. */
async function parliament(policy: PolicyDocument): Promise<ParliamentFinding[]> {
  const result = await run(checker("parliament"), ["--json", "--minimum_severity", "MEDIUM"], JSON.stringify(policy));
  const findings = result.stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as ParliamentFinding);
  // parliament exits 1 when it reports something, and with other codes on errors.
  if (result.code !== 0 && findings.length === 0) throw new Error(`parliament failed (exit ${result.code}): ${result.stderr}`);
  return findings;
}

/**
 * parliament reads every policy as an identity policy, which must have a Resource. A role's trust policy is the
 * role's resource policy: its resource is the role itself, and IAM refuses a Resource element in it. The trust
 * policies go through parliament with that implied Resource written out, everything else unchanged.
 */
function withImpliedResource(trust: PolicyDocument, roleArn: string): PolicyDocument {
  return { ...trust, Statement: trust.Statement.map((statement) => ({ ...statement, Resource: roleArn })) };
}

describe("parliament", () => {
  const scope = { partition: "aws", accountId: ACCOUNT, tenantSlug: SLUG };
  const arn = bootstrapArns(scope);
  const externalId = "mxdr-ext-4f1c2b7e9a0d4c1b8e6f";

  it("reports a policy whose resources fit none of its actions (the checker is live)", async () => {
    const findings = await parliament({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "ssm:PutParameter", Resource: `arn:aws:iam::${ACCOUNT}:role/x` }],
    });
    expect(findings.map((finding) => finding.issue)).toContain("RESOURCE_MISMATCH");
  });

  const policies: [string, () => PolicyDocument][] = [
    ["the bootstrap role's permissions", () => buildBootstrapPolicy(scope)],
    [
      "the bootstrap role's trust",
      () => withImpliedResource(buildBootstrapTrustPolicy({ platformPrincipalArn: PLATFORM_PRINCIPAL_ARN, externalId }), arn.bootstrapRole),
    ],
    ["the permissions boundary", () => buildPermissionsBoundaryPolicy(scope)],
    ["the organization reader role's permissions", () => buildOrganizationReaderPolicy()],
    [
      "the organization reader role's trust",
      () =>
        withImpliedResource(
          buildBootstrapTrustPolicy({ platformPrincipalArn: PLATFORM_PRINCIPAL_ARN, externalId }),
          `arn:aws:iam::${ACCOUNT}:role/MiniXdrOrgReader-${SLUG}`,
        ),
    ],
    [
      "the XDR access role's permissions",
      () =>
        buildAccessPolicy({
          customerAccountId: ACCOUNT,
          documentName: resourceNames(SLUG).documentName,
          regions: ["us-east-1", "eu-west-1"],
          targeting: DEFAULT_TARGETING,
        }),
    ],
    [
      "the XDR access role's trust",
      () => withImpliedResource(buildTrustPolicy({ platformPrincipalArn: PLATFORM_PRINCIPAL_ARN, externalId }), arn.accessRole),
    ],
  ];

  for (const [name, build] of policies) {
    it(`finds nothing of medium severity or higher in ${name}`, async () => {
      expect(await parliament(build())).toEqual([]);
    });
  }
});
