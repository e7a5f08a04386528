/**
 * The runs this process is executing right now, and how to stop one. Recovery never touches a run listed here (its
 * liveness session may have dropped while the run goes on: services/run/recovery.ts); a timeout, a cancel or an
 * expired queue job stops it here.
 *
 * Stopping: the operation's AbortSignal fires, so the Automation API sends the CLI SIGINT and pulumi cancels
 * gracefully (ends its plugins, releases the stack's lock). After `graceMs` whatever is left of the operation's
 * session, CLI and plugins, is killed (orphans.ts). The executor then clears the lock and pending operations.
 */
import { stopOrphanedPulumiProcesses } from "./orphans";

export type StopReason =
  | { kind: "cancelled"; actor: string }
  | { kind: "timeout"; seconds: number; variable: string }
  | { kind: "expired" }
  | { kind: "shutdown"; variable: string };

export class RunExecution {
  private readonly controller = new AbortController();
  private killTimer?: NodeJS.Timeout;
  stopReason?: StopReason;
  /** Known once the run is claimed. */
  stackName?: string;

  constructor(
    readonly runId: string,
    private readonly graceMs: number,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.controller.abort(reason);
    this.killTimer = setTimeout(() => {
      if (this.stackName) void stopOrphanedPulumiProcesses(this.stackName);
    }, this.graceMs);
    this.killTimer.unref();
  }

  /** Whatever of the operation still runs is killed now (the operation has returned or thrown). */
  async killLeftovers(): Promise<number[]> {
    this.cancelKill();
    return this.stackName ? stopOrphanedPulumiProcesses(this.stackName) : [];
  }

  /** The operation is over: a pending kill must not reach the stack's next operation. */
  cancelKill(): void {
    clearTimeout(this.killTimer);
  }
}

const executing = new Map<string, RunExecution>();

/** Registers the run as executing in this process until end() (call it before the run is claimed). */
export function beginExecution(runId: string, graceMs: number): RunExecution & { end(): void } {
  const execution: RunExecution & { end(): void } = Object.assign(new RunExecution(runId, graceMs), {
    end() {
      execution.cancelKill();
      executing.delete(runId);
    },
  });
  executing.set(runId, execution);
  return execution;
}

export function isExecutingHere(runId: string): boolean {
  return executing.has(runId);
}

/** Stops the run when this process executes it; false otherwise. */
export function stopExecutingRun(runId: string, reason: StopReason): boolean {
  const execution = executing.get(runId);
  execution?.stop(reason);
  return execution !== undefined;
}
