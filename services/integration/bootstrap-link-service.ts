/**
 * What GET /v1/tenants/{slug}/integrations/aws/bootstrap answers: the bootstrap template, published to the platform's
 * bucket (once per template version and process), and the tenant's quick-create link for it.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import {
  buildBootstrapLink,
  buildOffboardingInstructions,
  buildQuickCreateUrl,
  type BootstrapLink,
  type OffboardingInstructions,
} from "./bootstrap-link-fns";
import { ORGANIZATION_TEMPLATE_PARAMETERS, organizationNames, renderOrganizationTemplate } from "./organization-template-fns";
import { renderBootstrapTemplate } from "./bootstrap-template-fns";
import {
  publishBootstrapTemplate,
  readPublishedTemplate,
  type BootstrapPublishSettings,
  type PublishedTemplate,
} from "./bootstrap-template-publisher";

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

/** The organization quick-create link: opened in the management account (or a delegated administrator). */
export interface OrganizationLink {
  quickCreateUrl: string;
  templateUrl: string;
  templateVersion: string;
  stackName: string;
  stackSetName: string;
  readerRoleName: string;
  region: string;
}

export function createBootstrapLinkService(deps: BootstrapLinkServiceDeps) {
  const template = renderBootstrapTemplate({ platformPrincipalArn: deps.platformPrincipalArn });
  let published: Promise<PublishedTemplate> | undefined;

  const ensurePublished = (): Promise<PublishedTemplate> => {
    published ??= publishBootstrapTemplate(deps.s3, deps.publish, template.body, template.version).catch((error: unknown) => {
      published = undefined; // the next request tries again
      throw error;
    });
    return published;
  };

  /** Older versions' templates, read back from the bucket (immutable: cached for the process). */
  const publishedVersions = new Map<string, Promise<string | undefined>>();

  return {
    ensurePublished,

    /** The platform's current bootstrap template. */
    current: () => template,

    /** The current organization template (its StackSet deploys the current bootstrap template), published. */
    async organizationTemplateUrl(): Promise<string> {
      const { url: bootstrapTemplateUrl } = await ensurePublished();
      const body = renderOrganizationTemplate({ platformPrincipalArn: deps.platformPrincipalArn, bootstrapTemplateUrl });
      return (await publishBootstrapTemplate(deps.s3, deps.publish, body)).url;
    },

    /**
     * The template of a version published before (the key scheme of publishBootstrapTemplate), or undefined when the
     * bucket has none under that version. `version` must be a version's shape: it may come from a customer's role tag.
     */
    templateOf(version: string): Promise<string | undefined> {
      if (!/^[0-9a-f]{12}$/.test(version)) return Promise.resolve(undefined);
      if (version === template.version) return Promise.resolve(template.body);
      let body = publishedVersions.get(version);
      if (!body) {
        body = readPublishedTemplate(deps.s3, deps.publish, version).catch((error: unknown) => {
          publishedVersions.delete(version);
          throw error;
        });
        if (publishedVersions.size >= 64) publishedVersions.clear();
        publishedVersions.set(version, body);
      }
      return body;
    },

    /** The tenant's link; region is where the customer creates the stack (the tenant's home region). */
    async bootstrapFor(tenant: { tenantSlug: string; externalId: string; region: string }): Promise<TenantBootstrap> {
      const { url } = await ensurePublished();
      const link = buildBootstrapLink({ ...tenant, templateUrl: url });
      return { ...link, template: template.body, templateVersion: template.version };
    },

    /**
     * The organization's link: the organization template, which deploys the published bootstrap template by its URL
     * through a StackSet, published next to it (content-addressed too).
     */
    async organizationLinkFor(tenant: {
      tenantSlug: string;
      externalId: string;
      region: string;
      targetOus: readonly string[];
      includeManagementAccount: boolean;
    }): Promise<OrganizationLink> {
      const { url: bootstrapTemplateUrl } = await ensurePublished();
      const body = renderOrganizationTemplate({ platformPrincipalArn: deps.platformPrincipalArn, bootstrapTemplateUrl });
      const published = await publishBootstrapTemplate(deps.s3, deps.publish, body);
      const names = organizationNames(tenant.tenantSlug);
      const P = ORGANIZATION_TEMPLATE_PARAMETERS;
      return {
        quickCreateUrl: buildQuickCreateUrl({
          region: tenant.region,
          templateUrl: published.url,
          stackName: names.stackName,
          parameters: {
            [P.tenantSlug]: tenant.tenantSlug,
            [P.externalId]: tenant.externalId,
            ...(tenant.targetOus.length > 0 ? { [P.targetOus]: tenant.targetOus.join(",") } : {}),
            [P.includeManagementAccount]: String(tenant.includeManagementAccount),
          },
        }),
        templateUrl: published.url,
        templateVersion: published.version,
        stackName: names.stackName,
        stackSetName: names.stackSetName,
        readerRoleName: names.readerRoleName,
        region: tenant.region,
      };
    },

    offboardingFor(tenant: { tenantSlug: string; region: string }): OffboardingInstructions {
      return buildOffboardingInstructions(tenant);
    },
  };
}

export type BootstrapLinkService = ReturnType<typeof createBootstrapLinkService>;
