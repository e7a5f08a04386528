/**
 * The agent install document is real (issue 4, item 6): the Linux step of the generated SSM document, rendered the
 * way SSM renders it, runs with `sh` on this machine as it would on an instance:
 *
 *   - `aws ssm get-parameter --with-decryption` (the AWS CLI v1 from .tools/awscli-venv, see scripts/toolchain.sh)
 *     reads the tenant's agent configuration SecureString from moto (AWS_ENDPOINT_URL);
 *   - `curl` downloads the agent from `AgentBaseUrl`, here an HTTPS server of this test on 127.0.0.1 with a
 *     self-signed certificate the script trusts through CURL_CA_BUNDLE / SSL_CERT_FILE (no "insecure" switch);
 *   - the step reads the instance's EC2 identity document and its signature from instance metadata (IMDSv2): the
 *     IMDS stand-in (test/harness/imds-standin.ts) serves a document signed by the test CA of
 *     test/harness/instance-identity.ts, which the app trusts as the service trusts AGENT_IDENTITY_CERTIFICATES_FILE;
 *   - the downloaded "agent" is a stand-in (a small POSIX sh script served by the test) whose `enroll` does what
 *     the real agent does on the wire: POST /v1/agents/enroll to the configuration's backendUrl with the tenant's
 *     enrollment token, the identity document and signature (and the agent credential it holds, if any), and keep
 *     the credential the answer carries. The same HTTPS server forwards /v1/* to the platform's app (test/harness/platform.ts), so
 *     enrollment goes through the real route, the signature verification, the enrollment code and the database.
 *
 * The Windows step cannot run here (no PowerShell, no Windows): its structure is checked instead.
 *
 * Runs on the real PostgreSQL server of TEST_DATABASE_URL (a scratch database).
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { hostname, machine, tmpdir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { and, asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { activeEnrollmentToken, rotateEnrollmentToken } from "../../services/core/enrollment-tokens";
import type { Database } from "../../db/client";
import { hashToken, type Keyring } from "../../db/crypto";
import { agents, auditLog, cloudAssets, organizations } from "../../db/schema";
import { buildAgentInstallDocument, renderStep, type AgentInstallDocument } from "../../programs/tenant/agent-document";
import { resourceNames } from "../../programs/tenant/naming";
import { classifyInstallFailure } from "../../services/rollout/install-failure-fns";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { startHttpsServer, type HttpsTestServer } from "../harness/https-server";
import { startImdsStandIn, type ImdsInstance, type ImdsStandIn } from "../harness/imds-standin";
import { signedIdentity, untrustedIdentityAuthority, type IdentityAuthority } from "../harness/instance-identity";
import { REPO_ROOT } from "../harness/moto";

const AGENT_VERSION = "1.0.0";
/** A version the agent server refuses (403), as a proxy or an allow list would. */
const FORBIDDEN_VERSION = "0.0.403";
const REGION = "us-east-1";
const ACCOUNT_ID = "123456789012";
const DEFAULT_AWS_CLI_BIN = ".tools/awscli-venv/bin/aws";

/** The AWS CLI: `AWS_CLI_BIN` if set (relative paths from the repo root), else the venv under `.tools/` (as for moto). */
function awsCliBin(): string {
  const configured = process.env.AWS_CLI_BIN;
  const bin = configured ? (isAbsolute(configured) ? configured : resolve(REPO_ROOT, configured)) : resolve(REPO_ROOT, DEFAULT_AWS_CLI_BIN);
  if (!existsSync(bin)) {
    throw new Error(
      `the AWS CLI was not found at ${bin}. Install the test toolchain first: run \`npm test\` or \`bash scripts/toolchain.sh\` ` +
        `(or point AWS_CLI_BIN at an \`aws\` executable).`,
    );
  }
  return bin;
}

function motoEndpoint(): string {
  const url = process.env.AWS_ENDPOINT_URL;
  if (!url?.startsWith("http://127.0.0.1:")) throw new Error(`AWS_ENDPOINT_URL must point at moto on loopback, got ${url}`);
  return url;
}

/** The architecture the Linux step picks, with the step's own mapping of `uname -m`. */
const linuxArch = () => (["aarch64", "arm64"].includes(machine()) ? "arm64" : "amd64");

/**
 * The stand-in agent binary for one version/architecture: a POSIX sh script (python3 only reads and writes JSON).
 * The enrollment token and the credential travel in files and on stdin, never on a command line.
 */
