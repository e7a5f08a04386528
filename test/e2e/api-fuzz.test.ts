/**
 * The API contract, held by a fuzzer: schemathesis (pinned, .tools/schemathesis-venv, from scripts/toolchain.sh) runs
 * against the served /openapi.json of the real service process, once with a platform-admin token and once with a
 * tenant token, with all four phases (examples, coverage, fuzzing, and the stateful phase that follows the document's
 * links from a created tenant to its reads, patch, runs), a fixed seed, a bounded example count and EVERY check
 * (`--checks all`): any 5xx but the declared 501 and 503, any undeclared status, any schema-valid request refused as
 * malformed (400, 413), any schema-violating request accepted, any response, header or content type not matching the
 * document, any method a path lacks not answered 405 with Allow, a created resource not found, a request without
 * the token accepted.
 *
 * The service runs with RUN_WORKER=false (and PLATFORM_PRINCIPAL_ARN set): run requests are checked and queued as in
 * production (202, 409, 422 are all reachable) but no worker picks them up, so no Pulumi engine starts and nothing
 * leaves 127.0.0.1; answering 503 to every run instead (no PLATFORM_PRINCIPAL_ARN) would leave the run-request checks
 * unfuzzed. AWS calls (AssumeRole checks, the bootstrap template's bucket) go to moto through AWS_ENDPOINT_URL.
 * The three server-sent-event streams are fuzzed like every other operation: each connection ends after
 * EVENT_STREAM_MAX_SECONDS (1 s here; clients reconnect), and each event is checked against the document's itemSchema.
 * No operation is excluded: a new route passes by declaring what it enforces and answers.
 *
 * Beside the fuzzer, the same server shows: the table of bad inputs from issue 10, each refused naming its field; a
 * 413 followed by two more requests on the same keep-alive connection; 405 with Allow; /docs and every asset it loads
 * served by the service alone.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { DOCS_CONTENT_SECURITY_POLICY } from "../../api/docs-page";
import { REPO_ROOT } from "../harness/moto";
import { serviceUnderTest } from "../harness/service-under-test";

const SCHEMATHESIS = join(REPO_ROOT, ".tools", "schemathesis-venv", "bin", "schemathesis");
const SEED = 20261129;
const MAX_EXAMPLES = 40;
const PLATFORM_PRINCIPAL = "arn:aws:iam::999999999999:role/MiniXdrPlatform";
const ACCOUNT = "123456789012";
const BUCKET = `mxdr-fuzz-templates-${randomBytes(3).toString("hex")}`;

const slug = `fuzz-${randomBytes(3).toString("hex")}`;
let workDir = "";
let tenantToken = "";

const service = serviceUnderTest({
  name: "fuzz",
  workspace: "data-dir",
  platformPrincipalArn: PLATFORM_PRINCIPAL,
  env: {
    BOOTSTRAP_TEMPLATE_BUCKET: BUCKET,
    RUN_WORKER: "false",
    // Every event stream ends after this long (a client reconnects): a queued run's events, which without a worker
    // never end, and the progress stream are fuzzed like any other route.
    EVENT_STREAM_MAX_SECONDS: "1",
    // The fuzzer sends thousands of requests without a token on purpose, all from 127.0.0.1: the failure limiter
    // (pinned in test/e2e/hostile-tenant.test.ts) would answer them 429 instead of the 401 the contract declares.
    AUTH_FAILURE_LIMIT: "1000000",
  },
  beforeServerStart: async () => {
    workDir = await mkdtemp(join(tmpdir(), "mxdr-fuzz-"));
    await new S3Client({ region: "us-east-1" }).send(new CreateBucketCommand({ Bucket: BUCKET }));
  },
  setUp: async () => {
    await service.createTenant({ slug, account: ACCOUNT }, { name: "Fuzz Corp" });
    tenantToken = await service.issueToken(slug, "fuzz");
  },
});
const { call, adminToken } = service;

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

// -------------------------------------------------------------------------------------------------------------------
// The fuzzer

interface FuzzResult {
  code: number | null;
  output: string;
  /** Test cases (requests) schemathesis generated and sent. */
  requests: number;
  /** Failures by check name (every check that ran appears, with its count). */
  failures: Record<string, number>;
}

