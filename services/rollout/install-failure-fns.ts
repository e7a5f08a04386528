/**
 * Why the agent install failed on an instance, from what the install step printed (its exit code, standard output
 * and error, as SSM keeps them), each cause with its own fix. Built from the real install script's failures
 * (test/integration/agent-install-script.test.ts injects each one). Pure.
 */

export const INSTALL_FAILURE_CAUSES = [
  "command_not_found",
  "instance_metadata_unavailable",
  "agent_unreachable",
  "agent_tls_refused",
  "download_refused",
  "configuration_unreadable",
  "enrollment_refused",
  "disk_full",
  "unsupported_os",
  "unknown",
] as const;
export type InstallFailureCause = (typeof INSTALL_FAILURE_CAUSES)[number];

export interface InstallOutput {
  /** The step's exit code (SSM's ResponseCode); -1 or undefined when unknown. */
  exitCode?: number;
  stdout: string;
  stderr: string;
}

export interface InstallFailure {
  cause: InstallFailureCause;
  reason: string;
  fix: string;
  /** The output's last lines (standard error first), secrets redacted. */
  lines: string[];
}

const MAX_LINES = 12;
const MAX_LINE_CHARS = 300;

// Named values first (their whole value goes), then what is recognisable anywhere.
const SECRET_PATTERNS: [RegExp, string][] = [
  [/(X-aws-ec2-metadata-token:\s*)\S+/gi, "$1[redacted]"],
  [/("?(?:enrollmentToken|agent_credential|enrollment_token|token|secret|password)"?\s*[:=]\s*)"?[^\s",}]+"?/gi, "$1[redacted]"],
  [/mxdr-[a-z]+_[A-Za-z0-9_-]{16,}/g, "[redacted token]"],
  [/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, "[redacted key]"],
];

export function redactOutput(text: string): string {
  return SECRET_PATTERNS.reduce((redacted, [pattern, replacement]) => redacted.replace(pattern, replacement), text);
}

/** The last lines worth reading: standard error's, then standard output's, redacted and cut to size. */
export function lastLines({ stdout, stderr }: InstallOutput, max = MAX_LINES): string[] {
  const lines = [...stderr.split(/\r?\n/), ...stdout.split(/\r?\n/)].map((line) => line.trimEnd()).filter((line) => line.trim() !== "");
  return lines.slice(-max).map((line) => {
    const redacted = redactOutput(line);
    return redacted.length > MAX_LINE_CHARS ? `${redacted.slice(0, MAX_LINE_CHARS - 1)}…` : redacted;
  });
}

