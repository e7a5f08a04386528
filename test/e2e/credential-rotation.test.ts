/**
 * Credentials key rotation through the running service: api/server.ts processes on a real PostgreSQL with
 * CREDENTIALS_KMS_KEY_ID naming a key in moto's KMS (reached through AWS_ENDPOINT_URL, as the service reaches AWS).
 *
 *   a. the service on KMS key A: a tenant connects AWS, gets a tenant token (with an Idempotency-Key), a webhook and a
 *      saved plan (approval required); every sealed value names A's data key
 *   b. a rolling deploy to KMS key B: a second process starts with B while the one on A keeps serving; the rotation
 *      runs in the background by itself; afterwards every sealed row names B's data key, and both processes (the one
 *      still on A included) read every row
 *   c. the tenant keeps working on key B: the saved plan, re-sealed, applied by an approved up
 *   d. GET/POST /v1/credentials/rotation: platform admin only (403 for a tenant token), 400 naming the field for bad
 *      input, 409 when asked to rotate to another key than the replica's own
 *   e. no secret (tokens, external ID, webhook secret, enrollment token, the data keys) in any row, response or log line
 */
import { randomBytes } from "node:crypto";
import { CreateKeyCommand, DecryptCommand, KMSClient } from "@aws-sdk/client-kms";
import { afterAll, describe, expect, it } from "vitest";
import { stopServer } from "../harness/service-process";
import { serviceUnderTest, type Replica } from "../harness/service-under-test";
import { newTenantRecord } from "../harness/tenants";
import { waitFor } from "../harness/wait-for";

const REGION = "us-east-1";
const suffix = randomBytes(3).toString("hex");
const tenant = newTenantRecord(`rot-${suffix}`);
const { slug, account } = tenant;
const kms = new KMSClient({ region: REGION });
let kmsKeyA: string;
let kmsKeyB: string;
let onKeyA: Replica;
let onKeyB: Replica;
let tenantToken: string;
let previewRunId: string;

afterAll(() => kms.destroy());
/** Each process has its own DATA_DIR and project dir; they share the database (and the state backend in its server). */
const service = serviceUnderTest({
  name: "rotation",
  workspace: "database-state",
  encryptionKey: null,
  startAtSetUp: false,
  env: { CREDENTIALS_KMS_REGION: REGION, CREDENTIALS_KMS_REFRESH_SECONDS: "1", WEBHOOK_PLATFORM_ALLOW_LOOPBACK: "true" },
  setUp: async () => {
    kmsKeyA = (await kms.send(new CreateKeyCommand({ Description: "mini-xdr credentials A" }))).KeyMetadata!.KeyId!;
    kmsKeyB = (await kms.send(new CreateKeyCommand({ Description: "mini-xdr credentials B" }))).KeyMetadata!.KeyId!;
    onKeyA = await service.startReplica("on key A", { CREDENTIALS_KMS_KEY_ID: kmsKeyA });
  },
});
const { replicas, responses } = service;
/** Every value that must never leave the service in clear. */
const secrets: string[] = [service.adminToken, "(the external ID, once generated)", service.passphrase!];

/** The sealed columns, and the key id each envelope names. */
const SEALED = [
  ["integration_credentials", "credential_data"],
  ["tenant_external_ids", "external_id_sealed"],
  ["enrollment_tokens", "token_sealed"],
  ["run_plans", "plan_sealed"],
  ["webhooks", "secret_sealed"],
  ["idempotency_keys", "response_body"],
] as const;

/** How many sealed values each key id seals, over all sealed columns. */
async function sealedKeyIds(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const [table, column] of SEALED) {
    const rows = await service.sql.unsafe<{ key_id: string; n: number }[]>(
      `select split_part("${column}", ':', 2) as key_id, count(*)::int as n from "${table}" where "${column}" is not null group by 1`,
    );
    for (const row of rows) counts.set(row.key_id, (counts.get(row.key_id) ?? 0) + row.n);
  }
  return counts;
}

const dataKeyOf = async (kmsKeyId: string) => {
  const [row] = await service.sql<{ id: string }[]>`select id from credential_data_keys where kms_key_id = ${kmsKeyId}`;
  return row!.id;
};

