/**
 * The schedule of organization reconciles: every interval, each worker replica lists every connected organization
 * and starts what may start. Replicas may overlap: the organization service applies listings under the tenant's lock.
 */
import type { OrganizationService } from "./organization-service";

export function startOrganizationReconcile(
  organizations: Pick<OrganizationService, "reconcileAll">,
  options: { intervalMs: number; work: boolean; log?(message: string): void; after?(organizationId: number): Promise<void> },
): { stop(): Promise<void> } {
  if (!options.work) return { stop: async () => undefined };
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = organizations
      .reconcileAll(options.after)
      .catch((error: unknown) => options.log?.(`organization reconcile: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => {
        running = undefined;
      });
  }, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
