/** The credentials key rotation -> API shape. */
import type { CredentialRotationView } from "../services/integration/credential-rotation-service";
import { iso } from "./presenters";

export function presentCredentialRotation({ currentKeyId, target, remaining, remainingByKey }: CredentialRotationView) {
  const remainingTotal = Object.values(remaining).reduce((sum, rows) => sum + rows, 0);
  return {
    current_key_id: currentKeyId,
    target_key_id: target?.targetKeyId ?? null,
    requested_by: target?.requestedBy ?? null,
    requested_at: iso(target?.requestedAt),
    completed_at: iso(target?.completedAt),
    rows_resealed: target?.rowsResealed ?? 0,
    state: remainingTotal === 0 ? ("complete" as const) : ("rotating" as const),
    remaining_total: remainingTotal,
    remaining,
    remaining_by_key: remainingByKey.map(({ keyId, rows, readableHere }) => ({ key_id: keyId, rows, readable_here: readableHere })),
  };
}
