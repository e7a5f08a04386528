/** GET /v1/kpis: the platform operator's overview: every tenant's status, milestones and last run, and the onboarding KPIs. */
import { createRoute, z } from "@hono/zod-openapi";
import { ONBOARDING_STATUSES, RUN_KINDS, RUN_STATUSES } from "../../db/schema";
import type { Services } from "../../services";
import { presentOverview } from "../presenters";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { errorResponses } from "../schemas";

const overviewSchema = z
  .object({
    kpis: z.object({
      tenants_connected: z.number().openapi({ description: "tenants that ever connected AWS (audit: integration.aws.connect)" }),
      tenants_completed: z.number().openapi({ description: "of those, tenants that reached completed (audit: onboarding.completed)" }),
      completion_rate: z.number().nullable().openapi({ description: "completed / connected (0..1)" }),
      median_seconds_to_onboard: z.number().nullable().openapi({ description: "first connect to first completed, median" }),
      p90_seconds_to_onboard: z.number().nullable().openapi({ description: "first connect to first completed, 90th percentile (nearest rank)" }),
    }),
    tenants: z.array(
      z.object({
        slug: z.string(),
        name: z.string(),
        onboarding_status: z.enum(ONBOARDING_STATUSES),
        drifted: z.boolean().openapi({ description: "the last drift check found changes made outside the stack" }),
        connected_at: z.string().nullable(),
        completed_at: z.string().nullable(),
        seconds_to_onboard: z.number().nullable(),
        last_run: z
          .object({
            id: z.string(),
            kind: z.enum(RUN_KINDS),
            status: z.enum(RUN_STATUSES),
            requested_at: z.string(),
            finished_at: z.string().nullable(),
          })
          .nullable(),
      }),
    ),
  })
  .openapi("OnboardingOverview");

const overviewRoute = createRoute({
  method: "get",
  path: "/kpis",
  tags: ["tenants"],
  summary: "Onboarding KPIs over all tenants, and each tenant's status, time to onboard and last run (platform admin)",
  security,
  responses: { 200: json(overviewSchema, "the overview"), ...errorResponses },
});

export function overviewRouter({ tenants }: Pick<Services, "tenants">) {
  const router = createRouter();
  router.openapi(overviewRoute, async (c) => c.json(presentOverview(await tenants.overview(c.get("principal"))), 200));
  return router;
}
