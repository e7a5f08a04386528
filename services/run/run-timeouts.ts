/** How long each kind of run may take before it is stopped (RUN_TIMEOUT_<KIND>_SECONDS), and the grace of a stop. */
import type { RunKind } from "../../db/schema";

export const DEFAULT_RUN_TIMEOUT_SECONDS: Record<RunKind, number> = { preview: 900, up: 3600, refresh: 1800, destroy: 3600, drift: 900 };
/** Time a stopped operation gets to cancel gracefully (SIGINT) before its processes are killed. */
export const DEFAULT_STOP_GRACE_SECONDS = 10;

export const timeoutVariableOf = (kind: RunKind) => `RUN_TIMEOUT_${kind.toUpperCase()}_SECONDS` as const;

/** The per-kind timeouts of a validated service configuration. */
export function runTimeoutsOf(config: Record<ReturnType<typeof timeoutVariableOf>, number>): Record<RunKind, number> {
  const kinds = Object.keys(DEFAULT_RUN_TIMEOUT_SECONDS) as RunKind[];
  return Object.fromEntries(kinds.map((kind) => [kind, config[timeoutVariableOf(kind)]])) as Record<RunKind, number>;
}
