/** A stand-in for a service process in the middle of an `up` (crash-recovery test): prints engine events. */
import { configureTenantStack, openTenantStack, stackNameFor, upTenantStack } from "../../automation";

const settings = JSON.parse(process.env.AUTOMATION_SETTINGS!);
const config = JSON.parse(process.env.TENANT_CONFIG!);
const stack = await openTenantStack(settings, stackNameFor(config.tenantSlug), { create: false });
await configureTenantStack(stack, config);
await upTenantStack(stack, {
  onEvent: (event) => {
    if (event.resourcePreEvent) console.log("resource-pre", event.resourcePreEvent.metadata.urn);
  },
});