/** Every check schemathesis 4.32.5 has (`--checks all`): each is counted, and each must count zero failures. */
const CHECKS = [
  "not_a_server_error",
  "status_code_conformance",
  "content_type_conformance",
  "response_headers_conformance",
  "response_schema_conformance",
  "negative_data_rejection",
  "positive_data_acceptance",
  "missing_required_header",
  "unsupported_method",
  "allow_header_conformance",
  "use_after_free",
  "ensure_resource_availability",
  "ignored_auth",
  "object_level_authorization",
];

/**
 * - 501 (azure, gcp) and 503 (a setting the service lacks) are the server statuses the contract allows, and only where
 *   they are declared: status_code_conformance fails either on any other route.
 * - A schema-valid request may be refused for the state it meets, never for its form: 409 (conflicts with the current
 *   state) and 422 (well formed, but the tenant or the outside world cannot carry it out: the tenant is not ready,
 *   names tenants that do not exist, AWS refused the role) are accepted answers to valid data besides schemathesis'
 *   defaults; 400 and 413 are not: what the server refuses as malformed, the schema must state.
 * - The stateful phase follows the links the document declares, not links schemathesis infers by name (those put a
 *   token's integer id into a fleet run's uuid).
 */
const SCHEMATHESIS_CONFIG = `
[checks.not_a_server_error]
expected-statuses = ["1xx", "2xx", "3xx", "4xx", "501", "503"]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

[phases.stateful.inference]
algorithms = []
`;

async function runSchemathesis(label: string, token: string): Promise<FuzzResult> {
  const config = join(workDir, `${label}.toml`);
  await writeFile(config, SCHEMATHESIS_CONFIG);
  const ndjson = join(workDir, `${label}.ndjson`);
  const args = [
    "--config-file",
    config,
    "run",
    `${service.server.baseUrl}/openapi.json`,
    "--header",
    `Authorization: Bearer ${token}`,
    "--checks",
    "all",
    "--phases",
    "examples,coverage,fuzzing,stateful",
    "--mode",
    "all",
    "--seed",
    String(SEED),
    "--max-examples",
    String(MAX_EXAMPLES),
    "--generation-database",
    "none",
    "--workers",
    "1",
    "--request-timeout",
    "30",
    "--suppress-health-check",
    "all",
    "--report",
    "ndjson",
    "--report-ndjson-path",
    ndjson,
    "--output-sanitize",
    "true",
    "--no-color",
  ];
  const child = spawn(SCHEMATHESIS, args, { cwd: workDir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", resolve);
  });
  return { code, output, ...(await countsFrom(ndjson)) };
}

/** Requests sent and failures by check, from schemathesis' ndjson event stream. */
async function countsFrom(path: string): Promise<{ requests: number; failures: Record<string, number> }> {
  const failures: Record<string, number> = Object.fromEntries(CHECKS.map((check) => [check, 0]));
  const failed = new Set<string>();
  let requests = 0;
  if (!existsSync(path)) return { requests, failures };
  if (process.env.FUZZ_KEEP_REPORT) await writeFile(join(process.env.FUZZ_KEEP_REPORT, path.split("/").pop()!), await readFile(path));
  for (const line of (await readFile(path, "utf8")).split("\n")) {
    if (!line.trim()) continue;
    const event = JSON.parse(line) as Record<string, any>;
    const scenario = event.ScenarioFinished;
    if (!scenario) continue;
    for (const item of Object.values((scenario.recorder?.interactions ?? {}) as Record<string, unknown>)) if (item) requests++;
    // A failure is reported again by the scenario that reproduces it: count each (test case, check) once.
    for (const [caseId, checks] of Object.entries((scenario.recorder?.checks ?? {}) as Record<string, { name: string; status: string }[]>)) {
      for (const check of checks) {
        if (check.status.toLowerCase() !== "failure" || failed.has(`${caseId}/${check.name}`)) continue;
        failed.add(`${caseId}/${check.name}`);
        failures[check.name] = (failures[check.name] ?? 0) + 1;
      }
    }
  }
  return { requests, failures };
}

