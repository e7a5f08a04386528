/** The start-up connection budget (db/connection-budget.ts): what one service process may open, and when it does not fit. */
import { describe, expect, it } from "vitest";
import { cliStateConnections, connectionBudget, connectionBudgetProblem, livenessPoolSize, sameServer } from "../../db/connection-budget";

const config = { DATABASE_POOL_MAX: 10, MAX_CONCURRENT_RUNS: 32, RUN_WORKER: true, stateOnSameServer: true };

describe("the service's connection budget", () => {
  it("gives liveness locks one connection per run plus recovery and the fleet coordinator, apart from the request pool", () => {
    expect(livenessPoolSize(config)).toBe(34);
    expect(livenessPoolSize({ ...config, RUN_WORKER: false })).toBe(2);
    const budget = connectionBudget(config);
    expect(budget).toMatchObject({ requests: 10, liveness: 34, cli: 32 * cliStateConnections() });
    expect(budget.total).toBe(budget.requests + budget.liveness + budget.queue + budget.dedicated + budget.cli);
  });

  it("counts the CLIs' state connections only when the Pulumi state is in the same server and this process runs stacks", () => {
    expect(connectionBudget({ ...config, stateOnSameServer: false }).cli).toBe(0);
    expect(connectionBudget({ ...config, RUN_WORKER: false }).cli).toBe(0);
  });

  it("fits when the server holds the total, and otherwise says why, naming the variables to change", () => {
    const total = connectionBudget(config).total;
    expect(connectionBudgetProblem(config, { maxConnections: total + 3, reserved: 3 })).toBeUndefined();
    const problem = connectionBudgetProblem(config, { maxConnections: total + 2, reserved: 3 });
    expect(problem).toContain(`needs up to ${total} connections`);
    expect(problem).toContain(`the server allows ${total - 1} (max_connections ${total + 2} minus 3 reserved)`);
    expect(problem).toMatch(
      /lower MAX_CONCURRENT_RUNS or DATABASE_POOL_MAX, raise the server's max_connections, or put the Pulumi state elsewhere \(PULUMI_BACKEND_URL\)$/,
    );
  });

  it("tells whether two URLs name the same server", () => {
    expect(sameServer("postgres://a:b@127.0.0.1:5433/x", "postgresql://c@127.0.0.1:5433/y_state?sslmode=disable")).toBe(true);
    expect(sameServer("postgres://127.0.0.1/x", "postgres://127.0.0.1:5432/y")).toBe(true);
    expect(sameServer("postgres://127.0.0.1:5433/x", "postgres://127.0.0.1:5434/x")).toBe(false);
  });
});
