/** Typed errors of stack operations; the API turns them into responses in one place. */

export class AutomationError extends Error {}

/** Another operation holds the stack's lock. */
export class StackBusyError extends AutomationError {
  constructor(readonly stackName: string) {
    super(`stack ${stackName} is busy: another operation is in progress`);
    this.name = "StackBusyError";
  }
}

export class StackNotFoundError extends AutomationError {
  constructor(readonly stackName: string) {
    super(`stack ${stackName} does not exist`);
    this.name = "StackNotFoundError";
  }
}

/** The engine ran and failed; `diagnostics` holds the engine's error messages, in order. */
export class EngineFailureError extends AutomationError {
  constructor(
    readonly stackName: string,
    readonly operation: string,
    readonly diagnostics: string[],
    readonly exitCode?: number,
  ) {
    super(`${operation} of stack ${stackName} failed${diagnostics.length > 0 ? `: ${diagnostics.join("; ")}` : ""}`);
    this.name = "EngineFailureError";
  }
}

/** The Pulumi CLI the project pins is not available. */
export class ToolchainMissingError extends AutomationError {
  constructor(detail: string) {
    super(`the pinned Pulumi CLI is not available (${detail}); run: bash scripts/toolchain.sh`);
    this.name = "ToolchainMissingError";
  }
}
