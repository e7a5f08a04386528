/**
 * Every router of the API is an OpenAPIHono with the same validation hook (zod failures -> 400 naming each field), and
 * every route whose body is required refuses a missing or empty body with a 400 naming `body` (zod-openapi would
 * validate `{}` in its place when no content type is sent).
 */
import { OpenAPIHono, type Hook } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { ValidationError } from "../lib/errors";
import type { AppEnv } from "./auth";
import type { ZodType } from "zod";
import { fieldErrorsFromZod, validationHook } from "./errors";

/** A missing or empty body is a 400 naming `body`, together with any bad path parameter (validated after this). */
export function requireBody(params?: ZodType): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    // Read once; the JSON validator reads the same cached body.
    if ((await c.req.text()).trim() !== "") return next();
    const parsed = params?.safeParse(c.req.param());
    throw new ValidationError([
      ...(parsed && !parsed.success ? fieldErrorsFromZod(parsed.error, "param") : []),
      { field: "body", message: "is required: send a JSON object (Content-Type: application/json)" },
    ]);
  };
}

export function createRouter(): OpenAPIHono<AppEnv> {
  const router = new OpenAPIHono<AppEnv>({ defaultHook: validationHook as unknown as Hook<unknown, AppEnv, string, undefined> });
  const register = router.openapi.bind(router);
  router.openapi = ((route, handler, hook) => {
    if (!route.request?.body?.required) return register(route, handler, hook);
    const middleware = route.middleware === undefined ? [] : Array.isArray(route.middleware) ? route.middleware : [route.middleware];
    const params = route.request.params as ZodType | undefined;
    return register({ ...route, middleware: [requireBody(params), ...middleware] }, handler, hook);
  }) as typeof router.openapi;
  return router;
}
