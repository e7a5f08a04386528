/**
 * The bootstrap role is checked before anything is stored: the platform must be able to assume it with the external
 * ID. moto 5.2.5 grants AssumeRole for any role ARN and ignores ExternalId conditions, so the refusal AWS gives when
 * the trust policy does not match cannot come from moto: a one-answer STS stand-in on 127.0.0.1 (set with the SDK's
 * standard AWS_ENDPOINT_URL_STS) replies as STS does (403 AccessDenied), and everything else is real (the verifier,
 * the route, the database). With moto behind it, the same AssumeRole passes. (Whether the role also answers WITHOUT
 * the external ID is test/integration/confused-deputy.test.ts's part.)
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { generateToken, hashToken } from "../../db/crypto";
import { verifyBootstrapRoleWithSts } from "../../services/integration/verify-bootstrap-role";
import { apiTokens, auditLog, integrationCredentials, organizations } from "../../db/schema";
import { startTestPlatform, type TestPlatform } from "../harness/platform";

const ACCOUNT = "310000000001";
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/MiniXdrBootstrap`;
const EXTERNAL_ID = `mxdr-ext-${randomBytes(12).toString("hex")}`;
const ACCESS_DENIED = `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::999999999999:role/MiniXdrPlatform is not authorized to perform: sts:AssumeRole on resource: ${ROLE_ARN}</Message></Error><RequestId>c2f1a3e4-0000-4000-8000-000000000000</RequestId></ErrorResponse>`;

let database: Database;
let service: TestPlatform | undefined;
let refusingSts: Server;
let refusingStsUrl: string;
const stsRequests: string[] = [];
const savedStsEndpoint = process.env.AWS_ENDPOINT_URL_STS;

beforeAll(async () => {
  service = await startTestPlatform({ onServerError: (message) => expect.fail(message) });
  ({ database } = service.platform);
  refusingSts = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      stsRequests.push(body);
      res.writeHead(403, { "content-type": "text/xml" });
      res.end(ACCESS_DENIED);
    });
  });
  await new Promise<void>((resolve) => refusingSts.listen(0, "127.0.0.1", resolve));
  refusingStsUrl = `http://127.0.0.1:${(refusingSts.address() as AddressInfo).port}`;
});

afterEach(() => {
  if (savedStsEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_STS;
  else process.env.AWS_ENDPOINT_URL_STS = savedStsEndpoint;
});

afterAll(async () => {
  await new Promise<void>((resolve) => refusingSts?.close(() => resolve()));
  await service?.stop();
});

const check = { roleArn: ROLE_ARN, externalId: EXTERNAL_ID, region: "us-east-1", sessionName: "mini-xdr-verify-test" };

describe("the bootstrap role check", () => {
  it("passes when STS (moto) lets the platform assume the role", async () => {
    expect(await verifyBootstrapRoleWithSts(check)).toEqual({ assumed: true });
  });

  it("reports STS's refusal, having asked for the role with the external ID", async () => {
    process.env.AWS_ENDPOINT_URL_STS = refusingStsUrl;
    const rejection = await verifyBootstrapRoleWithSts(check);
    expect(rejection).toEqual({
      assumed: false,
      denied: true,
      detail: expect.stringMatching(/^AccessDenied: .*not authorized to perform: sts:AssumeRole/),
    });
    const sent = new URLSearchParams(stsRequests.at(-1)!);
    expect({ action: sent.get("Action"), roleArn: sent.get("RoleArn"), externalId: sent.get("ExternalId") }).toEqual({
      action: "AssumeRole",
      roleArn: ROLE_ARN,
      externalId: EXTERNAL_ID,
    });
  });

  it("connecting AWS with a role STS refuses answers 422 naming the field in neutral words, and stores nothing", async () => {
    const { app } = service!;
    const slug = `refused-${randomBytes(3).toString("hex")}`;
    const [org] = await database.db.insert(organizations).values({ slug, name: slug, awsAccountId: ACCOUNT }).returning();
    const admin = generateToken("mxdr-admin");
    await database.db.insert(apiTokens).values({ tokenHash: hashToken(admin), scope: "platform_admin", name: "admin" });

    process.env.AWS_ENDPOINT_URL_STS = refusingStsUrl;
    const response = await app.request(`/v1/tenants/${slug}/integrations/aws`, {
      method: "PUT",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ bootstrap_role_arn: ROLE_ARN }),
    });
    const text = await response.text();
    expect(response.status).toBe(422);
    const body = JSON.parse(text);
    expect(body.error.code).toBe("credentials_rejected");
    expect(body.error.fields).toEqual([
      { field: "bootstrap_role_arn", message: expect.stringContaining("could not be assumed with the tenant's external ID") },
    ]);
    // STS's own words (the platform's identity, the request) stay in the server's log.
    expect(text).not.toMatch(/AccessDenied|not authorized|999999999999/);
    // The service asked with the tenant's generated external ID.
    expect(new URLSearchParams(stsRequests.at(-1)!).get("ExternalId")).toMatch(/^mxdr-ext_[\w-]{43}$/);
    expect(await database.db.select().from(integrationCredentials).where(eq(integrationCredentials.organizationId, org!.id))).toEqual([]);
    expect(await database.db.select().from(auditLog).where(eq(auditLog.organizationId, org!.id))).toEqual([]);
  });
});
