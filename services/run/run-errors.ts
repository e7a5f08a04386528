/** A run was requested while another run of the same stack is queued or running. */
export class RunConflictError extends Error {
  constructor(
    readonly stackName: string,
    readonly blockingRunId: string,
  ) {
    super(`stack ${stackName} already has an active run ${blockingRunId}`);
    this.name = "RunConflictError";
  }
}