const hostPort = (url: string): string => {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname} port ${parsed.port || (parsed.protocol === "https:" ? "443" : "80")}`;
  } catch {
    return url;
  }
};

/** The agent download URL the step printed ("could not download the agent from <url>"), or another URL in the output. */
const urlIn = (text: string) =>
  /could not download the agent from (\S+)/.exec(text)?.[1] ??
  [...text.matchAll(/https?:\/\/[^\s'"]+/g)].map((match) => match[0]).find((url) => !url.startsWith("https://curl.se/"));

export function classifyInstallFailure(output: InstallOutput, context: { agentBaseUrl?: string } = {}): InstallFailure {
  const text = `${output.stderr}\n${output.stdout}`;
  const lines = lastLines(output);
  const agentAt = context.agentBaseUrl ? hostPort(context.agentBaseUrl) : undefined;
  const result = (cause: InstallFailureCause, reason: string, fix: string): InstallFailure => ({ cause, reason, fix, lines });

  const missing = /(?:^|\s|:)([\w.-]+): (?:command )?not found/m.exec(text) ?? /The term '([\w.-]+)' is not recognized/.exec(text);
  if (output.exitCode === 127 || missing) {
    const command = missing?.[1] ?? "a command";
    return result(
      "command_not_found",
      `the install step could not run ${command === "a command" ? "a command it needs" : `\`${command}\``} (exit 127: not installed on the instance)`,
      command === "aws"
        ? "install the AWS CLI on the instance (the step reads its configuration with `aws ssm get-parameter`), then retry"
        : command === "curl"
          ? "install curl on the instance (the step downloads the agent and reads instance metadata with it), then retry"
          : `install \`${command}\` on the instance (Linux needs sh, curl and the AWS CLI; Windows needs PowerShell 5.1 with AWS Tools), then retry`,
    );
  }
  if (/unsupported (architecture|operating system|OS)/i.test(text)) {
    const what = /unsupported (?:architecture|operating system|OS) (\S+)/i.exec(text)?.[1];
    return result(
      "unsupported_os",
      `the agent does not support this instance${what ? ` (${what})` : ""}`,
      "the agent runs on Linux (x86_64 or arm64) and Windows (x86_64): exclude this instance with the exclusion tag",
    );
  }
  if (/No space left on device|\[Errno 28\]/i.test(text)) {
    return result(
      "disk_full",
      "the instance's disk is full: the agent could not be written",
      "free space on the instance (/opt and /etc on Linux), then retry",
    );
  }
  if (/instance metadata service \(IMDSv2\) did not answer|could not read the instance identity/i.test(text)) {
    return result(
      "instance_metadata_unavailable",
      "the instance's metadata service (IMDSv2) did not answer, so the agent cannot prove which instance it runs on",
      "turn instance metadata on (aws ec2 modify-instance-metadata-options --instance-id <id> --http-endpoint enabled --http-put-response-hop-limit 2), then retry",
    );
  }
  if (/An error occurred \((AccessDenied\w*|ParameterNotFound|KMS\w*)\)/.test(text) && /get-?parameter|GetParameter/i.test(text)) {
    const code = /An error occurred \((\w+)\)/.exec(text)![1]!;
    return result(
      "configuration_unreadable",
      `the instance could not read the agent configuration parameter (${code})`,
      code === "ParameterNotFound"
        ? "the parameter is missing in this region: run an up to restore it, then retry"
        : "the instance profile needs ssm:GetParameter on the agent parameter and kms:Decrypt (AmazonSSMManagedInstanceCore grants both), then retry",
    );
  }
  // The agent enrolls with curl too: its refusal is not a refused download.
  const enrollment = /enrollment refused: .*?"code":"(\w+)"/.exec(text) ?? /enrollment refused/.exec(text);
  if (enrollment) {
    return result(
      "enrollment_refused",
      `the agent installed, but the service refused its enrollment${enrollment[1] ? ` (${enrollment[1]})` : ""}`,
      "run an up (it writes the current enrollment token into the agent configuration), then retry",
    );
  }
  const refused = /The requested URL returned error: (\d{3})/.exec(text);
  if (refused) {
    const status = refused[1]!;
    const url = urlIn(text) ?? context.agentBaseUrl ?? "the agent server";
    return result(
      "download_refused",
      `the agent download was refused (HTTP ${status}) by ${hostPort(url)}`,
      status === "404"
        ? "the agent version is not published at the agent URL: check the tenant's agent_public_base_url and AGENT_VERSION, then retry"
        : "a proxy or allow list between the instance and the agent server refuses it: allow the instance to download from the agent URL, then retry",
    );
  }
  if (
    /SSL certificate problem|certificate verify failed|server certificate verification failed|SSL: no alternative certificate|unable to get local issuer/i.test(
      text,
    )
  ) {
    const at = urlIn(text) ? hostPort(urlIn(text)!) : agentAt;
    return result(
      "agent_tls_refused",
      `the instance refused the agent server's TLS certificate${at ? ` at ${at}` : ""}`,
      "a TLS-inspecting proxy re-signs the connection: add its CA to the instance's trust store, or let the agent URL bypass it, then retry",
    );
  }
  const unreachable =
    /Could not resolve host: (\S+)|Failed to connect to (\S+) port (\d+)|Connection timed out|Operation timed out|Connection refused/i.exec(text);
  if (unreachable) {
    const at = unreachable[1]
      ? `${unreachable[1]} (name not resolved)`
      : unreachable[2]
        ? `${unreachable[2]} port ${unreachable[3]}`
        : (agentAt ?? "the agent server");
    return result(
      "agent_unreachable",
      `the instance could not reach the agent server: ${at}`,
      "let the instance reach the agent URL over HTTPS (security group egress, a NAT gateway or proxy, DNS), then retry",
    );
  }
  return result(
    "unknown",
    `the install step failed${output.exitCode !== undefined && output.exitCode >= 0 ? ` (exit ${output.exitCode})` : ""}: see its last lines`,
    "read the output below; once fixed, retry (POST /v1/tenants/{slug}/deployment/retry)",
  );
}