describe("the contract under schemathesis", () => {
  it.each([
    ["platform admin", () => adminToken],
    ["tenant", () => tenantToken],
  ])(
    "holds with a %s token: no failure of any check",
    async (label, token) => {
      expect(existsSync(SCHEMATHESIS), `${SCHEMATHESIS} is missing: run bash scripts/toolchain.sh`).toBe(true);
      const result = await runSchemathesis(label.replace(/\W+/g, "-"), token());
      process.stdout.write(
        `schemathesis (${label} token, seed ${SEED}, at most ${MAX_EXAMPLES} examples per operation): ${result.requests} requests; failures by check: ${JSON.stringify(result.failures)}\n`,
      );
      expect(result.requests, result.output.slice(-4000)).toBeGreaterThan(500);
      expect(result.failures, result.output.slice(-20000)).toEqual(Object.fromEntries(CHECKS.map((check) => [check, 0])));
      expect(result.code, result.output.slice(-20000)).toBe(0);
      // The server never logged an unexpected error while being fuzzed.
      expect(service.server.stderr()).not.toMatch(/^error: /m);
      // Every check on every operation, the three event streams included, each stream a second: several minutes.
    },
    1_200_000,
  );
});

// -------------------------------------------------------------------------------------------------------------------
// The bad inputs of issue 10, each refused naming its field

describe("bad input is refused with the field named, once, with a useful message", () => {
  const table: { input: string; method: string; path: () => string; body?: unknown; raw?: string; field: string; message: RegExp }[] = [
    { input: 'slug "null"', method: "POST", path: () => "/v1/tenants", body: { slug: "null", name: "x" }, field: "slug", message: /reserved/ },
    { input: 'slug "admin"', method: "POST", path: () => "/v1/tenants", body: { slug: "admin", name: "x" }, field: "slug", message: /reserved/ },
    {
      input: "agent URL https://127.0.0.1:8443/../../",
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { agent_public_base_url: "https://127.0.0.1:8443/../../" } },
      field: "integration_settings.agent_public_base_url",
      message: /\. or \.\. path segments/,
    },
    {
      input: 'agent URL "https://"',
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { agent_public_base_url: "https://" } },
      field: "integration_settings.agent_public_base_url",
      message: /host/,
    },
    {
      input: "agent URL with user info",
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { agent_public_base_url: "https://bob:pw@agents.example.com" } },
      field: "integration_settings.agent_public_base_url",
      message: /user name or password/,
    },
    {
      input: "agent URL with a query",
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { agent_public_base_url: "https://agents.example.com/x?y=1" } },
      field: "integration_settings.agent_public_base_url",
      message: /query or fragment/,
    },
    {
      input: "agent URL not in normal form (trailing slash)",
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { agent_public_base_url: "https://Agents.example.com/" } },
      field: "integration_settings.agent_public_base_url",
      message: /normal form "https:\/\/agents\.example\.com"/,
    },
    {
      input: 'region "us-east-9"',
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { home_region: "us-east-9" } },
      field: "integration_settings.home_region",
      message: /AWS region code.*"us-east-9" is not one/,
    },
    {
      input: 'regions ["us-east-1","us-east-1"]',
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { regions: ["us-east-1", "us-east-1"] } },
      field: "integration_settings.regions",
      message: /each region once; repeats "us-east-1"/,
    },
    {
      input: "aws_account_id 123456789012 (a number)",
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { aws_account_id: 123456789012 } },
      field: "integration_settings.aws_account_id",
      message: /^must be a string, got integer$/,
    },
    {
      input: 'regions "us-east-1" (a string)',
      method: "PATCH",
      path: () => `/v1/tenants/${slug}`,
      body: { integration_settings: { regions: "us-east-1" } },
      field: "integration_settings.regions",
      message: /^must be an array, got string$/,
    },
    { input: "body []", method: "POST", path: () => "/v1/tenants", raw: "[]", field: "body", message: /^must be an object, got array$/ },
    { input: "body null", method: "POST", path: () => "/v1/tenants", raw: "null", field: "body", message: /^must be an object, got null$/ },
    { input: "PATCH without a body", method: "PATCH", path: () => `/v1/tenants/${slug}`, field: "body", message: /is required/ },
    { input: "PATCH with an empty JSON body", method: "PATCH", path: () => `/v1/tenants/${slug}`, raw: "", field: "body", message: /is required/ },
  ];

  it.each(table)("$input -> 400 naming $field", async (row) => {
    const response = await call(row.method, row.path(), { body: row.body, raw: row.raw });
    expect(response.status, response.text).toBe(400);
    const fields = response.body.error.fields as { field: string; message: string }[];
    expect(
      fields.filter((field) => field.field === row.field),
      response.text,
    ).toHaveLength(1);
    expect(fields.find((field) => field.field === row.field)!.message).toMatch(row.message);
    process.stdout.write(`bad input: ${row.input} -> ${response.status} ${row.field}: ${fields.find((f) => f.field === row.field)!.message}\n`);
  });

  it("stores a URL exactly as sent when it is in normal form", async () => {
    const url = "https://127.0.0.1:8443/agents";
    const patched = await call("PATCH", `/v1/tenants/${slug}`, { body: { integration_settings: { agent_public_base_url: url } } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body.integration_settings.agent_public_base_url).toBe(url);
    expect((await call("GET", `/v1/tenants/${slug}`)).body.integration_settings.agent_public_base_url).toBe(url);
  });
});