function standInAgent(version: string, arch: string): string {
  return [
    "#!/bin/sh",
    `# Stand-in for the Mini-XDR agent ${version} (linux/${arch}), served by test/integration/agent-install-script.test.ts.`,
    "# `enroll` does what the real agent does on the wire: read the configuration and the instance identity files the",
    "# install step wrote, POST the enrollment to the backend the configuration names (with the agent credential it",
    "# holds, if any), fail on any non-2xx answer, and keep the new credential (mode 600).",
    "set -eu",
    'if [ "$#" -ne 9 ] || [ "$1" != enroll ] || [ "$2" != --config ] || [ "$4" != --identity-document ] || [ "$6" != --identity-signature ] || [ "$8" != --credential-file ]; then',
    '  echo "usage: xdr-agent enroll --config <agent.json> --identity-document <file> --identity-signature <file> --credential-file <file>" >&2',
    "  exit 64",
    "fi",
    'config="$3"; document="$5"; signature="$7"; credential="$9"',
    `backend=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["backendUrl"].rstrip("/"))' "$config")`,
    "body=$(python3 -c '",
    "import json, os, sys",
    "config = json.load(open(sys.argv[1]))",
    'body = {"enrollment_token": config["enrollmentToken"], "identity_document": open(sys.argv[2], newline="").read(),',
    '        "identity_signature": open(sys.argv[3]).read(), "hostname": sys.argv[5], "agent_version": sys.argv[6]}',
    "if os.path.exists(sys.argv[4]):",
    '    body["agent_credential"] = open(sys.argv[4]).read().strip()',
    "print(json.dumps(body))",
    `' "$config" "$document" "$signature" "$credential" "$(uname -n)" "${version}")`,
    `answer=$(printf '%s' "$body" | curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' --data-binary @- "$backend/v1/agents/enroll") || { echo "xdr-agent: enrollment refused: $answer" >&2; exit 1; }`,
    '(umask 077; printf \'%s\' "$answer" | python3 -c \'import json, sys; print(json.load(sys.stdin)["agent_credential"])\' > "$credential.new")',
    'mv -f "$credential.new" "$credential"',
    `instance_id=$(printf '%s' "$answer" | python3 -c 'import json, sys; print(json.load(sys.stdin)["instance_id"])')`,
    'echo "xdr-agent: enrolled $instance_id with $backend"',
    "",
  ].join("\n");
}

interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runSh(file: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<ScriptResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn("sh", [file], { env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** Fails with a clear message when a tool the Linux step (or the stand-in agent) calls is missing from `env.PATH`. */
function requireTools(env: NodeJS.ProcessEnv, tools: string[]): void {
  for (const tool of tools) {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`], { env, encoding: "utf8" });
    if (found.status !== 0) throw new Error(`\`${tool}\` is not on PATH (${env.PATH}): the agent install script test needs it`);
  }
}

describe("the agent install document's Linux step", () => {
  let keyring: Keyring;
  const slug = `install-${randomBytes(3).toString("hex")}`;
  const names = resourceNames(slug);
  let database: Database;
  let service: TestPlatform | undefined;
  let unavailable: unknown;
  let server: HttpsTestServer | undefined;
  let imds: ImdsStandIn | undefined;
  let ssm: SSMClient | undefined;
  let workDir: string;
  let organizationId: number;
  let aws: string;
  /** Bodies of the enrollment requests the app received. */
  const enrollments: Record<string, unknown>[] = [];

  const document = (exclusionTag?: { key: string; value: string }): AgentInstallDocument =>
    buildAgentInstallDocument({ parameterName: names.parameterName, agentPublicBaseUrl: server!.origin, agentVersion: AGENT_VERSION, exclusionTag });
  /** The Linux step with the document's parameters (their defaults, as the association leaves them). */
  const linuxScript = (overrides: Record<string, string> = {}, exclusionTag?: { key: string; value: string }) => {
    const doc = document(exclusionTag);
    const step = doc.mainSteps.find((s) => s.action === "aws:runShellScript");
    if (!step) throw new Error("the document has no aws:runShellScript step");
    const parameters = Object.fromEntries(Object.entries(doc.parameters).map(([name, p]) => [name, p.default]));
    return renderStep(step, { ...parameters, ...overrides });
  };

  const putAgentConfig = async (enrollmentToken: string): Promise<string> => {
    const value = JSON.stringify({ backendUrl: server!.origin, tenantId: slug, enrollmentToken, agentVersion: AGENT_VERSION });
    await ssm!.send(new PutParameterCommand({ Name: names.parameterName, Type: "SecureString", Value: value, Overwrite: true }));
    return value;
  };

  const addInstance = async (instanceId: string) => {
    const [asset] = await database.db
      .insert(cloudAssets)
      .values({
        organizationId,
        provider: "aws",
        assetType: "ec2",
        assetId: instanceId,
        region: REGION,
        agentCompatible: true,
        assetData: { platform: "linux", state: "running" },
      })
      .returning();
    return asset!;
  };

  /** What instance metadata says about `instanceId`: its document signed by the test CA (or `authority`). */
  const metadataOf = (instanceId: string, metadata: Partial<ImdsInstance> = {}, authority?: IdentityAuthority): ImdsInstance => ({
    tags: {},
    metadataTags: false,
    identity: signedIdentity({ accountId: ACCOUNT_ID, region: REGION, instanceId }, authority),
    ...metadata,
  });

  /**
   * Runs the rendered Linux step like SSM does on an instance (as a file, with sh), with instance metadata serving
   * that instance's identity (unless `metadata` says otherwise), in fresh config/install dirs or those of `host` (the
   * same host running the step again).
   */
  const install = async (
    instanceId: string,
    script: string,
    envOverrides: NodeJS.ProcessEnv = {},
    {
      metadata = metadataOf(instanceId),
      host,
      tools = ["aws", "curl", "python3", "uname"],
    }: { metadata?: ImdsInstance; host?: string; tools?: string[] } = {},
  ) => {
    const dir = host ?? (await mkdtemp(join(workDir, "instance-")));
    const home = join(dir, "home");
    await mkdir(home, { recursive: true });
    const scriptFile = join(dir, "_script.sh");
    await writeFile(scriptFile, script, { mode: 0o700 });
    const configDir = join(dir, "etc/mini-xdr");
    const installDir = join(dir, "opt/mini-xdr");
    imds!.setInstance(metadata);
    const env: NodeJS.ProcessEnv = {
      PATH: [dirname(aws), process.env.PATH].filter(Boolean).join(delimiter),
      HOME: home, // no ~/.aws of whoever runs the tests
      AWS_ENDPOINT_URL: motoEndpoint(),
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
      AWS_DEFAULT_REGION: REGION,
      AWS_REGION: REGION,
      AWS_EC2_METADATA_DISABLED: "true",
      // The only CA the script's HTTPS clients trust: the test server's self-signed certificate.
      CURL_CA_BUNDLE: server!.caFile,
      SSL_CERT_FILE: server!.caFile,
      MINI_XDR_CONFIG_DIR: configDir,
      MINI_XDR_INSTALL_DIR: installDir,
      // The instance metadata service of this "instance".
      MINI_XDR_IMDS_ENDPOINT: imds!.endpoint,
      ...envOverrides,
    };
    for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
    requireTools(env, tools);
    const result = await runSh(scriptFile, env);
    return { ...result, dir, configDir, installDir };
  };

  const agentRows = () => database.db.select().from(agents).where(eq(agents.organizationId, organizationId)).orderBy(asc(agents.id));
  const auditOf = (instanceId: string) =>
    database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.organizationId, organizationId), eq(auditLog.actor, `agent:${instanceId}`)))
      .orderBy(asc(auditLog.id));
  const requestsTo = (path: string) => server!.requests.filter((r) => r.path === path);

  beforeAll(async () => {
    try {
      motoEndpoint();
      aws = awsCliBin();
      workDir = await mkdtemp(join(tmpdir(), "mxdr-agent-install-"));
      service = await startTestPlatform({ env: { AGENT_VERSION }, onServerError: () => undefined });
      ({ database, keyring } = service.platform);
      const { app } = service;
      server = await startHttpsServer(async (request) => {
        const { pathname } = new URL(request.url);
        const download = /^\/agent\/linux\/(amd64|arm64)\/([^/]+)\/xdr-agent$/.exec(pathname);
        if (request.method === "GET" && download && download[2] === FORBIDDEN_VERSION) return new Response("forbidden", { status: 403 });
        if (request.method === "GET" && download && download[2] === AGENT_VERSION) {
          return new Response(standInAgent(download[2], download[1]!), { headers: { "content-type": "application/octet-stream" } });
        }
        if (pathname.startsWith("/v1/")) {
          if (pathname === "/v1/agents/enroll") enrollments.push((await request.clone().json()) as Record<string, unknown>);
          return app.fetch(request);
        }
        return new Response("not found", { status: 404 });
      });
      ssm = new SSMClient({ region: REGION });
      imds = await startImdsStandIn();
      const [org] = await database.db
        .insert(organizations)
        .values({
          slug,
          name: `Install test ${slug}`,
          awsAccountId: ACCOUNT_ID,
          integrationSettings: { agentPublicBaseUrl: server.origin, regions: [REGION] },
        })
        .returning();
      organizationId = org!.id;
    } catch (error) {
      unavailable = error;
    }
  });
  afterAll(async () => {
    ssm?.destroy();
    await imds?.stop();
    await server?.close();
    await service?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    if (unavailable) throw unavailable;
  });

  it("reads the SecureString and the signed identity document, downloads the agent over HTTPS and enrolls it through the real route; a second run re-enrolls with the agent's credential", async () => {
    const instanceId = "i-0a1b2c3d4e5f60718";
    const asset = await addInstance(instanceId);
    const token = await activeEnrollmentToken(database.db, keyring, organizationId);
    const parameterValue = await putAgentConfig(token);
    const script = linuxScript();
    expect(script).not.toMatch(/\{\{.*?\}\}/);
    expect(script).not.toContain(token);
    // TLS is verified: trust comes from the environment (CURL_CA_BUNDLE), never from switching checks off.
    expect(script).not.toMatch(/(^|\s)(-k|--insecure|--no-verify-ssl|--proto-default\s+http)(\s|$)/m);

    const metadata = metadataOf(instanceId);
    const imdsBefore = imds!.requests.length;
    const first = await install(instanceId, script, {}, { metadata });
    expect(first.code, `stdout:\n${first.stdout}\nstderr:\n${first.stderr}`).toBe(0);
    expect(first.stdout).toContain(`xdr-agent: enrolled ${instanceId} with ${server!.origin}`);
    expect(imds!.requests.slice(imdsBefore)).toEqual([
      "PUT /latest/api/token",
      "GET /latest/dynamic/instance-identity/document",
      "GET /latest/dynamic/instance-identity/signature",
    ]);

    // The configuration landed as the parameter's value, readable by its owner only (umask 077).
    const configFile = join(first.configDir, "agent.json");
    expect((await readFile(configFile, "utf8")).replace(/\n$/, "")).toBe(parameterValue);
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    expect((await stat(first.configDir)).mode & 0o777).toBe(0o700);
    // The agent is the file the server handed out, made executable.
    const agentFile = join(first.installDir, "bin/xdr-agent");
    expect(await readFile(agentFile, "utf8")).toBe(standInAgent(AGENT_VERSION, linuxArch()));
    expect((await stat(agentFile)).mode & 0o777).toBe(0o755);

    const downloadPath = `/agent/linux/${linuxArch()}/${AGENT_VERSION}/xdr-agent`;
    expect(requestsTo(downloadPath)).toEqual([{ method: "GET", path: downloadPath, status: 200 }]);
    expect(requestsTo("/v1/agents/enroll")).toEqual([{ method: "POST", path: "/v1/agents/enroll", status: 201 }]);
    // The document went byte for byte as instance metadata served it: the signature covers exactly those bytes.
    expect(enrollments.at(-1)).toEqual({
      enrollment_token: token,
      identity_document: metadata.identity!.document,
      identity_signature: metadata.identity!.signature,
      hostname: hostname(),
      agent_version: AGENT_VERSION,
    });

    // The agent keeps its own credential (owner only); only its hash is stored, and it is on no output.
    const credentialFile = join(first.configDir, "agent.credential");
    const credential = (await readFile(credentialFile, "utf8")).trim();
    expect(credential).toMatch(/^mxdr-agent_[A-Za-z0-9_-]{43}$/);
    expect((await stat(credentialFile)).mode & 0o777).toBe(0o600);
    expect(first.stdout + first.stderr).not.toContain(credential);
    const [agent, ...others] = await agentRows();
    expect(others).toEqual([]);
    expect(agent).toMatchObject({
      instanceId,
      hostname: hostname(),
      version: AGENT_VERSION,
      assetId: asset.id,
      credentialHash: hashToken(credential),
    });
    const [checkedIn] = await database.db.select().from(cloudAssets).where(eq(cloudAssets.id, asset.id));
    expect(checkedIn!.agentStatus).toBe("checked_in");
    expect((await auditOf(instanceId)).map((row) => ({ action: row.action, target: row.target }))).toEqual([
      { action: "agent.enrolled", target: instanceId },
    ]);

    // SSM re-applies the association (new instances, drift): the step must be safe to run again on the same host,
    // where the agent presents its credential and gets a new one.
    const second = await install(instanceId, script, {}, { metadata, host: first.dir });
    expect(second.code, `stdout:\n${second.stdout}\nstderr:\n${second.stderr}`).toBe(0);
    expect(requestsTo("/v1/agents/enroll").map((r) => r.status)).toEqual([201, 200]);
    expect(enrollments.at(-1)).toMatchObject({ agent_credential: credential });
    const renewed = (await readFile(credentialFile, "utf8")).trim();
    expect(renewed).not.toBe(credential);
    expect(await agentRows()).toEqual([expect.objectContaining({ id: agent!.id, credentialHash: hashToken(renewed) })]);
    expect((await auditOf(instanceId)).map((row) => row.action)).toEqual(["agent.enrolled", "agent.reenrolled"]);
  });

  it("another host presenting an enrolled instance's signed document without that agent's credential is refused (409), changing nothing", async () => {
    const instanceId = "i-0c0c0c0c0c0c0c0c1";
    await addInstance(instanceId);
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const first = await install(instanceId, linuxScript());
    expect(first.code, `stdout:\n${first.stdout}\nstderr:\n${first.stderr}`).toBe(0);
    const before = await agentRows();

    // A fresh host (no agent.credential) with the same instance's document and signature: a replay.
    const replay = await install(instanceId, linuxScript());
    expect(replay.code, `stdout:\n${replay.stdout}\nstderr:\n${replay.stderr}`).not.toBe(0);
    expect(replay.stderr).toContain("agent_already_enrolled");
    expect(requestsTo("/v1/agents/enroll").at(-1)).toEqual({ method: "POST", path: "/v1/agents/enroll", status: 409 });
    expect(existsSync(join(replay.configDir, "agent.credential"))).toBe(false);
    expect(await agentRows()).toEqual(before);
    expect((await auditOf(instanceId)).map((row) => row.action)).toEqual(["agent.enrolled"]);
  });

  it("an identity document signed by a key AWS does not hold is refused (401): nothing enrolls", async () => {
    const instanceId = "i-0d0d0d0d0d0d0d0d1";
    const asset = await addInstance(instanceId);
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const forged = metadataOf(instanceId, {}, untrustedIdentityAuthority());
    const result = await install(instanceId, linuxScript(), {}, { metadata: forged });
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).not.toBe(0);
    expect(result.stderr).toContain("invalid_instance_identity");
    expect(requestsTo("/v1/agents/enroll").at(-1)).toEqual({ method: "POST", path: "/v1/agents/enroll", status: 401 });
    expect((await agentRows()).map((row) => row.instanceId)).not.toContain(instanceId);
    const [untouched] = await database.db.select().from(cloudAssets).where(eq(cloudAssets.id, asset.id));
    expect(untouched!.agentStatus).toBe("unknown");
    expect(await auditOf(instanceId)).toEqual([]);
  });

  it("fails with a clear message, before contacting the backend, where instance metadata does not answer (not an EC2 instance) or serves no identity document", async () => {
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const cases: [string, Parameters<typeof install>, string][] = [
      [
        "i-0e1e1e1e1e1e1e1e1",
        ["i-0e1e1e1e1e1e1e1e1", linuxScript({}, { key: "xdr:monitor", value: "false" }), { MINI_XDR_IMDS_ENDPOINT: "http://127.0.0.1:9" }],
        "mini-xdr: the EC2 instance metadata service (IMDSv2) did not answer at http://127.0.0.1:9: the agent enrolls only on an EC2 instance",
      ],
      [
        "i-0e2e2e2e2e2e2e2e2",
        ["i-0e2e2e2e2e2e2e2e2", linuxScript(), {}, { metadata: { tags: {}, metadataTags: false } }],
        "mini-xdr: could not read the instance identity document from instance metadata",
      ],
    ];
    for (const [instanceId, args, message] of cases) {
      await addInstance(instanceId);
      const before = server!.requests.length;
      const result = await install(...args);
      expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).not.toBe(0);
      expect(result.stderr).toContain(message);
      expect(server!.requests.slice(before)).toEqual([]);
      expect(await auditOf(instanceId)).toEqual([]);
    }
  });

  it("fails, changing nothing, when the configuration holds a revoked enrollment token (401)", async () => {
    const instanceId = "i-0fedcba9876543210";
    const asset = await addInstance(instanceId);
    const revoked = await activeEnrollmentToken(database.db, keyring, organizationId);
    const current = await rotateEnrollmentToken(database.db, keyring, organizationId);
    expect(current).not.toBe(revoked);
    await putAgentConfig(revoked);
    const agentsBefore = await agentRows();
    const enrollsBefore = requestsTo("/v1/agents/enroll").length;

    const result = await install(instanceId, linuxScript());
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).not.toBe(0);
    expect(result.stderr).toContain("invalid_enrollment_token");
    expect(result.stdout).not.toContain("xdr-agent: enrolled");
    expect(requestsTo("/v1/agents/enroll").slice(enrollsBefore)).toEqual([{ method: "POST", path: "/v1/agents/enroll", status: 401 }]);

    expect(await agentRows()).toEqual(agentsBefore);
    const [untouched] = await database.db.select().from(cloudAssets).where(eq(cloudAssets.id, asset.id));
    expect(untouched!.agentStatus).toBe("unknown");
    expect(await auditOf(instanceId)).toEqual([]);
  });

  it("refuses the download when the server's certificate is not trusted", async () => {
    const instanceId = "i-0abcdefabcdefabcd";
    const token = await activeEnrollmentToken(database.db, keyring, organizationId);
    await putAgentConfig(token);
    const before = server!.requests.length;
    // Without CURL_CA_BUNDLE / SSL_CERT_FILE, curl trusts only the system CAs, which never signed the test's certificate.
    const result = await install(instanceId, linuxScript(), { CURL_CA_BUNDLE: undefined, SSL_CERT_FILE: undefined });
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).not.toBe(0);
    expect(result.stderr).toMatch(/certificate/i);
    expect(server!.requests.slice(before)).toEqual([]);
    expect(existsSync(join(result.installDir, "bin/xdr-agent"))).toBe(false);
    expect(await auditOf(instanceId)).toEqual([]);
  });

  it("exits successfully without installing on an instance carrying the exclusion tag in its instance metadata", async () => {
    const instanceId = "i-0e0e0e0e0e0e0e0e0";
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const before = server!.requests.length;
    const imdsBefore = imds!.requests.length;
    const metadata = metadataOf(instanceId, { tags: { "xdr:monitor": "false", Name: "excluded" }, metadataTags: true });
    const result = await install(instanceId, linuxScript({}, { key: "xdr:monitor", value: "false" }), {}, { metadata });
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain("tagged xdr:monitor=false: not installing the agent");
    expect(imds!.requests.slice(imdsBefore)).toEqual(["PUT /latest/api/token", "GET /latest/meta-data/tags/instance/xdr:monitor"]);
    expect(server!.requests.slice(before)).toEqual([]);
    expect(existsSync(join(result.configDir, "agent.json"))).toBe(false);
    expect(existsSync(join(result.installDir, "bin/xdr-agent"))).toBe(false);
    expect(await auditOf(instanceId)).toEqual([]);
  });

  it("installs where the exclusion tag is absent, or not served in instance metadata (the documented limitation)", async () => {
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const exclusion = { key: "xdr:monitor", value: "false" };
    const cases: [string, Partial<ImdsInstance>][] = [
      ["i-0a0a0a0a0a0a0a0a1", { tags: { "xdr:monitor": "true" }, metadataTags: true }],
      ["i-0a0a0a0a0a0a0a0a2", { tags: {}, metadataTags: true }],
      ["i-0a0a0a0a0a0a0a0a3", { tags: { "xdr:monitor": "false" }, metadataTags: false }],
    ];
    for (const [instanceId, metadata] of cases) {
      await addInstance(instanceId);
      const result = await install(instanceId, linuxScript({}, exclusion), {}, { metadata: metadataOf(instanceId, metadata) });
      expect(result.code, `${instanceId} stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
      expect(result.stdout).toContain(`xdr-agent: enrolled ${instanceId}`);
    }
  });

  it("without an exclusion (tag targeting), asks instance metadata only for its token and identity", async () => {
    const instanceId = "i-0b0b0b0b0b0b0b0b0";
    await addInstance(instanceId);
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const imdsBefore = imds!.requests.length;
    const result = await install(instanceId, linuxScript());
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
    expect(imds!.requests.slice(imdsBefore)).toEqual([
      "PUT /latest/api/token",
      "GET /latest/dynamic/instance-identity/document",
      "GET /latest/dynamic/instance-identity/signature",
    ]);
  });

  it("each way the step fails is classified from its own output, with the cause and its fix (the failure catalogue)", async () => {
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const shims = await mkdtemp(join(workDir, "shims-"));
    await writeFile(join(shims, "uname"), '#!/bin/sh\nif [ "${1:-}" = -m ]; then echo mips64; else echo Linux; fi\n', { mode: 0o755 });
    const fullDisk = await mkdtemp(join(workDir, "instance-"));
    await mkdir(join(fullDisk, "etc/mini-xdr"), { recursive: true });
    await symlink("/dev/full", join(fullDisk, "etc/mini-xdr/agent.json.new"));
    // Every directory of PATH that holds no `aws`: an instance without the AWS CLI.
    const withoutAws = {
      PATH: (process.env.PATH ?? "")
        .split(delimiter)
        .filter((dir) => dir && !existsSync(join(dir, "aws")))
        .join(delimiter),
    };
    const cases: {
      name: string;
      run: () => Promise<{ code: number | null; stdout: string; stderr: string }>;
      cause: string;
      says: RegExp;
    }[] = [
      {
        name: "the AWS CLI missing",
        run: () => install("i-0c0000000000000a1", linuxScript(), withoutAws, { tools: ["curl", "uname"] }),
        cause: "command_not_found",
        says: /`aws`.*exit 127/,
      },
      {
        name: "an architecture the agent does not ship for",
        run: () => install("i-0c0000000000000a2", linuxScript(), { PATH: [shims, dirname(aws), process.env.PATH].join(delimiter) }),
        cause: "unsupported_os",
        says: /mips64/,
      },
      {
        name: "a full disk",
        run: () => install("i-0c0000000000000a3", linuxScript(), {}, { host: fullDisk }),
        cause: "disk_full",
        says: /disk is full/,
      },
      {
        name: "no instance metadata",
        run: () => install("i-0c0000000000000a4", linuxScript(), { MINI_XDR_IMDS_ENDPOINT: "http://127.0.0.1:9" }),
        cause: "instance_metadata_unavailable",
        says: /IMDSv2/,
      },
      {
        name: "the configuration parameter missing",
        run: () => install("i-0c0000000000000a5", linuxScript({ ConfigParameterName: `/mini-xdr/${slug}/gone` })),
        cause: "configuration_unreadable",
        says: /ParameterNotFound/,
      },
      {
        name: "the agent server unreachable",
        run: () => install("i-0c0000000000000a6", linuxScript({ AgentBaseUrl: "https://127.0.0.1:9" })),
        cause: "agent_unreachable",
        says: /127\.0\.0\.1 port 9/,
      },
      {
        name: "the agent server's certificate not trusted",
        run: () => install("i-0c0000000000000a7", linuxScript(), { CURL_CA_BUNDLE: undefined, SSL_CERT_FILE: undefined }),
        cause: "agent_tls_refused",
        says: /TLS certificate at 127\.0\.0\.1 port \d+/,
      },
      {
        name: "an agent version not published",
        run: () => install("i-0c0000000000000a8", linuxScript({ AgentVersion: "9.9.9" })),
        cause: "download_refused",
        says: /HTTP 404.*127\.0\.0\.1 port \d+/,
      },
      {
        name: "the download forbidden",
        run: () => install("i-0c0000000000000a9", linuxScript({ AgentVersion: FORBIDDEN_VERSION })),
        cause: "download_refused",
        says: /HTTP 403/,
      },
    ];
    const catalogue: string[] = [];
    for (const { name, run, cause, says } of cases) {
      const result = await run();
      expect(result.code, `${name}: stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).not.toBe(0);
      const failure = classifyInstallFailure(
        { exitCode: result.code ?? -1, stdout: result.stdout, stderr: result.stderr },
        { agentBaseUrl: server!.origin },
      );
      expect({ name, cause: failure.cause }, `${name}: ${result.stderr}`).toEqual({ name, cause });
      expect(failure.reason, name).toMatch(says);
      expect(failure.lines.length, name).toBeGreaterThan(0);
      catalogue.push(`${name} -> ${failure.cause}: ${failure.reason}\n    output: ${failure.lines.slice(-2).join(" | ")}\n    fix: ${failure.fix}`);
    }
    // A revoked enrollment token: the agent installs, the service refuses it.
    const revoked = await activeEnrollmentToken(database.db, keyring, organizationId);
    await rotateEnrollmentToken(database.db, keyring, organizationId);
    await putAgentConfig(revoked);
    const refused = await install("i-0c0000000000000b1", linuxScript());
    const failure = classifyInstallFailure({ exitCode: refused.code ?? -1, stdout: refused.stdout, stderr: refused.stderr });
    expect(failure).toMatchObject({ cause: "enrollment_refused", reason: expect.stringContaining("invalid_enrollment_token") });
    expect(failure.lines.join("\n")).not.toContain(revoked);
    catalogue.push(`a revoked enrollment token -> ${failure.cause}: ${failure.reason}\n    fix: ${failure.fix}`);
    console.log(`install failure catalogue (real Linux step):\n${catalogue.map((line) => `  ${line}`).join("\n")}`);
  });

  it("warns that instance metadata tags are off (the exclusion tag cannot be read), and installs", async () => {
    const instanceId = "i-0c0000000000000c1";
    await addInstance(instanceId);
    await putAgentConfig(await activeEnrollmentToken(database.db, keyring, organizationId));
    const result = await install(
      instanceId,
      linuxScript({}, { key: "xdr:monitor", value: "false" }),
      {},
      {
        metadata: metadataOf(instanceId, { tags: { "xdr:monitor": "false" }, metadataTags: false }),
      },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("mini-xdr: instance metadata tags are off, so the exclusion tag xdr:monitor cannot be read");
  });

  it("stops before downloading anything when the configuration parameter cannot be read", async () => {
    const instanceId = "i-0123456789abcdef0";
    const before = server!.requests.length;
    const result = await install(instanceId, linuxScript({ ConfigParameterName: `/mini-xdr/${slug}/no-such-parameter` }));
    expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).not.toBe(0);
    expect(result.stderr).toContain("ParameterNotFound");
    expect(server!.requests.slice(before)).toEqual([]);
    expect(existsSync(join(result.installDir, "bin/xdr-agent"))).toBe(false);
    expect(await auditOf(instanceId)).toEqual([]);
  });
});

