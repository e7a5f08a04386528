/** The SSM Command document that installs and enrolls the XDR agent. Pure: unit-tested without Pulumi. */
import { IMDS_TAG_KEY, SAFE_HTTPS_URL, SAFE_TAG_VALUE, type Tag } from "./config";

export interface AgentDocumentArgs {
  parameterName: string;
  agentPublicBaseUrl: string;
  agentVersion: string;
  /** Instances carrying this tag are skipped (all_managed targeting; see targeting-fns.ts). None: no check. */
  exclusionTag?: Tag;
}

/** A pattern that also accepts the empty string (no exclusion check). */
const orEmpty = (pattern: RegExp) => `^(${pattern.source.slice(1, -1)})?$`;

interface DocumentStep {
  action: "aws:runShellScript" | "aws:runPowerShellScript";
  name: string;
  precondition: { StringEquals: [string, string] };
  inputs: { timeoutSeconds: string; runCommand: string[] };
}

export interface AgentInstallDocument {
  schemaVersion: "2.2";
  description: string;
  parameters: Record<string, { type: "String"; description: string; default: string; allowedPattern: string }>;
  mainSteps: DocumentStep[];
}

// The agent's configuration (backend URL, tenant id, enrollment token) never appears in the document:
// each step reads it from the SecureString parameter on the instance, so it stays encrypted at rest.
//
// The agent proves which instance it runs on with the instance's EC2 identity document and AWS's signature of it,
// both read from instance metadata (IMDSv2) and handed to the agent as files: the backend verifies the signature
// against AWS's regional certificate. Without instance metadata (not an EC2 instance, or IMDS turned off) the step
// fails with a message saying so, before touching anything. The agent keeps the credential enrollment answers in
// agent.credential, next to its configuration (mode 600): heartbeats and a later re-enrollment present it.
//
// SSM associations cannot exclude by tag, so with an exclusion tag the steps also read the instance's own tag from
// instance metadata and stop, successfully, without installing when it is set. When the instance does not serve its
// tags in instance metadata the read fails and the install goes on: the exclusion needs instance metadata tags turned
// on. MINI_XDR_IMDS_ENDPOINT only exists for tests (there is no metadata service off EC2).
const imdsCurl = "curl -sf --noproxy '*' --connect-timeout 2 --max-time 5";
const linuxScript = [
  "#!/bin/sh",
  "set -eu",
  // What the step needs, checked first: a missing one is named (exit 127), not mistaken for another failure.
  'for CMD in curl aws uname; do command -v "$CMD" >/dev/null 2>&1 || { echo "mini-xdr: $CMD: command not found: the install step needs curl and the AWS CLI" >&2; exit 127; }; done',
  "EXCLUDE_KEY='{{ ExcludeTagKey }}'",
  "EXCLUDE_VALUE='{{ ExcludeTagValue }}'",
  'IMDS="${MINI_XDR_IMDS_ENDPOINT:-http://169.254.169.254}"',
  `IMDS_TOKEN=$(${imdsCurl} -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token" || true)`,
  'if [ -z "$IMDS_TOKEN" ]; then',
  '  echo "mini-xdr: the EC2 instance metadata service (IMDSv2) did not answer at $IMDS: the agent enrolls only on an EC2 instance, which proves itself with its signed instance identity document" >&2',
  "  exit 1",
  "fi",
  'if [ -n "$EXCLUDE_KEY" ]; then',
  `  TAG_VALUE=$(${imdsCurl} -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/meta-data/tags/instance/$EXCLUDE_KEY" || true)`,
  '  if [ "$TAG_VALUE" = "$EXCLUDE_VALUE" ]; then',
  '    echo "mini-xdr: this instance is tagged $EXCLUDE_KEY=$EXCLUDE_VALUE: not installing the agent"',
  "    exit 0",
  "  fi",
  `  if [ -z "$TAG_VALUE" ] && ! ${imdsCurl} -o /dev/null -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/meta-data/tags/instance"; then`,
  '    echo "mini-xdr: instance metadata tags are off, so the exclusion tag $EXCLUDE_KEY cannot be read: installing (turn instance metadata tags on to exclude this instance by tag)" >&2',
  "  fi",
  "fi",
  "CONFIG_DIR=${MINI_XDR_CONFIG_DIR:-/etc/mini-xdr}",
  "INSTALL_DIR=${MINI_XDR_INSTALL_DIR:-/opt/mini-xdr}",
  'ARCH=$(uname -m); case "$ARCH" in aarch64|arm64) ARCH=arm64 ;; x86_64|amd64) ARCH=amd64 ;; *) echo "mini-xdr: unsupported architecture $ARCH" >&2; exit 1 ;; esac',
  'umask 077; mkdir -p "$CONFIG_DIR" "$INSTALL_DIR/bin"',
  // Both files are written beside their target and moved into place: a failed re-run keeps a working config, and
  // a running agent's binary is replaced rather than overwritten (which Linux refuses: text file busy).
  "aws ssm get-parameter --name '{{ ConfigParameterName }}' --with-decryption --query Parameter.Value --output text > \"$CONFIG_DIR/agent.json.new\"",
  'mv -f "$CONFIG_DIR/agent.json.new" "$CONFIG_DIR/agent.json"',
  "for PART in document signature; do",
  `  ${imdsCurl} -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" -o "$CONFIG_DIR/identity-$PART" "$IMDS/latest/dynamic/instance-identity/$PART" || { echo "mini-xdr: could not read the instance identity $PART from instance metadata at $IMDS" >&2; exit 1; }`,
  "done",
  "AGENT_URL='{{ AgentBaseUrl }}/agent/linux/'\"$ARCH\"'/{{ AgentVersion }}/xdr-agent'",
  'curl -fsSL --retry 3 -o "$INSTALL_DIR/bin/xdr-agent.new" "$AGENT_URL" || { echo "mini-xdr: could not download the agent from $AGENT_URL" >&2; exit 1; }',
  'chmod 0755 "$INSTALL_DIR/bin/xdr-agent.new"',
  'mv -f "$INSTALL_DIR/bin/xdr-agent.new" "$INSTALL_DIR/bin/xdr-agent"',
  '"$INSTALL_DIR/bin/xdr-agent" enroll --config "$CONFIG_DIR/agent.json" --identity-document "$CONFIG_DIR/identity-document" --identity-signature "$CONFIG_DIR/identity-signature" --credential-file "$CONFIG_DIR/agent.credential"',
];

