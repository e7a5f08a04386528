/**
 * The first platform-admin token. With ADMIN_TOKEN set, its hash is registered (once) as the
 * `bootstrap-admin` token. Without it, and only when no platform-admin token exists yet, one is
 * generated, its hash stored, and the token printed once (to stderr): it is never shown again.
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../db/client";
import { generateToken, hashToken } from "../db/crypto";
import { apiTokens } from "../db/schema";

export const BOOTSTRAP_TOKEN_NAME = "bootstrap-admin";

export interface BootstrapResult {
  /** Set only when a token was generated now (the caller prints it once). */
  generatedToken?: string;
  tokenId: number;
}

export async function ensureBootstrapAdmin(db: DrizzleDatabase, adminToken: string | undefined): Promise<BootstrapResult | undefined> {
  if (adminToken) {
    const tokenHash = hashToken(adminToken);
    await db
      .insert(apiTokens)
      .values({ tokenHash, scope: "platform_admin", name: BOOTSTRAP_TOKEN_NAME })
      .onConflictDoNothing({ target: apiTokens.tokenHash });
    const [row] = await db.select({ id: apiTokens.id }).from(apiTokens).where(eq(apiTokens.tokenHash, tokenHash));
    return { tokenId: row!.id };
  }
  return db.transaction(async (tx) => {
    // Serialize concurrent first starts (replicas): only one generates a token.
    await tx.execute(sql`select pg_advisory_xact_lock(30803767781681512)`);
    const [existing] = await tx
      .select({ id: apiTokens.id })
      .from(apiTokens)
      .where(and(eq(apiTokens.scope, "platform_admin"), isNull(apiTokens.revokedAt)))
      .limit(1);
    if (existing) return undefined;
    const token = generateToken("mxdr-admin");
    const [row] = await tx
      .insert(apiTokens)
      .values({ tokenHash: hashToken(token), scope: "platform_admin", name: BOOTSTRAP_TOKEN_NAME })
      .returning({ id: apiTokens.id });
    return { generatedToken: token, tokenId: row!.id };
  });
}
