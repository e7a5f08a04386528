/**
 * The signed-in person's session. /v1/session: who is signed in and the session's CSRF token (which every
 * state-changing request of the console sends back), sign-out, sign-out everywhere. Signing in is api/routes/sign-in.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../services";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { errorResponses, postErrorResponses } from "../schemas";
import { clearSessionCookie, sessionCookieOf } from "../session-cookie";

const sessionSchema = z
  .object({
    kind: z.enum(["session", "token"]),
    actor: z.string(),
    email: z.string().nullable(),
    scope: z.enum(["platform_admin", "tenant"]),
    role: z.enum(["admin", "viewer"]),
    /** The session's CSRF token: sent back as X-CSRF-Token; null for a token. */
    csrf_token: z.string().nullable(),
  })
  .openapi("Session");

const sessionRoute = createRoute({
  method: "get",
  path: "/session",
  operationId: "getSession",
  tags: ["session"],
  summary: "Who is signed in (a browser session or a token), their scope and role, and the session's CSRF token",
  security,
  responses: { 200: json(sessionSchema, "the caller"), ...errorResponses },
});

const signOutRoute = (path: "/session/sign-out" | "/session/sign-out-everywhere", summary: string) =>
  createRoute({
    method: "post",
    path,
    operationId: path === "/session/sign-out" ? "signOut" : "signOutEverywhere",
    tags: ["session"],
    summary,
    security,
    responses: { 200: json(z.object({ sessions_ended: z.number().int() }), "signed out"), ...errorResponses, ...postErrorResponses },
  });

export function sessionRouter({ identity }: Pick<Services, "identity">) {
  const router = createRouter();
  router.openapi(sessionRoute, async (c) => {
    const principal = c.get("principal");
    const sessionId = principal.person ? sessionCookieOf(c) : undefined;
    return c.json(
      {
        kind: principal.person ? ("session" as const) : ("token" as const),
        actor: principal.actor,
        email: principal.person?.email ?? null,
        scope: principal.scope,
        role: principal.role ?? "admin",
        csrf_token: sessionId ? identity.csrfTokenOf(sessionId) : null,
      },
      200,
    );
  });
  router.openapi(signOutRoute("/session/sign-out", "End this browser session"), async (c) => {
    const principal = c.get("principal");
    await identity.signOut(principal);
    clearSessionCookie(c);
    return c.json({ sessions_ended: principal.person ? 1 : 0 }, 200);
  });
  router.openapi(signOutRoute("/session/sign-out-everywhere", "End every browser session of the signed-in person"), async (c) => {
    const ended = await identity.signOutEverywhere(c.get("principal"));
    clearSessionCookie(c);
    return c.json({ sessions_ended: ended }, 200);
  });
  return router;
}
