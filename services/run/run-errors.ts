import { ConflictError } from "../../lib/errors";

/** A run was requested while another run of the same stack is queued or running. */
export class RunConflictError extends ConflictError {
  constructor(
    readonly stackName: string,
    readonly blockingRunId: string,
  ) {
    super(`stack ${stackName} already has an active run ${blockingRunId}`, {
      code: "run_in_progress",
      details: { blocking_run_id: blockingRunId },
    });
  }
}
