/**
 * Tenants as the end-to-end tests and benchmarks set them up through the service's API: what a customer brings (a
 * slug, its own AWS account in moto, an external ID, the bootstrap role), creating the tenant, connecting AWS, and
 * waiting for one of its runs to settle. Failures throw with the answer's status and body.
 */
import { randomBytes, randomInt } from "node:crypto";
import { createBootstrapRole, waitFor, type Call, type CallFn, type WaitOptions } from "./server";

export const PLATFORM_PRINCIPAL_ARN = "arn:aws:iam::123456789012:role/MiniXdrPlatform";
export const AGENT_PUBLIC_BASE_URL = "https://agents.mini-xdr.example.com";
export const BOOTSTRAP_ROLE_NAME = "MiniXdrBootstrap";
/** Run statuses a run never leaves. */
export const TERMINAL_RUN_STATUSES = ["succeeded", "failed", "cancelled", "interrupted"];

/** A fresh 12-digit AWS account id from `first` up (moto keeps accounts apart). */
export const newAccountId = (first = 400_000_000_000) => String(first + randomInt(99_999_999_999));
export const newExternalId = (prefix = "mxdr-ext") => `${prefix}_${randomBytes(18).toString("base64url")}`;
export const bootstrapRoleArnOf = (account: string) => `arn:aws:iam::${account}:role/${BOOTSTRAP_ROLE_NAME}`;

export interface TenantRecord {
  slug: string;
  account: string;
  externalId: string;
  roleArn: string;
  /** Its tenant-scoped API token, once issued. */
  token: string;
}

export function newTenantRecord(slug: string, { externalIdPrefix = "mxdr-ext", firstAccount = 400_000_000_000 } = {}): TenantRecord {
  const account = newAccountId(firstAccount);
  return { slug, account, externalId: newExternalId(externalIdPrefix), roleArn: bootstrapRoleArnOf(account), token: "" };
}

export interface CreateTenantOptions {
  /** Default: `<slug> Inc.`. */
  name?: string;
  /** Default: us-east-1 only; the first is the home region. */
  regions?: string[];
  /** More integration_settings (require_approval, targeting_mode, ...). */
  settings?: Record<string, unknown>;
  /** More top-level fields of the request (onboarding_flow_version, ...). */
  body?: Record<string, unknown>;
}

/** POST /v1/tenants for a tenant in its own account, agents served from AGENT_PUBLIC_BASE_URL; 201 or it throws. */
export async function createTenantThroughApi(
  call: CallFn,
  tenant: { slug: string; account: string },
  { name = `${tenant.slug} Inc.`, regions = ["us-east-1"], settings = {}, body = {} }: CreateTenantOptions = {},
): Promise<Call> {
  const created = await call("POST", "/v1/tenants", {
    body: {
      slug: tenant.slug,
      name,
      integration_settings: { agent_public_base_url: AGENT_PUBLIC_BASE_URL, regions, home_region: regions[0], aws_account_id: tenant.account, ...settings },
      ...body,
    },
  });
  if (created.status !== 201) throw new Error(`POST /v1/tenants (${tenant.slug}): ${created.status} ${created.text}`);
  return created;
}

/** The customer creates the bootstrap role in moto, then PUT integrations/aws names it; the answer is not checked. */
export async function connectAwsThroughApi(call: CallFn, tenant: { slug: string; account: string; externalId: string }): Promise<Call> {
  const roleArn = await createBootstrapRole({ accountId: tenant.account, roleName: BOOTSTRAP_ROLE_NAME, externalId: tenant.externalId });
  return call("PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { body: { bootstrap_role_arn: roleArn, external_id: tenant.externalId } });
}

/** createTenantThroughApi, then connectAwsThroughApi (201 or it throws). */
export async function onboardThroughApi(
  call: CallFn,
  tenant: { slug: string; account: string; externalId: string },
  options: CreateTenantOptions = {},
): Promise<void> {
  await createTenantThroughApi(call, tenant, options);
  const connected = await connectAwsThroughApi(call, tenant);
  if (connected.status !== 201) throw new Error(`PUT /v1/tenants/${tenant.slug}/integrations/aws: ${connected.status} ${connected.text}`);
}

/** Polls GET run (200 or it throws) until its status is terminal; returns the run. */
export function waitForRunToSettle(
  call: CallFn,
  slug: string,
  runId: string,
  { token, ...wait }: { token?: string } & WaitOptions = {},
): Promise<any> {
  return waitFor(
    `run ${runId} of ${slug} to finish`,
    async () => {
      const run = await call("GET", `/v1/tenants/${slug}/runs/${runId}`, { token });
      if (run.status !== 200) throw new Error(`GET run ${runId} of ${slug}: ${run.status} ${run.text}`);
      return TERMINAL_RUN_STATUSES.includes(run.body.status) ? run.body : undefined;
    },
    wait,
  );
}
