/** Every service the HTTP layer calls, as platform/create-platform.ts builds them (once, from one configuration). */
import type { CredentialRotationService } from "./integration/credential-rotation-service";
import type { DiscoveryService } from "./discovery/discovery-service";
import type { FleetService } from "./fleet/fleet-service";
import type { IdentityService } from "./identity/identity-service";
import type { InvitationService } from "./identity/invitation-service";
import type { OidcSignIn } from "./identity/oidc-sign-in";
import type { BootstrapVersions } from "./integration/bootstrap-versions";
import type { IntegrationService } from "./integration/integration-service";
import type { OnboardingService } from "./onboarding/onboarding-service";
import type { OrganizationService } from "./organization/organization-service";
import type { RolloutService } from "./rollout/rollout-service";
import type { RunService } from "./run/run-service";
import type { TenantService } from "./tenant/tenant-service";
import type { WebhookService } from "./notification/webhook-service";

export interface Services {
  tenants: TenantService;
  integrations: IntegrationService;
  bootstrapVersions: BootstrapVersions;
  runs: RunService;
  onboarding: OnboardingService;
  organizations: OrganizationService;
  discovery: DiscoveryService;
  rollout: RolloutService;
  fleet: FleetService;
  credentialRotation: CredentialRotationService;
  webhooks: WebhookService;
  identity: IdentityService;
  invitations: InvitationService;
  /** Single sign-on through the configured OpenID Connect provider; undefined without one (sign-in links). */
  singleSignOn?: OidcSignIn;
}
