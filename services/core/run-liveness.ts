/**
 * Which runs still have a live executor, across service processes: while a run executes, its process holds a
 * session advisory lock keyed by the run id. PostgreSQL releases it when that process's session ends (crash, kill),
 * so a `running` run whose lock can be taken has no executor left.
 *
 * Each lock is held on a connection of its own, opened for it and closed to release it (LockConnections), never on
 * the pool that serves requests: a run holds its lock for its whole operation, and MAX_CONCURRENT_RUNS of them would
 * otherwise starve that pool. Closing, not unlocking, also copes with a session the server dropped (a restart, a
 * failover): a query on a reserved pool connection whose backend was terminated never settles in postgres.js.
 */
import postgres from "postgres";

const LOCK_SPACE = 0x6d786472; // "mxdr"

export interface LockConnections {
  /**
   * Takes the advisory lock (space, hashtext(key)) on a connection of its own, waiting for it or only when free, and
   * returns what releases it (ends that connection); undefined when `wait` is false and another session holds it.
   * At most `max` such connections are open at once: a further hold waits for one to close.
   */
  hold(space: number, key: string, options: { wait: boolean }): Promise<(() => Promise<void>) | undefined>;
  end(): Promise<void>;
}

export function createLockConnections(connectionString: string, { max }: { max: number }): LockConnections {
  let open = 0;
  const waiting: (() => void)[] = [];
  const connections = new Set<postgres.Sql>();
  const slot = async () => {
    while (open >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    open++;
  };
  const close = async (connection: postgres.Sql) => {
    connections.delete(connection);
    try {
      await connection.end({ timeout: 5 });
    } finally {
      open--;
      waiting.shift()?.();
    }
  };
  return {
    async hold(space, key, { wait }) {
      await slot();
      const connection = postgres(connectionString, { max: 1, onnotice: () => undefined, connection: { application_name: "mini-xdr-lock" } });
      connections.add(connection);
      try {
        if (wait) await connection`select pg_advisory_lock(${space}::int, hashtext(${key}))`;
        else {
          const [row] = await connection<{ acquired: boolean }[]>`select pg_try_advisory_lock(${space}::int, hashtext(${key})) as acquired`;
          if (!row!.acquired) {
            await close(connection);
            return undefined;
          }
        }
      } catch (error) {
        await close(connection).catch(() => undefined);
        throw error;
      }
      let released: Promise<void> | undefined;
      return () => (released ??= close(connection));
    },
    async end() {
      await Promise.all([...connections].map((connection) => close(connection).catch(() => undefined)));
    },
  };
}

/** Holds the run's liveness lock until the returned release function is called. */
export async function holdRunLiveness(locks: LockConnections, runId: string): Promise<() => Promise<void>> {
  return (await locks.hold(LOCK_SPACE, runId, { wait: true }))!;
}

/**
 * Takes the run's liveness lock when no session holds it (no live executor) and keeps it until release: recovery holds
 * it while it cleans up, so two replicas sweeping at once never recover the same run twice. undefined when held.
 */
export function tryHoldRunLiveness(locks: LockConnections, runId: string): Promise<(() => Promise<void>) | undefined> {
  return locks.hold(LOCK_SPACE, runId, { wait: false });
}
