/**
 * Builds the HTTP application over the platform's services (platform/create-platform.ts) and the HTTP settings of the
 * configuration: no globals, no process.env. api/server.ts is the only caller in production; in-process tests build it
 * from the same platform (test/harness/platform.ts).
 *
 *   *            access log line + HTTP latency metric (when observability is given), body limit (413)
 *   /metrics     Prometheus metrics (platform admin token)
 *   /healthz     liveness + database round trip (no auth)
 *   /openapi.json, /docs   the OpenAPI document and its Swagger UI, served from swagger-ui-dist (no auth)
 *   /v1/agents/* agent enrollment and heartbeat (the tenant's enrollment token; failures limited per client address)
 *   /v1/*        failed-authentication limit (api/auth-limit.ts) -> bearer auth -> Idempotency-Key -> routes;
 *                the event streams are capped and re-check their token (api/sse.ts)
 *   /api/onboarding/v2/*   the seeds' endpoint set, for tenant tokens
 *   /, /console/*   the web console (console/): a static page and its ES modules, no auth (the data calls carry it)
 */
import { bootstrapVersionsRouter, tenantBootstrapVersionRouter } from "./routes/bootstrap-versions";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Database } from "../db/client";
import type { Keyring } from "../db/crypto";
import { consoleRouter, loadConsoleAssets } from "../console/console-router";
import type { Services } from "../services";
import { DEFAULT_LIMITS, type ServiceConfig } from "../platform/config";
import { createAllowedMethods } from "./allowed-methods";
import { clientAddressOf, createAuthFailureLimiter, limitAuthFailures } from "./auth-limit";
import { bearerAuth, tenantScope } from "./auth";
import { sessionRouter } from "./routes/session";
import { signInRouter } from "./routes/sign-in";
import { mountDocsPage } from "./docs-page";
import { createEventStreams } from "./sse";
import { createErrorHandler, errorBody } from "./errors";
import { idempotency } from "./idempotency";
import { accessLog, metricsRouter, type Observability } from "./observability";
import { createRouter } from "./router";
import { activityRouter } from "./routes/activity";
import { agentsRouter } from "./routes/agents";
import { membersRouter } from "./routes/members";
import { deploymentRouter } from "./routes/deployment";
import { integrationsRouter, unsupportedProvidersRouter } from "./routes/integrations";
import { organizationRouter } from "./routes/organization";
import { onboardingRouter } from "./routes/onboarding";
import { seedCompatibleOnboardingRouter } from "./routes/seed-compatible-onboarding";
import { overviewRouter } from "./routes/overview";
import { progressEventsRouter } from "./routes/progress-events";
import { runsRouter } from "./routes/runs";
import { tenantsRouter } from "./routes/tenants";
import { adminTokensRouter, tokensRouter } from "./routes/tokens";
import { fleetRouter } from "./routes/fleet";
import { credentialRotationRouter } from "./routes/credential-rotation";
import { platformWebhooksRouter, tenantWebhooksRouter } from "./routes/webhooks";

export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;

/** What the app serves: the platform's services (platform/create-platform.ts builds them once) and the HTTP settings. */
export interface AppDependencies {
  services: Services;
  database: Pick<Database, "db" | "sql">;
  keyring: Keyring;
  config?: Partial<Pick<ServiceConfig, ApiSettingsVariable>>;
  /** Where unexpected errors are logged (default: stderr). */
  log?: (message: string) => void;
  version?: string;
  /** Access log lines and metrics (api/observability.ts); none: neither, nor /metrics. */
  observability?: Observability;
}

type ApiSettingsVariable =
  | "BODY_LIMIT_BYTES"
  | "EVENT_STREAM_MAX_SECONDS"
  | "MAX_QUEUED_RUNS_PER_TENANT"
  | "MAX_EVENT_STREAMS_PER_TENANT"
  | "AUTH_FAILURE_LIMIT"
  | "AUTH_FAILURE_WINDOW_SECONDS"
  | "TRUSTED_PROXY_HOPS"
  | "PUBLIC_URL";

export type ApiLimits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: number };

