/**
 * Which runs still have a live executor, across service processes: while a run executes, its process holds a
 * session advisory lock keyed by the run id on a reserved connection. PostgreSQL releases it when that process's
 * session ends (crash, kill), so a `running` run whose lock can be taken has no executor left.
 */
import type { SqlClient } from "../../db/client";

const LOCK_SPACE = 0x6d786472; // "mxdr"

/**
 * Takes the run's liveness lock on a connection reserved for it (waiting for it, or only when free) and returns what
 * releases both; undefined when `wait` is false and another session holds the lock.
 */
async function lockOnReservedConnection(sql: SqlClient, runId: string, wait: boolean): Promise<(() => Promise<void>) | undefined> {
  const connection = await sql.reserve();
  try {
    if (wait) await connection`select pg_advisory_lock(${LOCK_SPACE}::int, hashtext(${runId}))`;
    else {
      const [row] = await connection<{ acquired: boolean }[]>`
        select pg_try_advisory_lock(${LOCK_SPACE}::int, hashtext(${runId})) as acquired`;
      if (!row!.acquired) {
        connection.release();
        return undefined;
      }
    }
  } catch (error) {
    connection.release();
    throw error;
  }
  return async () => {
    try {
      await connection`select pg_advisory_unlock(${LOCK_SPACE}::int, hashtext(${runId}))`;
    } finally {
      connection.release();
    }
  };
}

/** Holds the run's liveness lock until the returned release function is called. */
export async function holdRunLiveness(sql: SqlClient, runId: string): Promise<() => Promise<void>> {
  return (await lockOnReservedConnection(sql, runId, true))!;
}

/** True when some session holds the run's liveness lock, i.e. a live process is executing the run. */
export async function runHasLiveExecutor(sql: SqlClient, runId: string): Promise<boolean> {
  const connection = await sql.reserve();
  try {
    const [row] = await connection<{ acquired: boolean }[]>`
      select pg_try_advisory_lock(${LOCK_SPACE}::int, hashtext(${runId})) as acquired`;
    if (row!.acquired) await connection`select pg_advisory_unlock(${LOCK_SPACE}::int, hashtext(${runId}))`;
    return !row!.acquired;
  } finally {
    connection.release();
  }
}

/**
 * Takes the run's liveness lock when no session holds it (no live executor) and keeps it until release: recovery holds
 * it while it cleans up, so two replicas sweeping at once never recover the same run twice. undefined when held.
 */
export function tryHoldRunLiveness(sql: SqlClient, runId: string): Promise<(() => Promise<void>) | undefined> {
  return lockOnReservedConnection(sql, runId, false);
}