// -------------------------------------------------------------------------------------------------------------------
// Early answers and the connection

/** One request on `agent` (keep-alive), the body sent in one write; resolves with status, headers and text. */
function request(
  agent: http.Agent,
  baseUrl: string,
  options: { method: string; path: string; body?: string | Buffer; headers?: Record<string, string> },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; socket: unknown }> {
  return new Promise((resolve, reject) => {
    const url = new URL(options.path, baseUrl);
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: options.method,
        path: url.pathname,
        headers: { authorization: `Bearer ${adminToken}`, ...options.headers },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text, socket: req.socket }));
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

describe("early answers leave the connection usable or close it cleanly", () => {
  it("413 for an oversized body says Connection: close, and the next two requests on the keep-alive agent succeed", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const base = service.server.baseUrl;
      const warm = await request(agent, base, { method: "GET", path: "/v1/tenants" });
      expect(warm.status).toBe(200);
      expect(warm.headers.connection).toBe("keep-alive");

      const huge = Buffer.from(JSON.stringify({ slug: "huge-body", name: "x".repeat(2 * 1024 * 1024) }));
      const refused = await request(agent, base, {
        method: "POST",
        path: "/v1/tenants",
        body: huge,
        headers: { "content-type": "application/json" },
      });
      expect(refused.status).toBe(413);
      expect(refused.headers.connection).toBe("close");
      expect(JSON.parse(refused.text).error.code).toBe("payload_too_large");

      const first = await request(agent, base, { method: "GET", path: `/v1/tenants/${slug}` });
      const second = await request(agent, base, { method: "GET", path: "/v1/tenants" });
      expect(first.status, first.text).toBe(200);
      expect(second.status, second.text).toBe(200);
      // The closed connection was not reused: the two later requests share a fresh one.
      expect(first.socket).toBe(second.socket);
      expect(first.socket).not.toBe(refused.socket);
    } finally {
      agent.destroy();
    }
  });

  it("400, 401, 404 and 405 keep the connection open for the next request", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const base = service.server.baseUrl;
      const answers = [
        await request(agent, base, { method: "POST", path: "/v1/tenants", body: "{not json", headers: { "content-type": "application/json" } }),
        await request(agent, base, { method: "GET", path: "/v1/tenants", headers: { authorization: "Bearer nope" } }),
        await request(agent, base, { method: "GET", path: "/v1/nothing-here" }),
        await request(agent, base, { method: "DELETE", path: "/v1/tenants" }),
        await request(agent, base, { method: "GET", path: "/v1/tenants" }),
      ];
      expect(answers.map((answer) => answer.status)).toEqual([400, 401, 404, 405, 200]);
      for (const answer of answers) expect(answer.socket).toBe(answers[0]!.socket);
    } finally {
      agent.destroy();
    }
  });
});

// -------------------------------------------------------------------------------------------------------------------
// 405