describe("credentials key rotation on the running service, KMS on the emulator", () => {
  it("a. on KMS key A: a tenant connects AWS and gets a token, a webhook and a saved plan, all sealed with A's data key", async () => {
    await onKeyA.onboard(tenant, { regions: [REGION], settings: { require_approval: true } });
    secrets[1] = tenant.externalId;

    // Its answer (the token, shown once) is kept sealed for a retry with the same Idempotency-Key.
    const token = await onKeyA.call("POST", `/v1/tenants/${slug}/tokens`, {
      body: { name: "tenant admin" },
      headers: { "idempotency-key": `tok-${suffix}` },
    });
    expect(token.status, token.text).toBe(201);
    tenantToken = token.body.token;
    secrets.push(tenantToken);

    // A platform webhook: only those may point at loopback (WEBHOOK_PLATFORM_ALLOW_LOOPBACK).
    const webhook = await onKeyA.call("POST", "/v1/webhooks", { body: { url: "http://127.0.0.1:9/hook", events: ["run.succeeded"] } });
    expect(webhook.status, webhook.text).toBe(201);
    secrets.push(webhook.body.secret);

    const preview = await onKeyA.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "preview" } });
    expect(preview.status, preview.text).toBe(202);
    previewRunId = preview.body.run_id;
    expect((await onKeyA.settledRun(slug, previewRunId)).status).toBe("succeeded");

    const dataKeyA = await dataKeyOf(kmsKeyA);
    const sealed = await sealedKeyIds();
    expect([...sealed.keys()]).toEqual([dataKeyA]);
    expect(sealed.get(dataKeyA)).toBe(6); // credential, external ID, enrollment token, plan, webhook secret, the token's stored answer

    const status = await onKeyA.call("GET", "/v1/credentials/rotation");
    expect(status.status, status.text).toBe(200);
    expect(status.body).toMatchObject({
      current_key_id: dataKeyA,
      target_key_id: dataKeyA,
      requested_by: "system:startup",
      state: "complete",
      remaining_total: 0,
    });
  });

  it("b (after a). a rolling deploy to KMS key B: rows are re-sealed in the background to B's data key, readable throughout by both processes", async () => {
    const dataKeyA = await dataKeyOf(kmsKeyA);
    onKeyB = await service.startReplica("on key B", { CREDENTIALS_KMS_KEY_ID: kmsKeyB });
    const dataKeyB = await dataKeyOf(kmsKeyB);
    expect(dataKeyB).not.toBe(dataKeyA);

    const first = await onKeyB.call("GET", "/v1/credentials/rotation");
    expect(first.status, first.text).toBe(200);
    expect(first.body).toMatchObject({ current_key_id: dataKeyB, target_key_id: dataKeyB, requested_by: "system:startup" });

    // Meanwhile both processes keep reading the credential (its external ID shows masked only after decryption).
    const readers = [onKeyA, onKeyB];
    let reads = 0;
    const done = await waitFor("the rotation to complete", async () => {
      for (const replica of readers) {
        const aws = await replica.call("GET", `/v1/tenants/${slug}/integrations/aws`);
        expect(aws.status, aws.text).toBe(200);
        reads++;
      }
      const status = await onKeyB.call("GET", "/v1/credentials/rotation");
      return status.body.completed_at !== null && status.body.state === "complete" ? status.body : undefined;
    });
    expect(reads).toBeGreaterThan(2);
    expect(done).toMatchObject({ target_key_id: dataKeyB, remaining_total: 0, remaining_by_key: [], rows_resealed: 6 });
    expect(done.remaining).toEqual({
      integration_credentials: 0,
      tenant_external_ids: 0,
      enrollment_tokens: 0,
      run_plans: 0,
      webhooks: 0,
      idempotency_keys: 0,
    });
    expect([...(await sealedKeyIds())]).toEqual([[dataKeyB, 6]]);
    const [credential] = await service.sql<{ encryption_key_id: string }[]>`select encryption_key_id from integration_credentials`;
    expect(credential!.encryption_key_id).toBe(dataKeyB);
    // The log says so, naming keys by id only.
    const logs = onKeyA.server.stderr() + onKeyB.server.stderr();
    expect(logs).toContain(`credentials rotation to key ${dataKeyB} complete: 6 row(s) re-sealed`);

    // The process still on key A reads rows sealed under B: the credential, and the token's stored answer replayed.
    for (const replica of [onKeyA, onKeyB]) {
      const replay = await replica.call("POST", `/v1/tenants/${slug}/tokens`, {
        body: { name: "tenant admin" },
        headers: { "idempotency-key": `tok-${suffix}` },
      });
      expect(replay.status, replay.text).toBe(201);
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(replay.body.token).toBe(tenantToken);
    }
    const tenantView = await onKeyA.call("GET", `/v1/tenants/${slug}/integrations/aws`, { token: tenantToken });
    expect(tenantView.status, tenantView.text).toBe(200);
  });

  it("c (after a, b). the tenant still works on key B: the approved up applies the re-sealed plan with the re-sealed credential and enrollment token", async () => {
    const up = await onKeyB.call("POST", `/v1/tenants/${slug}/runs`, { body: { kind: "up", plan_run_id: previewRunId } });
    expect(up.status, up.text).toBe(202);
    const run = await onKeyB.settledRun(slug, up.body.run_id);
    expect(run.error).toBeNull();
    expect(run.status).toBe("succeeded");
    expect(run.change_summary).toMatchObject({ create: expect.any(Number) });
    // What it sealed on the way (nothing new here) still names B's data key only.
    expect([...(await sealedKeyIds()).keys()]).toEqual([await dataKeyOf(kmsKeyB)]);
  });

  it("d (after a, b). GET/POST /v1/credentials/rotation: platform admin only; bad input is a 400 naming the field; another key than the replica's is a 409", async () => {
    const dataKeyA = await dataKeyOf(kmsKeyA);
    const dataKeyB = await dataKeyOf(kmsKeyB);
    for (const [method, body] of [
      ["GET", undefined],
      ["POST", {}],
    ] as const) {
      const refused = await onKeyB.call(method, "/v1/credentials/rotation", { token: tenantToken, body });
      expect(refused.status, refused.text).toBe(403);
      expect(refused.body.error.code).toBe("forbidden");
    }
    expect((await onKeyB.call("GET", "/v1/credentials/rotation", { token: null })).status).toBe(401);

    const badKey = await onKeyB.call("POST", "/v1/credentials/rotation", { body: { key_id: "not a key id!" } });
    expect(badKey.status, badKey.text).toBe(400);
    expect(badKey.body.error.fields).toEqual([{ field: "key_id", message: expect.stringContaining("key id") }]);
    const unknownField = await onKeyB.call("POST", "/v1/credentials/rotation", { body: { key: dataKeyB } });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.fields).toEqual([{ field: "key", message: "is not a known field" }]);
    const noBody = await onKeyB.call("POST", "/v1/credentials/rotation");
    expect(noBody.status).toBe(400);
    expect(noBody.body.error.fields).toEqual([{ field: "body", message: expect.any(String) }]);
    const wrongType = await onKeyB.call("POST", "/v1/credentials/rotation", { body: { key_id: 7 } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error.fields).toEqual([{ field: "key_id", message: expect.stringContaining("string") }]);

    // The process still on key A is asked to rotate to B: it refuses rather than rotate back to A.
    const mismatch = await onKeyA.call("POST", "/v1/credentials/rotation", { body: { key_id: dataKeyB } });
    expect(mismatch.status, mismatch.text).toBe(409);
    expect(mismatch.body.error).toMatchObject({
      code: "key_mismatch",
      current_key_id: dataKeyA,
      fields: [{ field: "key_id", message: expect.any(String) }],
    });

    const started = await onKeyB.call("POST", "/v1/credentials/rotation", { body: { key_id: dataKeyB } });
    expect(started.status, started.text).toBe(202);
    // Nothing is left to re-seal, so the requested pass may already have completed by the time the answer is built.
    expect(started.body).toMatchObject({ current_key_id: dataKeyB, target_key_id: dataKeyB, state: "complete", remaining_total: 0 });
    expect(started.body.requested_by).toMatch(/^token:\d+$/);
    await waitFor("the requested pass to complete", async () => (await onKeyB.call("GET", "/v1/credentials/rotation")).body.completed_at !== null);
    const [audit] = await service.sql<{ action: string }[]>`select action from audit_log where action = 'credentials.rotation.start'`;
    expect(audit).toEqual({ action: "credentials.rotation.start" });
  });

  it("e (after a–d). no secret in any row, response or log line: tokens, external ID, webhook secret, enrollment token, the data keys", async () => {
    for (const replica of replicas) expect(await stopServer(replica.server, "SIGTERM")).toBe(0);
    for (const row of await service.sql<{ encrypted_key: string }[]>`select encrypted_key from credential_data_keys`) {
      const plaintext = Buffer.from((await kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from(row.encrypted_key, "base64") }))).Plaintext!);
      secrets.push(plaintext.toString("base64"), plaintext.toString("base64url"), plaintext.toString("hex"));
    }
    // Enrollment tokens are only ever stored hashed or sealed: their prefix appears nowhere in clear.
    const tables = await service.sql<{ table_name: string }[]>`select table_name from information_schema.tables where table_schema = 'public'`;
    let dump = "";
    for (const { table_name } of tables) dump += JSON.stringify(await service.sql.unsafe(`select * from "${table_name}"`));
    expect(dump).toContain(account); // the dump is real
    expect(dump).not.toContain("mxdr-enroll_");
    for (const secret of secrets) expect(dump).not.toContain(secret);
    // The external ID is the tenant's to read (GET .../integrations/aws/external-id, for its role's trust policy); no other answer carries it.
    const allResponses = responses.filter((text) => !text.includes('"bootstrap_role_name"')).join("\n");
    for (const secret of [service.adminToken, tenant.externalId, service.passphrase!, ...secrets.slice(5)])
      expect(allResponses).not.toContain(secret);
    const logs = replicas.map((replica) => replica.server.stdout() + replica.server.stderr()).join("\n");
    expect(logs).toContain("credentials rotation");
    for (const secret of secrets) expect(logs).not.toContain(secret);
    expect(logs).not.toContain("mxdr-enroll_");
  });
});
