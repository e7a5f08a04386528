/** Every router of the API is an OpenAPIHono with the same validation hook (zod failures -> 400 naming each field). */
import { OpenAPIHono, type Hook } from "@hono/zod-openapi";
import type { AppEnv } from "./auth";
import { validationHook } from "./errors";

export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook as unknown as Hook<unknown, AppEnv, string, undefined> });
}
