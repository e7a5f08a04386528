/**
 * The install failure classifier's edges that the Linux step cannot print on this machine (PowerShell's wording) and
 * the redaction of what the output may carry. Every cause is also pinned on the real script's output in
 * test/integration/agent-install-script.test.ts.
 */
import { describe, expect, it } from "vitest";
import { classifyInstallFailure, lastLines, redactOutput } from "../../services/rollout/install-failure-fns";

describe("install failure classifier", () => {
  it("names a command PowerShell does not know", () => {
    const failure = classifyInstallFailure({
      exitCode: 1,
      stdout: "",
      stderr: "Get-SSMParameter : The term 'Get-SSMParameter' is not recognized as the name of a cmdlet, function, script file, or operable program.",
    });
    expect(failure.cause).toBe("command_not_found");
    expect(failure.reason).toContain("`Get-SSMParameter`");
    expect(failure.fix).toContain("PowerShell");
  });

  it("keeps the last lines, standard error first, and never a token, key or metadata token", () => {
    const stderr = [
      'xdr-agent: enrollment refused: {"error":{"code":"invalid_enrollment_token"}} token=mxdr-enroll_abcdefghijklmnopqrstuvwxyz012345',
      "AKIAABCDEFGHIJKLMNOP used",
      "X-aws-ec2-metadata-token: AQAEAFakeTokenValue==",
    ].join("\n");
    const lines = lastLines({ stdout: "line 1\nline 2\n", stderr });
    expect(lines).toEqual([
      'xdr-agent: enrollment refused: {"error":{"code":"invalid_enrollment_token"}} token=[redacted]',
      "[redacted key] used",
      "X-aws-ec2-metadata-token: [redacted]",
      "line 1",
      "line 2",
    ]);
    expect(redactOutput('{"enrollmentToken":"mxdr-enroll_abcdefghijklmnopqrstuvwxyz"}')).not.toContain("abcdefghijklmnop");
  });

  it("falls back to the output itself when no known cause matches", () => {
    const failure = classifyInstallFailure({ exitCode: 3, stdout: "", stderr: "something odd happened" });
    expect(failure).toMatchObject({ cause: "unknown", lines: ["something odd happened"] });
    expect(failure.reason).toContain("exit 3");
  });
});
