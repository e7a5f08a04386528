import type { PulumiCommand } from "@pulumi/pulumi/automation";
import {
  cancelTenantStack,
  clearPendingOperations,
  type DroppedOperation,
  openTenantStack,
  StackNotFoundError,
  type AutomationSettings,
} from "../../automation";
import { stopOrphanedPulumiProcesses } from "./orphans";

/**
 * What an operation that did not end on its own leaves behind, cleared so the next run works: its processes on this
 * host (the CLI's whole session, plugins included: orphans.ts), the stack's lock (cancel), the checkpoint's pending
 * operations (returned). A stack that does not exist (yet) has nothing to clear.
 */
export async function releaseStack(
  automation: AutomationSettings,
  stackName: string,
  options: { cli?: PulumiCommand; log?(message: string): void } = {},
): Promise<DroppedOperation[]> {
  const stopped = await stopOrphanedPulumiProcesses(stackName);
  if (stopped.length > 0) options.log?.(`stopped the processes ${stopped.join(", ")} of ${stackName}`);
  try {
    const stack = await openTenantStack(automation, stackName, { create: false, cli: options.cli });
    await cancelTenantStack(stack);
    return await clearPendingOperations(stack);
  } catch (error) {
    if (error instanceof StackNotFoundError) return [];
    throw error;
  }
}

/** The warnings naming each dropped pending operation (a run's error diagnostics). */
export function droppedDiagnostics(dropped: DroppedOperation[]) {
  return dropped.map((operation) => ({ severity: "warning" as const, message: `pending ${operation.type} dropped`, urn: operation.urn }));
}