describe("the agent install document's Windows step", () => {
  const parameterName = resourceNames("mini-corp").parameterName;
  const agentPublicBaseUrl = "https://agents.mini-xdr.example";
  const doc = buildAgentInstallDocument({ parameterName, agentPublicBaseUrl, agentVersion: AGENT_VERSION });
  const parameters = Object.fromEntries(Object.entries(doc.parameters).map(([name, p]) => [name, p.default]));
  const windows = doc.mainSteps.find((step) => step.action === "aws:runPowerShellScript");
  const lines = windows?.inputs.runCommand ?? [];
  const indexOf = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line));

  it("is a PowerShell step for Windows only, next to a shell step for Linux only", () => {
    expect(doc.schemaVersion).toBe("2.2");
    expect(doc.mainSteps.map((step) => [step.action, step.precondition])).toEqual([
      ["aws:runShellScript", { StringEquals: ["platformType", "Linux"] }],
      ["aws:runPowerShellScript", { StringEquals: ["platformType", "Windows"] }],
    ]);
    expect(Object.keys(doc.parameters).sort()).toEqual(["AgentBaseUrl", "AgentVersion", "ConfigParameterName", "ExcludeTagKey", "ExcludeTagValue"]);
  });

  it("stops on the first error, reads the SecureString decrypted, downloads over HTTPS, enrolls and checks the exit code", () => {
    expect(lines[0]).toBe("$ErrorActionPreference = 'Stop'");
    const read = indexOf(/^\$config = \(Get-SSMParameter -Name '\{\{ ConfigParameterName \}\}' -WithDecryption \$true\)\.Value$/);
    const write = indexOf(/^Set-Content -Path \(Join-Path \$configDir 'agent\.json'\) -Value \$config\b/);
    const download = indexOf(
      /^Invoke-WebRequest -UseBasicParsing -Uri '\{\{ AgentBaseUrl \}\}\/agent\/windows\/amd64\/\{\{ AgentVersion \}\}\/xdr-agent\.exe' -OutFile "\$agent\.new"$/,
    );
    // Downloaded beside the agent and moved over it: a running agent's file is replaced, not written into.
    const replace = indexOf(/^Move-Item -Force -Path "\$agent\.new" -Destination \$agent$/);
    expect(replace).toBe(download + 1);
    const enroll = indexOf(
      /^& \$agent enroll --config \(Join-Path \$configDir 'agent\.json'\) --identity-document \(Join-Path \$configDir 'identity-document'\) --identity-signature \(Join-Path \$configDir 'identity-signature'\) --credential-file \(Join-Path \$configDir 'agent\.credential'\)$/,
    );
    const check = indexOf(/^if \(\$LASTEXITCODE -ne 0\) \{ throw ".*" \}$/);
    expect({ read, write, download, enroll, check }).toEqual({
      read: expect.any(Number),
      write: expect.any(Number),
      download: expect.any(Number),
      enroll: expect.any(Number),
      check: expect.any(Number),
    });
    for (const index of [read, write, download, enroll, check]) expect(index).toBeGreaterThan(0);
    expect(read).toBeLessThan(write);
    expect(write).toBeLessThan(download);
    expect(download).toBeLessThan(enroll);
    expect(check).toBe(enroll + 1);

    const rendered = renderStep(windows!, parameters);
    expect(rendered).toContain(`-Uri '${agentPublicBaseUrl}/agent/windows/amd64/${AGENT_VERSION}/xdr-agent.exe'`);
    expect(rendered).toMatch(/-Uri 'https:\/\//);
    expect(rendered).toContain(`Get-SSMParameter -Name '${parameterName}' -WithDecryption $true`);
  });

  it("takes an IMDSv2 token first, failing with a clear message off EC2, and hands the agent the identity document and signature byte for byte", () => {
    const token = indexOf(
      /^try \{ \$imdsToken = Invoke-RestMethod .*-Method Put .*\/latest\/api\/token" .*\} catch \{ throw "mini-xdr: the EC2 instance metadata service \(IMDSv2\) did not answer at \$\{imds\}: the agent enrolls only on an EC2 instance.*" \}$/,
    );
    const identity = indexOf(
      /^foreach \(\$part in 'document', 'signature'\) \{ .*\/latest\/dynamic\/instance-identity\/\$part" -Headers @\{ 'X-aws-ec2-metadata-token' = \$imdsToken \}\)\.Content; \[System\.IO\.File\]::WriteAllText\(\(Join-Path \$configDir "identity-\$part"\), \$text\) \}$/,
    );
    const read = indexOf(/\(Get-SSMParameter -Name/);
    const enroll = indexOf(/^& \$agent enroll /);
    expect({ token, identity }).toEqual({ token: expect.any(Number), identity: expect.any(Number) });
    expect(token).toBeGreaterThan(0);
    expect(token).toBeLessThan(read);
    expect(identity).toBeGreaterThan(read);
    expect(identity).toBeLessThan(enroll);
  });

  it("first checks the exclusion tag from instance metadata (IMDSv2) and exits 0 without installing when it is set", () => {
    const excluding = buildAgentInstallDocument({
      parameterName,
      agentPublicBaseUrl,
      agentVersion: AGENT_VERSION,
      exclusionTag: { key: "xdr:monitor", value: "false" },
    });
    const step = excluding.mainSteps.find((s) => s.action === "aws:runPowerShellScript")!;
    const steps = step.inputs.runCommand;
    const token = steps.findIndex((line) => line.includes("-Method Put") && line.includes("/latest/api/token"));
    const skip = steps.findIndex((line) => /-eq \$excludeValue\) \{ .*exit 0 \}$/.test(line));
    const read = steps.findIndex((line) => line.includes("(Get-SSMParameter -Name"));
    const tagRead = steps.findIndex((line) => line.includes("/latest/meta-data/tags/instance/$excludeKey"));
    expect(token).toBeGreaterThan(0);
    expect(tagRead).toBeGreaterThan(token);
    expect(steps[tagRead]).toContain("-Headers @{ 'X-aws-ec2-metadata-token' = $imdsToken }");
    expect(steps[tagRead]).toContain("catch { $tagValue = $null }");
    expect(skip).toBeGreaterThan(tagRead);
    expect(read).toBeGreaterThan(skip);
    const rendered = renderStep(step, Object.fromEntries(Object.entries(excluding.parameters).map(([name, p]) => [name, p.default])));
    expect(rendered).toContain("$excludeKey = 'xdr:monitor'");
    expect(rendered).toContain("$excludeValue = 'false'");
    expect(excluding.parameters.ExcludeTagKey!.allowedPattern).not.toContain("'");
    expect(new RegExp(excluding.parameters.ExcludeTagValue!.allowedPattern).test("x'; Remove-Item C:\\")).toBe(false);
  });

  it("leaves no placeholder once rendered and never carries the configuration or the token inline", () => {
    const rendered = renderStep(windows!, parameters);
    expect(rendered).not.toMatch(/\{\{.*?\}\}/);
    // Single-quoted PowerShell strings and braces are balanced on every line (a rendered value cannot break out).
    for (const line of rendered.split("\n")) {
      expect((line.match(/'/g) ?? []).length % 2, line).toBe(0);
      expect((line.match(/\{/g) ?? []).length, line).toBe((line.match(/\}/g) ?? []).length);
    }
    const whole = JSON.stringify(doc);
    for (const secret of ["mxdr-enroll", "enrollmentToken", "enrollment_token", "backendUrl", "tenantId"]) {
      expect(whole).not.toContain(secret);
    }
  });
});
