/**
 * The service's log censors secrets at any depth: pino writing real JSON lines into a stream, read back.
 */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../lib/logger";

const ADMIN = `mxdr-admin_${"A1b2C3d4".repeat(5)}xyz`;
const TENANT = `mxdr-tenant_${"Z9y8X7w6".repeat(5)}abc`;
const EXTERNAL = `mxdr-ext_${"q".repeat(43)}`;
const PASSWORD = "pg-Sup3rSecretPassw0rd";
const PASSPHRASE = "correct horse battery staple";

function capture() {
  let raw = "";
  const logger = createLogger(
    "info",
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        raw += chunk.toString();
        done();
      },
    }),
  );
  return {
    logger,
    lines: () =>
      raw
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, any>),
    raw: () => raw,
  };
}

describe("log redaction", () => {
  it("censors secret fields nested at any depth and inside arrays", () => {
    const { logger, lines, raw } = capture();
    logger.info(
      {
        request: { headers: { authorization: `Bearer ${ADMIN}`, "x-request-id": "r-1" } },
        deep: { a: { b: { c: { d: { password: PASSWORD, name: "kept" } } } } },
        tenants: [
          { slug: "acme", apiToken: TENANT },
          { slug: "globex", credentials: { externalId: EXTERNAL } },
        ],
        settings: { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE, database_url: `postgres://mxdr:${PASSWORD}@127.0.0.1/db` },
      },
      "nested",
    );
    const text = raw();
    for (const secret of [ADMIN, TENANT, EXTERNAL, PASSWORD, PASSPHRASE]) expect(text).not.toContain(secret);
    const [line] = lines();
    expect(line!.request.headers).toEqual({ authorization: "[redacted]", "x-request-id": "r-1" });
    expect(line!.deep.a.b.c.d).toEqual({ password: "[redacted]", name: "kept" });
    expect(line!.tenants).toEqual([
      { slug: "acme", apiToken: "[redacted]" },
      { slug: "globex", credentials: "[redacted]" },
    ]);
  });

  it("censors tokens inside errors' messages, stacks and causes, and inside the message itself", () => {
    const { logger, lines, raw } = capture();
    const cause = new Error(`connect failed for postgres://mxdr:${PASSWORD}@db.internal:5432/mxdr`);
    const error = new Error(`token ${TENANT} was refused`, { cause });
    logger.error({ failure: { error, attempts: [error] } } as Record<string, unknown>, `the admin used ${ADMIN} and Bearer ${TENANT}`);
    const text = raw();
    for (const secret of [ADMIN, TENANT, PASSWORD]) expect(text).not.toContain(secret);
    const [line] = lines();
    expect(line!.msg).toBe("the admin used [redacted] and Bearer [redacted]");
    expect(line!.failure.error.message).toBe("token [redacted] was refused");
    expect(line!.failure.error.type).toBe("Error");
    expect(line!.failure.error.cause.message).toBe("connect failed for postgres://mxdr:[redacted]@db.internal:5432/mxdr");
    expect(line!.failure.attempts[0].message).toBe("token [redacted] was refused");
  });

  it("keeps ids, names, counts and durations as they are", () => {
    const { logger, lines } = capture();
    logger.info({ runId: 42, tokenId: 7, tenant: "acme", durationMs: 1234.5, ok: true, at: null }, "run finished");
    expect(lines()[0]).toMatchObject({ runId: 42, tokenId: 7, tenant: "acme", durationMs: 1234.5, ok: true, at: null, msg: "run finished" });
  });
});
