/**
 * One access line and one latency observation per request, and GET /metrics.
 *
 * The request id is the caller's `X-Request-Id` when it is a plain token (letters, digits, `-_.:`, up to 64), else a
 * new UUID; it is echoed in the response. The route is the matched pattern (`/v1/tenants/:slug/runs`), never the raw
 * path, so metric labels stay bounded and no id or slug becomes a series; unmatched paths are `unmatched`.
 * The query string is never logged.
 */
import { randomUUID } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { ServiceMetrics } from "../lib/metrics";
import type { Logger } from "../lib/telemetry";
import { requireAdmin } from "../services/core/principal";
import type { TenantService } from "../services/tenant/tenant-service";
import type { AppEnv } from "./auth";
import { bearerAuth } from "./auth";
import { createRouter } from "./router";

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface Observability {
  log: Logger;
  metrics: ServiceMetrics;
}

export function accessLog({ log, metrics }: Observability): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    const given = c.req.header("x-request-id");
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.header("X-Request-Id", requestId);
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const matched = routePath(c, -1);
      const route = !matched || matched === "*" || matched.endsWith("/*") ? "unmatched" : matched;
      const status = c.res.status;
      metrics.observeHttp(c.req.method, route, status, seconds);
      log.info(
        {
          event: "http.request",
          requestId,
          method: c.req.method,
          route,
          path: loggedPath(c.req.path),
          status,
          durationMs: Math.round(seconds * 1e4) / 10,
        },
        "request",
      );
    }
  };
}

/** Sign-in and invitation links carry their secret in the path: it never reaches the log. */
const loggedPath = (path: string) => path.replace(/^(\/auth\/(?:invitations|sign-in-link))\/[^/]+/, "$1/[redacted]");

/** GET /metrics: the Prometheus exposition, for a platform admin token only (a scraper sends it as a bearer token). */
export function metricsRouter(tenants: TenantService, metrics: ServiceMetrics) {
  const router = createRouter();
  router.use("*", bearerAuth(tenants));
  router.get("/", async (c) => {
    requireAdmin(c.get("principal"));
    return c.body(await metrics.render(), 200, { "content-type": metrics.contentType, "cache-control": "no-store" });
  });
  return router;
}
