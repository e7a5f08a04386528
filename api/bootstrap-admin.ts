/**
 * The first platform-admin token. With ADMIN_TOKEN set, its hash is registered (once) as the `bootstrap-admin` token of
 * origin `environment`, and every earlier environment token is revoked: the ADMIN_TOKEN of the latest start is the one
 * valid environment token (admin tokens created through the API stay). Without it, and only when no platform-admin
 * token exists yet, one is generated, its hash stored, and the token printed once (to stderr): it is never shown again.
 */
import { and, eq, gt, isNull, ne, or, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../db/client";
import { generateToken, hashToken } from "../db/crypto";
import { apiTokens } from "../db/schema";
import { recordAudit } from "../services/tenant/audit-store";
import { systemAdminPrincipal } from "../services/tenant/principal";

export const BOOTSTRAP_TOKEN_NAME = "bootstrap-admin";

export interface BootstrapResult {
  /** Set only when a token was generated now (the caller prints it once). */
  generatedToken?: string;
  tokenId: number;
  /** Earlier ADMIN_TOKENs revoked now. */
  revokedTokenIds: number[];
  /** ADMIN_TOKEN names a token that was revoked (through the API): it is not accepted, and stays so. */
  adminTokenRevoked: boolean;
}

// Serializes concurrent starts (replicas): one generates a token; the last ADMIN_TOKEN to start wins.
const BOOTSTRAP_LOCK = sql`select pg_advisory_xact_lock(30803767781681512)`;

export async function ensureBootstrapAdmin(db: DrizzleDatabase, adminToken: string | undefined): Promise<BootstrapResult | undefined> {
  if (adminToken) {
    const tokenHash = hashToken(adminToken);
    return db.transaction(async (tx) => {
      await tx.execute(BOOTSTRAP_LOCK);
      await tx
        .insert(apiTokens)
        .values({ tokenHash, scope: "platform_admin", name: BOOTSTRAP_TOKEN_NAME, origin: "environment" })
        .onConflictDoNothing({ target: apiTokens.tokenHash });
      const [row] = await tx.select().from(apiTokens).where(eq(apiTokens.tokenHash, tokenHash));
      const revoked = await tx
        .update(apiTokens)
        .set({ revokedAt: sql`now()` })
        .where(and(eq(apiTokens.origin, "environment"), ne(apiTokens.id, row!.id), isNull(apiTokens.revokedAt)))
        .returning({ id: apiTokens.id });
      const rotation = systemAdminPrincipal("system:admin-token-rotation");
      for (const { id } of revoked) {
        await recordAudit(tx, rotation, { action: "token.revoke", target: `token:${id}`, details: { reason: "a new ADMIN_TOKEN" } });
      }
      return { tokenId: row!.id, revokedTokenIds: revoked.map(({ id }) => id), adminTokenRevoked: row!.revokedAt !== null };
    });
  }
  return db.transaction(async (tx) => {
    await tx.execute(BOOTSTRAP_LOCK);
    const [existing] = await tx
      .select({ id: apiTokens.id })
      .from(apiTokens)
      .where(
        and(
          eq(apiTokens.scope, "platform_admin"),
          isNull(apiTokens.revokedAt),
          or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`)),
        ),
      )
      .limit(1);
    if (existing) return undefined;
    const token = generateToken("mxdr-admin");
    const [row] = await tx
      .insert(apiTokens)
      .values({ tokenHash: hashToken(token), scope: "platform_admin", name: BOOTSTRAP_TOKEN_NAME, origin: "generated" })
      .returning({ id: apiTokens.id });
    return { generatedToken: token, tokenId: row!.id, revokedTokenIds: [], adminTokenRevoked: false };
  });
}