const imdsHeaders = "-Headers @{ 'X-aws-ec2-metadata-token' = $imdsToken }";
const windowsScript = [
  "$ErrorActionPreference = 'Stop'",
  "if (-not (Get-Command Get-SSMParameter -ErrorAction SilentlyContinue)) { throw 'mini-xdr: Get-SSMParameter: command not found: the install step needs the AWS Tools for PowerShell (AWS.Tools.SimpleSystemsManagement)' }",
  "$excludeKey = '{{ ExcludeTagKey }}'",
  "$excludeValue = '{{ ExcludeTagValue }}'",
  "$imds = if ($env:MINI_XDR_IMDS_ENDPOINT) { $env:MINI_XDR_IMDS_ENDPOINT } else { 'http://169.254.169.254' }",
  "try { $imdsToken = Invoke-RestMethod -UseBasicParsing -Method Put -TimeoutSec 5 -Uri \"$imds/latest/api/token\" -Headers @{ 'X-aws-ec2-metadata-token-ttl-seconds' = '300' } } catch { throw \"mini-xdr: the EC2 instance metadata service (IMDSv2) did not answer at ${imds}: the agent enrolls only on an EC2 instance, which proves itself with its signed instance identity document\" }",
  "$tagValue = $null",
  `if ($excludeKey -ne '') { try { $tagValue = Invoke-RestMethod -UseBasicParsing -TimeoutSec 5 -Uri "$imds/latest/meta-data/tags/instance/$excludeKey" ${imdsHeaders} } catch { $tagValue = $null } }`,
  "if ($excludeKey -ne '' -and $tagValue -eq $excludeValue) { Write-Output \"mini-xdr: this instance is tagged ${excludeKey}=${excludeValue}: not installing the agent\"; exit 0 }",
  "$configDir = Join-Path $env:ProgramData 'MiniXdr'",
  "$installDir = Join-Path $env:ProgramFiles 'MiniXdr'",
  "New-Item -ItemType Directory -Force -Path $configDir, $installDir | Out-Null",
  "$config = (Get-SSMParameter -Name '{{ ConfigParameterName }}' -WithDecryption $true).Value",
  "Set-Content -Path (Join-Path $configDir 'agent.json') -Value $config -Encoding UTF8",
  // Written byte for byte (no BOM, no added newline): the signature covers the document's exact bytes.
  `foreach ($part in 'document', 'signature') { $text = (Invoke-WebRequest -UseBasicParsing -TimeoutSec 5 -Uri "$imds/latest/dynamic/instance-identity/$part" ${imdsHeaders}).Content; [System.IO.File]::WriteAllText((Join-Path $configDir "identity-$part"), $text) }`,
  "$agent = Join-Path $installDir 'xdr-agent.exe'",
  "Invoke-WebRequest -UseBasicParsing -Uri '{{ AgentBaseUrl }}/agent/windows/amd64/{{ AgentVersion }}/xdr-agent.exe' -OutFile \"$agent.new\"",
  'Move-Item -Force -Path "$agent.new" -Destination $agent',
  "& $agent enroll --config (Join-Path $configDir 'agent.json') --identity-document (Join-Path $configDir 'identity-document') --identity-signature (Join-Path $configDir 'identity-signature') --credential-file (Join-Path $configDir 'agent.credential')",
  'if ($LASTEXITCODE -ne 0) { throw "agent enrollment failed with exit code $LASTEXITCODE" }',
];

