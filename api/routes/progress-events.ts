/**
 * GET /v1/tenants/{slug}/progress/events: the tenant's onboarding progress as server-sent events. The first event is
 * the current progress; another follows whenever it changes. It is read from the database each tick, not from this
 * process's memory, so any replica can serve any tenant's stream. Authenticated like every /v1 call (the console
 * reads it with fetch() and the Authorization header: no token in the URL).
 */
import { createRoute } from "@hono/zod-openapi";
import type { Services } from "../../services";
import { presentProgress } from "../presenters";
import { security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { errorResponses, slugParamsSchema } from "../schemas";
import { componentRef, eventOnChange, eventStreamResponse, type EventStreams } from "../sse";

export interface ProgressEventsOptions {
  /** How often the stream reads the progress (ms). */
  pollMs?: number;
  /** A comment line at least this often keeps proxies from closing an idle stream (ms). */
  keepAliveMs?: number;
  /** The streams' cap, token re-check and polling loop (api/sse.ts). */
  streams: EventStreams;
}

const progressEventsRoute = createRoute({
  method: "get",
  path: "/{slug}/progress/events",
  operationId: "getProgressEvents",
  tags: ["onboarding"],
  summary: "Onboarding progress as server-sent events (event `progress`, the JSON of GET .../progress, sent on every change)",
  security,
  request: { params: slugParamsSchema },
  responses: {
    200: eventStreamResponse("event stream: `progress` first and on every change", [{ event: "progress", data: componentRef("Progress"), id: true }]),
    ...errorResponses,
  },
});

export function progressEventsRouter({ onboarding }: Pick<Services, "onboarding">, options: ProgressEventsOptions) {
  const router = createRouter();
  const pollMs = options.pollMs ?? 1000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;

  router.openapi(progressEventsRoute, async (c) => {
    const org = await c.var.tenant();
    const progressEvent = eventOnChange("progress");
    return options.streams.stream(c, c.get("principal"), {
      pollMs,
      keepAliveMs,
      poll: async () => ({ events: progressEvent(JSON.stringify(presentProgress(await onboarding.progress(org)))) }),
    });
  });

  return router;
}
