/**
 * How many PostgreSQL connections one service process may open, and the start-up check that the server can hold them.
 * Runs' liveness locks are held on a client of their own (never competing with requests), sized from
 * MAX_CONCURRENT_RUNS; with the Pulumi state in the same server, each running CLI opens its own connections too.
 */
import { availableParallelism } from "node:os";
import type { SqlClient } from "./client";

/** pg-boss's pool (db/boss.ts). */
export const BOSS_POOL_MAX = 4;
/** Besides one per executing run: the recovery sweep's lock (one run at a time) and the fleet coordinator's. */
const LIVENESS_EXTRA = 2;
/** LISTEN for run cancels; migrations and the state table's set-up (one at a time, at start-up). */
const DEDICATED = 2;

export interface ConnectionBudgetInput {
  DATABASE_POOL_MAX: number;
  MAX_CONCURRENT_RUNS: number;
  RUN_WORKER: boolean;
  /** The Pulumi state backend is a postgres:// database on the same server as DATABASE_URL. */
  stateOnSameServer: boolean;
}

export interface ConnectionBudget {
  requests: number;
  liveness: number;
  queue: number;
  dedicated: number;
  /** Connections the running CLIs may open to a postgres:// state backend on this server. */
  cli: number;
  total: number;
}

/** The Pulumi CLI's postgres:// backend pool: max(2 * GOMAXPROCS, 2) connections (pkg/backend/diy/postgres/bucket.go). */
export const cliStateConnections = () => Math.max(2 * availableParallelism(), 2);

export const livenessPoolSize = (input: Pick<ConnectionBudgetInput, "MAX_CONCURRENT_RUNS" | "RUN_WORKER">) =>
  (input.RUN_WORKER ? input.MAX_CONCURRENT_RUNS : 0) + LIVENESS_EXTRA;

export function connectionBudget(input: ConnectionBudgetInput): ConnectionBudget {
  const liveness = livenessPoolSize(input);
  const cli = input.RUN_WORKER && input.stateOnSameServer ? input.MAX_CONCURRENT_RUNS * cliStateConnections() : 0;
  const budget = { requests: input.DATABASE_POOL_MAX, liveness, queue: BOSS_POOL_MAX, dedicated: DEDICATED, cli };
  return { ...budget, total: budget.requests + budget.liveness + budget.queue + budget.dedicated + budget.cli };
}

/** Why the budget does not fit the server's usable connections, or undefined when it fits. */
export function connectionBudgetProblem(input: ConnectionBudgetInput, server: { maxConnections: number; reserved: number }): string | undefined {
  const budget = connectionBudget(input);
  const usable = server.maxConnections - server.reserved;
  if (budget.total <= usable) return undefined;
  return (
    `this process needs up to ${budget.total} connections to the PostgreSQL server (DATABASE_POOL_MAX ${budget.requests} for requests, ` +
    `${budget.liveness} for the liveness locks of MAX_CONCURRENT_RUNS ${input.MAX_CONCURRENT_RUNS} runs plus recovery and the fleet coordinator, ` +
    `${budget.queue} for the job queue, ${budget.dedicated} dedicated` +
    (budget.cli > 0
      ? `, ${budget.cli} for the Pulumi CLIs of those runs on the postgres:// state backend in the same server (${cliStateConnections()} each)`
      : "") +
    `), but the server allows ${usable} (max_connections ${server.maxConnections} minus ${server.reserved} reserved): ` +
    `lower MAX_CONCURRENT_RUNS or DATABASE_POOL_MAX, raise the server's max_connections` +
    (budget.cli > 0 ? `, or put the Pulumi state elsewhere (PULUMI_BACKEND_URL)` : "")
  );
}

/** The server's max_connections and the slots reserved for superusers and pg_use_reserved_connections. */
export async function serverConnectionLimits(sql: SqlClient): Promise<{ maxConnections: number; reserved: number }> {
  const rows = await sql<{ name: string; setting: string }[]>`
    select name, setting from pg_settings where name in ('max_connections', 'superuser_reserved_connections', 'reserved_connections')`;
  const setting = (name: string) => Number(rows.find((row) => row.name === name)?.setting ?? 0);
  return { maxConnections: setting("max_connections"), reserved: setting("superuser_reserved_connections") + setting("reserved_connections") };
}

/** Same host and port (the state backend then shares the service's server). */
export function sameServer(a: string, b: string): boolean {
  try {
    const [x, y] = [new URL(a), new URL(b)];
    return x.hostname === y.hostname && (x.port || "5432") === (y.port || "5432");
  } catch {
    return false;
  }
}
