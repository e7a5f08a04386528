/**
 * What GET /v1/tenants/{slug}/integrations/aws/bootstrap answers: the bootstrap template, published to the platform's
 * bucket (once per template version and process), and the tenant's quick-create link for it.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { buildBootstrapLink, buildOffboardingInstructions, type BootstrapLink, type OffboardingInstructions } from "./bootstrap-link-fns";
import { renderBootstrapTemplate } from "./bootstrap-template-fns";
import { publishBootstrapTemplate, type BootstrapPublishSettings, type PublishedTemplate } from "./bootstrap-template-publisher";

export interface BootstrapLinkServiceDeps {
  s3: S3Client;
  publish: BootstrapPublishSettings;
  platformPrincipalArn: string;
}

export interface TenantBootstrap extends BootstrapLink {
  /** The CloudFormation template (JSON) the link creates the stack from. */
  template: string;
  templateVersion: string;
}

export function createBootstrapLinkService(deps: BootstrapLinkServiceDeps) {
  const template = renderBootstrapTemplate({ platformPrincipalArn: deps.platformPrincipalArn });
  let published: Promise<PublishedTemplate> | undefined;

  const ensurePublished = (): Promise<PublishedTemplate> => {
    published ??= publishBootstrapTemplate(deps.s3, deps.publish, template.body).catch((error: unknown) => {
      published = undefined; // the next request tries again
      throw error;
    });
    return published;
  };

  return {
    ensurePublished,

    /** The tenant's link; region is where the customer creates the stack (the tenant's home region). */
    async bootstrapFor(tenant: { tenantSlug: string; externalId: string; region: string }): Promise<TenantBootstrap> {
      const { url } = await ensurePublished();
      const link = buildBootstrapLink({ ...tenant, templateUrl: url });
      return { ...link, template: template.body, templateVersion: template.version };
    },

    offboardingFor(tenant: { tenantSlug: string; region: string }): OffboardingInstructions {
      return buildOffboardingInstructions(tenant);
    },
  };
}

export type BootstrapLinkService = ReturnType<typeof createBootstrapLinkService>;