describe("a method a path does not have", () => {
  it.each([
    ["DELETE", "/v1/tenants", "GET, HEAD, POST"],
    ["POST", () => `/v1/tenants/${slug}`, "GET, HEAD, PATCH"],
    ["POST", () => `/v1/tenants/${slug}/integrations/aws`, "DELETE, GET, HEAD, PUT"],
    ["DELETE", "/api/onboarding/v2/integrations/setup", "POST"],
    ["PUT", "/openapi.json", "GET, HEAD"],
    ["POST", "/docs", "GET, HEAD"],
  ] as const)("%s %s -> 405 with Allow: %s", async (method, path, allow) => {
    const response = await call(method, typeof path === "function" ? path() : path, { body: {} });
    expect(response.status, response.text).toBe(405);
    expect(response.headers.get("allow")).toBe(allow);
    expect(response.body.error.code).toBe("method_not_allowed");
  });
});

// -------------------------------------------------------------------------------------------------------------------
// /docs, offline

/**
 * Absolute URLs the served Swagger UI bundle carries as inert strings, never fetched by the page: XML namespaces,
 * JSON Schema / OpenAPI dialect identifiers, documentation and license links in messages and comments, the bases the
 * Markdown autolinker gives #hashtags and @mentions (links a reader may click, nothing loads them), the author's and
 * swagger.io's links, and the validator badge's URL, which our initializer turns off (validatorUrl: null, asserted).
 * Any other host fails the test: a new dependency that would load from a CDN shows up here.
 */
const INERT_HOSTS = new Set([
  "www.w3.org",
  "json-schema.org",
  "spec.openapis.org",
  "datatracker.ietf.org",
  "www.rfc-editor.org",
  "spdx.org",
  "github.com",
  "reactjs.org",
  "fb.me", // React's warning links
  "redux.js.org",
  "swagger.io",
  "validator.swagger.io",
  "twitter.com",
  "www.facebook.com",
  "www.tiktok.com",
  "instagram.com",
  "soundcloud.com",
  "vladimirgorej.com",
  "xn--9n2bp8q.com", // 실례.com, an IDN example in a comment
  "example.com", // documentation examples
  "basex", // `https://base${String(Math.random())}`: a throwaway base for resolving relative references, never fetched
]);

describe("/docs", () => {
  it("is served with every asset by the service itself; nothing loads from another host", async () => {
    const page = await fetch(`${service.server.baseUrl}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toBe(DOCS_CONTENT_SECURITY_POLICY);
    expect(DOCS_CONTENT_SECURITY_POLICY).toMatch(/default-src 'self'/);
    const html = await page.text();
    expect(html).not.toMatch(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i);

    const referenced = [...html.matchAll(/\s(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(referenced.length).toBeGreaterThanOrEqual(4);
    const scripts: string[] = [];
    for (const reference of referenced) {
      expect(reference, "a page asset must be a path on this service").toMatch(/^\/[^/]/);
      const asset = await fetch(`${service.server.baseUrl}${reference}`);
      expect(asset.status, reference).toBe(200);
      const type = asset.headers.get("content-type") ?? "";
      const body = Buffer.from(await asset.arrayBuffer());
      expect(body.length, reference).toBeGreaterThan(0);
      if (/javascript|css/.test(type)) {
        const text = body.toString("utf8");
        if (/javascript/.test(type)) scripts.push(text);
        if (/css/.test(type)) {
          for (const [, target] of text.matchAll(/url\(\s*["']?([^"')]+)/g))
            expect(target, `${reference} url()`).toMatch(/^(data:|#|\.?\/?[\w.-]+$)/);
          expect(text).not.toMatch(/@import/);
        }
        for (const [url] of text.matchAll(/https?:\/\/[^\s"'`)\\<>]+/g)) {
          const host = new URL(url.replace(/\$\{.*$/, "x")).hostname;
          expect(INERT_HOSTS.has(host), `${reference} carries ${url}`).toBe(true);
        }
      }
    }
    // The initializer points at our document and turns the swagger.io validator badge off.
    const initializer = scripts.find((script) => script.includes("SwaggerUIBundle({"));
    expect(initializer).toBeDefined();
    expect(initializer).toContain("validatorUrl: null");
    expect(html).toContain('data-openapi-url="/openapi.json"');
    expect((await fetch(`${service.server.baseUrl}/openapi.json`)).status).toBe(200);
    expect((await fetch(`${service.server.baseUrl}/docs/assets/package.json`)).status).toBe(404);
  });
});
