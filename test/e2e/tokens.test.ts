/**
 * API tokens as an operator manages them, through the service process (bundled and run as `npm start` does) on
 * 127.0.0.1 over a real PostgreSQL server: listed by metadata only, revoked (audited, at once, never by itself),
 * expiring, their last use recorded at most once a minute; and a new ADMIN_TOKEN revoking the previous one across a
 * restart while admin tokens created through the API stay. The service runs as behind one proxy (TRUSTED_PROXY_HOPS=1):
 * failed authentications count per client as that proxy saw it.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashToken } from "../../db/crypto";
import { DEFAULT_LIMITS } from "../../platform/config";
import { serviceUnderTest } from "../harness/service-under-test";
import { newTenantRecord } from "../harness/tenants";
import { waitFor } from "../harness/wait-for";

describe("API tokens", () => {
  const tenant = newTenantRecord(`tokens-${randomBytes(3).toString("hex")}`);
  const service = serviceUnderTest({
    name: "tokens",
    workspace: "data-dir",
    platformPrincipalArn: null,
    env: { TRUSTED_PROXY_HOPS: "1" },
    setUp: () => service.createTenant(tenant),
  });
  const { call } = service;
  const firstAdminToken = service.adminToken;

  const tokensPath = `/v1/tenants/${tenant.slug}/tokens`;
  const issue = async (body: Record<string, unknown>, path = tokensPath) => {
    const created = await call("POST", path, { body });
    expect(created.status, created.text).toBe(201);
    return created.body as { id: number; token: string; expires_at: string | null; scope: string; tenant: string | null };
  };
  const listed = async (id: number, path = tokensPath) => {
    const list = await call("GET", `${path}?limit=200`);
    expect(list.status, list.text).toBe(200);
    return (list.body.tokens as Record<string, unknown>[]).find((token) => token.id === id);
  };

  it("lists a tenant's tokens by metadata only: never the token nor its hash", async () => {
    const plain = await issue({ name: "ci" });
    const expiring = await issue({ name: "contractor", expires_in: 3600 });
    expect(plain.expires_at).toBeNull();
    expect(Date.parse(expiring.expires_at!)).toBeGreaterThan(Date.now());

    const list = await call("GET", tokensPath);
    expect(list.status).toBe(200);
    const ids = list.body.tokens.map((token: { id: number }) => token.id);
    expect(ids).toEqual(expect.arrayContaining([plain.id, expiring.id]));
    expect(await listed(expiring.id)).toEqual({
      id: expiring.id,
      name: "contractor",
      scope: "tenant",
      tenant: tenant.slug,
      origin: "api",
      status: "active",
      created_at: expect.any(String),
      expires_at: expiring.expires_at,
      last_used_at: null,
      revoked_at: null,
    });
    for (const secret of [plain.token, expiring.token, hashToken(plain.token), hashToken(expiring.token)]) {
      expect(list.text).not.toContain(secret);
    }
    // The tenant's own token sees the same list; keyset pages follow on from next_after_id.
    const own = await call("GET", `${tokensPath}?limit=1`, { token: plain.token });
    expect(own.status).toBe(200);
    expect(own.body.tokens).toHaveLength(1);
    const next = await call("GET", `${tokensPath}?limit=1&after_id=${own.body.next_after_id}`, { token: plain.token });
    expect(next.body.tokens[0].id).toBeGreaterThan(own.body.tokens[0].id);
  });

  it("records a token's last use on first use and does not rewrite it within the minute", async () => {
    const token = await issue({ name: "last-used" });
    expect((await listed(token.id))!.last_used_at).toBeNull();
    expect((await call("GET", `/v1/tenants/${tenant.slug}`, { token: token.token })).status).toBe(200);
    const first = (await listed(token.id))!.last_used_at;
    expect(first).toEqual(expect.any(String));
    expect((await call("GET", `/v1/tenants/${tenant.slug}`, { token: token.token })).status).toBe(200);
    expect((await listed(token.id))!.last_used_at).toBe(first);
  });

  it("refuses a revoked token at once; revoking is audited, twice changes nothing, and a token cannot revoke itself", async () => {
    const token = await issue({ name: "leaked" });
    expect((await call("GET", `/v1/tenants/${tenant.slug}`, { token: token.token })).status).toBe(200);

    const itself = await call("DELETE", `${tokensPath}/${token.id}`, { token: token.token });
    expect(itself.status).toBe(409);
    expect(itself.body.error.code).toBe("own_token");

    const revoked = await call("DELETE", `${tokensPath}/${token.id}`);
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.body).toMatchObject({ id: token.id, status: "revoked", revoked_at: expect.any(String) });
    expect(revoked.text).not.toContain(token.token);
    expect((await call("GET", `/v1/tenants/${tenant.slug}`, { token: token.token })).status).toBe(401);

    const again = await call("DELETE", `${tokensPath}/${token.id}`);
    expect(again.status).toBe(200);
    expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
    // Another tenant's token id, or one that does not exist: 404.
    expect((await call("DELETE", `${tokensPath}/2147483647`)).status).toBe(404);
    expect((await call("DELETE", `${tokensPath}/abc`)).body.error.fields).toEqual([{ field: "param.tokenId", message: expect.any(String) }]);

    const audit = await service.sql`select action, actor from audit_log where target = ${`token:${token.id}`} order by id`;
    expect(audit.map((row) => row.action)).toEqual(["token.create", "token.revoke"]);
  });

  it("refuses an expired token, and lists it as expired; expires_in is bounded", async () => {
    const token = await issue({ name: "short-lived", expires_in: 1 });
    await waitFor("the token to expire", async () => (await call("GET", `/v1/tenants/${tenant.slug}`, { token: token.token })).status === 401, {
      timeoutMs: 30_000,
    });
    expect((await listed(token.id))!.status).toBe("expired");
    for (const expiresIn of [0, 2 * 365 * 24 * 3600 + 1, 1.5, "3600"]) {
      const refused = await call("POST", tokensPath, { body: { name: "bad", expires_in: expiresIn } });
      expect(refused.status, String(expiresIn)).toBe(400);
      expect(refused.body.error.fields).toEqual([{ field: "expires_in", message: expect.any(String) }]);
    }
  });

  it("manages platform-admin tokens under /v1/tokens (platform admin only)", async () => {
    const created = await issue({ name: "automation", expires_in: 86_400 }, "/v1/tokens");
    expect(created).toMatchObject({ scope: "platform_admin", tenant: null });
    expect((await call("GET", "/v1/tenants", { token: created.token })).status).toBe(200);
    expect((await listed(created.id, "/v1/tokens"))!.status).toBe("active");

    const tenantToken = await issue({ name: "not-an-admin" });
    expect((await call("GET", "/v1/tokens", { token: tenantToken.token })).status).toBe(403);
    expect((await call("POST", "/v1/tokens", { token: tenantToken.token, body: { name: "x" } })).status).toBe(403);
    // Tenant tokens are not under /v1/tokens.
    expect((await call("DELETE", `/v1/tokens/${tenantToken.id}`)).status).toBe(404);

    const revoked = await call("DELETE", `/v1/tokens/${created.id}`);
    expect(revoked.body.status).toBe("revoked");
    expect((await call("GET", "/v1/tenants", { token: created.token })).status).toBe(401);
  });

  it("behind a trusted proxy, failed authentications count per client the proxy saw (the rightmost X-Forwarded-For), not per what a client claims", async () => {
    const limit = DEFAULT_LIMITS.authFailureLimit;
    // The client claims 198.51.100.7; the proxy appends the address it saw, 203.0.113.9.
    const viaProxy = (client: string) => ({ "x-forwarded-for": `198.51.100.7, ${client}` });
    const statuses: number[] = [];
    for (let i = 0; i < limit + 5; i++) {
      const wrong = `mxdr-admin_${randomBytes(32).toString("base64url")}`;
      statuses.push((await call("GET", "/v1/tenants", { token: wrong, headers: viaProxy("203.0.113.9") })).status);
    }
    expect(statuses).toEqual([...Array(limit).fill(401), ...Array(5).fill(429)]);
    expect((await call("GET", "/v1/tenants", { headers: viaProxy("203.0.113.9") })).status).toBe(429);
    expect((await call("GET", "/v1/tenants", { headers: { "x-forwarded-for": "203.0.113.9" } })).status).toBe(429);
    expect((await call("GET", "/v1/tenants", { headers: viaProxy("203.0.113.10") })).status).toBe(200);
    expect((await call("GET", "/v1/tenants")).status).toBe(200);
  });

  it("a new ADMIN_TOKEN revokes the previous one at start-up; admin tokens created through the API stay valid", async () => {
    const kept = await issue({ name: "kept-across-rotation" }, "/v1/tokens");
    const [previous] = await service.sql`select id from api_tokens where token_hash = ${hashToken(firstAdminToken)}`;
    await service.stop();

    const secondAdminToken = `mxdr-admin_${randomBytes(32).toString("base64url")}`;
    await service.start({ adminToken: secondAdminToken });
    expect((await call("GET", "/v1/tenants", { token: firstAdminToken })).status).toBe(401);
    expect((await call("GET", "/v1/tenants", { token: secondAdminToken })).status).toBe(200);
    expect((await call("GET", "/v1/tenants", { token: kept.token })).status).toBe(200);
    expect(await listed(previous!.id, "/v1/tokens")).toMatchObject({ origin: "environment", status: "revoked" });
    const audit = await service.sql`select actor from audit_log where action = 'token.revoke' and target = ${`token:${previous!.id}`}`;
    expect(audit.map((row) => row.actor)).toEqual(["system:admin-token-rotation"]);

    // A restart with the same ADMIN_TOKEN revokes nothing.
    await service.stop();
    await service.start();
    expect((await call("GET", "/v1/tenants", { token: secondAdminToken })).status).toBe(200);
    expect((await call("GET", "/v1/tenants", { token: kept.token })).status).toBe(200);
  });
});
