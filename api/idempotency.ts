/**
 * `Idempotency-Key` on POSTs: the same key from the same actor gets the first answer again
 * (header `Idempotent-Replayed: true`), without running the handler twice.
 *
 * - The key is claimed in idempotency_keys before the handler runs (primary key (actor, key)), so
 *   two concurrent requests with one key cannot both execute: the second gets 409 while the first
 *   is in progress. A claim left by a crashed process is taken over after STALE_CLAIM_MS.
 * - A successful (2xx) answer is stored encrypted (it may hold a token shown once) and replayed.
 *   Any other answer releases the key, so the client can correct the request and retry with it.
 * - The same key with a different method, path or body is refused (422), never replayed.
 */
import { createHash } from "node:crypto";
import { and, eq, isNull, lt } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { DrizzleDatabase } from "../db/client";
import { decryptJson, encryptJson, type Keyring } from "../db/crypto";
import { idempotencyKeys } from "../db/schema";
import { idempotencyResponseContext } from "../lib/idempotency-context";
import type { AppEnv } from "./auth";
import { ConflictError, UnprocessableError, ValidationError } from "../lib/errors";

export const IDEMPOTENCY_HEADER = "idempotency-key";
const REPLAYED_HEADER = "idempotent-replayed";
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const STALE_CLAIM_MS = 5 * 60_000;

export function idempotency(db: DrizzleDatabase, keyring: Keyring): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header(IDEMPOTENCY_HEADER);
    if (c.req.method !== "POST" || key === undefined) return next();
    if (!KEY_PATTERN.test(key)) {
      throw new ValidationError([{ field: "header.idempotency-key", message: "must be 1-255 visible ASCII characters" }]);
    }
    const { actor } = c.get("principal");
    const body = await c.req.text();
    const requestHash = createHash("sha256").update(`${c.req.method}\n${c.req.path}\n`).update(body).digest("hex");

    const claimed = await db
      .insert(idempotencyKeys)
      .values({ actor, key, method: c.req.method, path: c.req.path, requestHash })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (claimed.length === 0) {
      const [existing] = await db
        .select()
        .from(idempotencyKeys)
        .where(and(eq(idempotencyKeys.actor, actor), eq(idempotencyKeys.key, key)));
      if (existing && existing.requestHash !== requestHash) {
        throw new UnprocessableError("this Idempotency-Key was used for a different request", { code: "idempotency_key_reused" });
      }
      if (existing?.statusCode != null && existing.responseBody) {
        const replay = decryptJson<unknown>(existing.responseBody, idempotencyResponseContext(actor, key), keyring);
        return new Response(JSON.stringify(replay), {
          status: existing.statusCode,
          headers: { "content-type": "application/json", [REPLAYED_HEADER]: "true" },
        });
      }
      // In progress elsewhere, unless that claim is stale (its process died): then take it over.
      const takenOver = await db
        .update(idempotencyKeys)
        .set({ createdAt: new Date() })
        .where(
          and(
            eq(idempotencyKeys.actor, actor),
            eq(idempotencyKeys.key, key),
            isNull(idempotencyKeys.statusCode),
            lt(idempotencyKeys.createdAt, new Date(Date.now() - STALE_CLAIM_MS)),
          ),
        )
        .returning({ key: idempotencyKeys.key });
      if (takenOver.length === 0) {
        throw new ConflictError("a request with this Idempotency-Key is still in progress; retry later");
      }
    }

    const release = () =>
      db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.actor, actor), eq(idempotencyKeys.key, key), isNull(idempotencyKeys.statusCode)));
    try {
      await next();
    } catch (error) {
      await release();
      throw error;
    }
    const response = c.res;
    if (response.status >= 200 && response.status < 300 && (response.headers.get("content-type") ?? "").includes("json")) {
      const stored = encryptJson(await response.clone().json(), idempotencyResponseContext(actor, key), keyring);
      await db
        .update(idempotencyKeys)
        .set({ statusCode: response.status, responseBody: stored.envelope, completedAt: new Date() })
        .where(and(eq(idempotencyKeys.actor, actor), eq(idempotencyKeys.key, key)));
    } else {
      await release();
    }
  };
}
