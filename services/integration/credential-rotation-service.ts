/**
 * The credentials key rotation as the platform admin sees it: which key rows are re-sealed to, how many rows each
 * table still holds under older keys (and whether this replica can read them), and a way to start a pass now.
 */
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import type { CredentialKeyRotation } from "../../db/schema";
import { ConflictError, ServiceNotConfiguredError } from "../../lib/errors";
import { recordAudit } from "../core/audit-store";
import { requireAdmin, type Principal } from "../core/principal";
import { SEALED_SOURCES, sealedRowsByKey, type RotationCounts } from "./credential-rotation";
import { readRotationTarget, type CredentialRotationQueue } from "./credential-rotation-queue";

export interface CredentialRotationServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  /** Absent where no queue runs (an app built without one): starting a pass answers 503. */
  rotation?: CredentialRotationQueue;
}

export interface CredentialRotationView {
  /** The key this replica seals new values with. */
  currentKeyId: string;
  target: CredentialKeyRotation | undefined;
  /** Rows under another key than the target (this replica's current key when there is none yet), per table. */
  remaining: RotationCounts;
  /** Those rows by the key their envelopes name. */
  remainingByKey: { keyId: string; rows: number; readableHere: boolean }[];
}

export function createCredentialRotationService(deps: CredentialRotationServiceDeps) {
  const { db, keyring } = deps;

  async function view(): Promise<CredentialRotationView> {
    const target = await readRotationTarget(db);
    const targetKeyId = target?.targetKeyId ?? keyring.current.id;
    const remaining = Object.fromEntries(SEALED_SOURCES.map((name) => [name, 0])) as RotationCounts;
    const byKey = new Map<string, number>();
    for (const { source, keyId, rows } of await sealedRowsByKey(db)) {
      if (keyId === targetKeyId) continue;
      remaining[source] += rows;
      byKey.set(keyId, (byKey.get(keyId) ?? 0) + rows);
    }
    return {
      currentKeyId: keyring.current.id,
      target,
      remaining,
      remainingByKey: [...byKey].map(([keyId, rows]) => ({ keyId, rows, readableHere: keyring.keys.has(keyId) })),
    };
  }

  return {
    async status(principal: Principal): Promise<CredentialRotationView> {
      requireAdmin(principal);
      return view();
    },

    /** Re-seals every row to this replica's current key, in the background; `keyId`, when given, must be that key. */
    async start(principal: Principal, { keyId }: { keyId?: string }): Promise<CredentialRotationView> {
      requireAdmin(principal);
      if (keyId !== undefined && keyId !== keyring.current.id) {
        throw new ConflictError(
          `this replica seals with key ${keyring.current.id}, not ${keyId}: it may still run the previous configuration; ask a replica that runs the new one`,
          {
            code: "key_mismatch",
            fields: [{ field: "key_id", message: `is not this replica's current key (${keyring.current.id})` }],
            details: { current_key_id: keyring.current.id },
          },
        );
      }
      if (!deps.rotation) throw new ServiceNotConfiguredError("key rotation does not run in this process (no job queue)");
      await deps.rotation.request(principal.actor);
      await recordAudit(db, principal, {
        action: "credentials.rotation.start",
        target: "credentials/rotation",
        details: { targetKeyId: keyring.current.id },
      });
      return view();
    },
  };
}

export type CredentialRotationService = ReturnType<typeof createCredentialRotationService>;
