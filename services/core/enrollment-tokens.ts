/**
 * A tenant's agent enrollment token: agents present it to enroll. The database keeps its hash (what enrollment
 * compares against) and the token sealed with the credentials key (the tenant stack puts it, as a Pulumi secret,
 * into the agent configuration parameter on every run). One active token per tenant; rotation revokes the old one.
 */
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, encryptJson, generateToken, hashToken, type Keyring } from "../../db/crypto";
import { enrollmentTokens } from "../../db/schema";

export const ENROLLMENT_TOKEN_PREFIX = "mxdr-enroll";

export const enrollmentTokenContext = (organizationId: number) => ({ organizationId, provider: "enrollment-token" });

type Writer = Pick<DrizzleDatabase, "insert" | "update" | "select">;

/** Revokes the tenant's active tokens and issues a new one; returns the new token (plaintext, for the stack). */
export async function rotateEnrollmentToken(db: Writer, keyring: Keyring, organizationId: number): Promise<string> {
  const token = generateToken(ENROLLMENT_TOKEN_PREFIX);
  await db
    .update(enrollmentTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(enrollmentTokens.organizationId, organizationId), isNull(enrollmentTokens.revokedAt)));
  await db.insert(enrollmentTokens).values({
    organizationId,
    tokenHash: hashToken(token),
    tokenSealed: encryptJson(token, enrollmentTokenContext(organizationId), keyring).envelope,
  });
  return token;
}

/** The tenant's active enrollment token, issuing one when it has none. */
export async function activeEnrollmentToken(db: DrizzleDatabase, keyring: Keyring, organizationId: number): Promise<string> {
  return db.transaction(async (tx) => {
    // Two first runs of one tenant must not issue two tokens.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`enrollment:${organizationId}`}))`);
    const [current] = await tx
      .select()
      .from(enrollmentTokens)
      .where(and(eq(enrollmentTokens.organizationId, organizationId), isNull(enrollmentTokens.revokedAt)))
      .orderBy(desc(enrollmentTokens.createdAt))
      .limit(1);
    if (current?.tokenSealed) return decryptJson<string>(current.tokenSealed, enrollmentTokenContext(organizationId), keyring);
    return rotateEnrollmentToken(tx, keyring, organizationId);
  });
}
