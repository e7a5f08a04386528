/**
 * The first platform-admin token. With ADMIN_TOKEN set, its hash is registered (once) as the `bootstrap-admin` token of
 * origin `environment`, and every earlier environment token is revoked: the ADMIN_TOKEN of the latest start is the one
 * valid environment token (admin tokens created through the API stay). Without it, and only when no platform-admin
 * token exists yet, one is generated, its hash stored, and the token written to `<DATA_DIR>/admin-token` (mode 600),
 * whose path the start-up line names: it is never printed, so it never lands in the log that collects the JSON lines.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { and, eq, gt, isNull, ne, or, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { generateToken, hashToken } from "../../db/crypto";
import { apiTokens } from "../../db/schema";
import { recordAudit } from "../core/audit-store";
import { systemAdminPrincipal } from "../core/principal";

export const BOOTSTRAP_TOKEN_NAME = "bootstrap-admin";
export const ADMIN_TOKEN_FILE = "admin-token";

export interface BootstrapResult {
  /** Set only when a token was generated now (the caller writes it with writeAdminTokenFile). */
  generatedToken?: string;
  tokenId: number;
  /** Earlier ADMIN_TOKENs revoked now. */
  revokedTokenIds: number[];
  /** ADMIN_TOKEN names a token that was revoked (through the API): it is not accepted, and stays so. */
  adminTokenRevoked: boolean;
}

// Serializes concurrent starts (replicas): one generates a token; the last ADMIN_TOKEN to start wins.
const BOOTSTRAP_LOCK = sql`select pg_advisory_xact_lock(30803767781681512)`;

/**
 * `keepGenerated` stores a generated token where the operator finds it (writeAdminTokenFile); it runs before the
 * token's hash is committed, so a token that could not be kept is never the only admin token.
 */
export async function ensureBootstrapAdmin(
  db: DrizzleDatabase,
  adminToken: string | undefined,
  keepGenerated: (token: string) => Promise<unknown>,
): Promise<BootstrapResult | undefined> {
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
        and(eq(apiTokens.scope, "platform_admin"), isNull(apiTokens.revokedAt), or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`))),
      )
      .limit(1);
    if (existing) return undefined;
    const token = generateToken("mxdr-admin");
    const [row] = await tx
      .insert(apiTokens)
      .values({ tokenHash: hashToken(token), scope: "platform_admin", name: BOOTSTRAP_TOKEN_NAME, origin: "generated" })
      .returning({ id: apiTokens.id });
    await keepGenerated(token);
    return { generatedToken: token, tokenId: row!.id, revokedTokenIds: [], adminTokenRevoked: false };
  });
}

/** Writes a generated admin token to `<dataDir>/admin-token`, mode 600 from its creation on; returns the path. */
export async function writeAdminTokenFile(dataDir: string, token: string): Promise<string> {
  // Traversable (the embedded PostgreSQL server, run as its own user, lives under DATA_DIR) but not listable.
  await mkdir(dataDir, { recursive: true, mode: 0o711 });
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  const partial = join(dataDir, `.${ADMIN_TOKEN_FILE}.${randomBytes(6).toString("hex")}`);
  try {
    await writeFile(partial, `${token}\n`, { mode: 0o600, flag: "wx" });
    await chmod(partial, 0o600);
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  return path;
}