export function createApp(deps: AppDependencies) {
  const { db, sql } = deps.database;
  const { services, config = {} } = deps;
  const maxSize = config.BODY_LIMIT_BYTES ?? DEFAULT_BODY_LIMIT_BYTES;
  const limits: ApiLimits = {
    maxQueuedRunsPerTenant: config.MAX_QUEUED_RUNS_PER_TENANT ?? DEFAULT_LIMITS.maxQueuedRunsPerTenant,
    maxEventStreamsPerTenant: config.MAX_EVENT_STREAMS_PER_TENANT ?? DEFAULT_LIMITS.maxEventStreamsPerTenant,
    authFailureLimit: config.AUTH_FAILURE_LIMIT ?? DEFAULT_LIMITS.authFailureLimit,
    authFailureWindowSeconds: config.AUTH_FAILURE_WINDOW_SECONDS ?? DEFAULT_LIMITS.authFailureWindowSeconds,
    trustedProxyHops: config.TRUSTED_PROXY_HOPS ?? DEFAULT_LIMITS.trustedProxyHops,
  };
  const app = createRouter();

  app.onError(createErrorHandler(deps.log));
  const allowedMethods = createAllowedMethods(app);
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path);
    if (allow.length > 0) {
      c.header("Allow", allow.join(", "));
      return c.json(errorBody("method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; allowed: ${allow.join(", ")}`), 405);
    }
    return c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
  });
  if (deps.observability) app.use("*", accessLog(deps.observability));
  app.use(
    "*",
    bodyLimit({
      maxSize,
      // The rest of the oversized body is not read: close the connection so the client's next request starts clean.
      onError: (c) => {
        c.header("Connection", "close");
        return c.json(errorBody("payload_too_large", `the request body exceeds ${maxSize} bytes`), 413);
      },
    }),
  );

  app.get("/healthz", async (c) => {
    await sql`select 1`;
    return c.json({ status: "ok" });
  });

  const streams = createEventStreams(services.tenants, services.identity, {
    maxPerSubject: limits.maxEventStreamsPerTenant,
    maxSeconds: config.EVENT_STREAM_MAX_SECONDS,
  });
  // Failed authentications per client address; bearer tokens and enrollment tokens are guessed apart, limited apart.
  const clientOf = (c: Context) => clientAddressOf(c, limits.trustedProxyHops);
  const failureLimiter = () => createAuthFailureLimiter({ limit: limits.authFailureLimit, windowMs: limits.authFailureWindowSeconds * 1000 });
  const bearerFailures = limitAuthFailures(failureLimiter(), clientOf, "bearer token");
  const enrollmentFailures = limitAuthFailures(failureLimiter(), clientOf, "enrollment token");

  if (deps.observability) {
    app.use("/metrics", bearerFailures);
    app.route("/metrics", metricsRouter(services.tenants, deps.observability.metrics));
  }

  // Agents authenticate with their tenant's enrollment token, not a bearer API token.
  app.route("/auth", signInRouter(services, { publicUrl: config.PUBLIC_URL }));
  app.use("/v1/agents/*", enrollmentFailures);
  app.route("/v1/agents", agentsRouter(services));

  const v1 = createRouter();
  v1.use("*", bearerFailures);
  v1.use("*", bearerAuth(services.tenants, services.identity, config.PUBLIC_URL));
  v1.use("*", idempotency(db, deps.keyring));

  const tenants = createRouter();
  // "/:slug/*" also matches "/:slug" itself.
  tenants.use("/:slug/*", tenantScope(services.tenants));
  tenants.route("/", tenantsRouter(services));
  tenants.route("/", integrationsRouter(services));
  tenants.route("/", tenantBootstrapVersionRouter(services));
  tenants.route("/", organizationRouter(services));
  tenants.route("/", tokensRouter(services));
  tenants.route("/", membersRouter(services));
  tenants.route("/", activityRouter(services));
  tenants.route("/", runsRouter(services, { streams }));
  tenants.route("/", onboardingRouter(services));
  tenants.route("/", progressEventsRouter(services, { streams }));
  tenants.route("/", deploymentRouter(services));
  tenants.route("/", tenantWebhooksRouter(services));
  tenants.route("/", unsupportedProvidersRouter());
  v1.route("/tenants", tenants);
  v1.route("/", overviewRouter(services));
  v1.route("/", bootstrapVersionsRouter(services));
  v1.route("/", fleetRouter(services, { streams }));
  v1.route("/", adminTokensRouter(services));
  v1.route("/", platformWebhooksRouter(services));
  v1.route("/", credentialRotationRouter(services));
  v1.route("/", sessionRouter(services));
  app.route("/v1", v1);

  const v2 = createRouter();
  v2.use("*", bearerFailures);
  v2.use("*", bearerAuth(services.tenants));
  v2.use("*", idempotency(db, deps.keyring));
  v2.route("/", seedCompatibleOnboardingRouter(services));
  app.route("/api/onboarding/v2", v2);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer" });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Mini-XDR tenant onboarding API",
      version: deps.version ?? "0.1.0",
      description:
        "Tenants, their cloud integrations, stack runs, discovery, agent rollout and validation. Authenticate with `Authorization: Bearer <token>`.",
    },
  });
  mountDocsPage(app, "/openapi.json");
  app.route("/", consoleRouter(loadConsoleAssets({ providerName: services.singleSignOn?.providerName })));

  return app;
}