export function buildAgentInstallDocument(args: AgentDocumentArgs): AgentInstallDocument {
  return {
    schemaVersion: "2.2",
    description: "Installs the Mini-XDR agent and enrolls it with the tenant's configuration.",
    parameters: {
      ConfigParameterName: {
        type: "String",
        description: "SSM SecureString parameter holding the agent configuration",
        default: args.parameterName,
        allowedPattern: "^/[A-Za-z0-9_./-]{1,2047}$",
      },
      AgentBaseUrl: {
        type: "String",
        description: "Where the agent is downloaded from",
        default: args.agentPublicBaseUrl,
        allowedPattern: SAFE_HTTPS_URL.source,
      },
      AgentVersion: {
        type: "String",
        description: "Agent version to install",
        default: args.agentVersion,
        allowedPattern: "^\\d+\\.\\d+\\.\\d+([-+][A-Za-z0-9_.]+)?$",
      },
      ExcludeTagKey: {
        type: "String",
        description: "Skip instances carrying this tag (read from instance metadata); empty: no check",
        default: args.exclusionTag?.key ?? "",
        allowedPattern: orEmpty(IMDS_TAG_KEY),
      },
      ExcludeTagValue: {
        type: "String",
        description: "The value of ExcludeTagKey that skips the instance",
        default: args.exclusionTag?.value ?? "",
        allowedPattern: orEmpty(SAFE_TAG_VALUE),
      },
    },
    mainSteps: [
      {
        action: "aws:runShellScript",
        name: "InstallAgentLinux",
        precondition: { StringEquals: ["platformType", "Linux"] },
        inputs: { timeoutSeconds: "600", runCommand: linuxScript },
      },
      {
        action: "aws:runPowerShellScript",
        name: "InstallAgentWindows",
        precondition: { StringEquals: ["platformType", "Windows"] },
        inputs: { timeoutSeconds: "600", runCommand: windowsScript },
      },
    ],
  };
}

/** Replaces the document's `{{ Name }}` parameter references, as SSM does before running a step. */
export function renderStep(step: DocumentStep, parameters: Record<string, string>): string {
  return step.inputs.runCommand.join("\n").replace(/\{\{\s*(\w+)\s*\}\}/g, (match, name: string) => parameters[name] ?? match);
}
