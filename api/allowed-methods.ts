/**
 * 405 for a known path asked with a method it does not have: the methods the app's routes serve for a path, for the
 * `Allow` header. Middleware (registered for every method) does not count.
 */
import type { Hono } from "hono";

interface RouteEntry {
  method: string;
  path: string;
}

/** A Hono route path (`/v1/tenants/:slug`, `/:provider{azure|gcp}`, `*`) as an anchored regular expression. */
export function routePattern(path: string): RegExp {
  let source = "";
  for (let rest = path; rest.length > 0; ) {
    const param = /^:[\w-]+(\{((?:[^{}]|\{[^{}]*\})+)\})?/.exec(rest);
    if (param) {
      source += param[2] ? `(?:${param[2]})` : "[^/]+";
      rest = rest.slice(param[0].length);
    } else if (rest[0] === "*") {
      source += ".*";
      rest = rest.slice(1);
    } else {
      source += rest[0]!.replace(/[.+?^$()|[\]\\{}]/g, "\\$&");
      rest = rest.slice(1);
    }
  }
  return new RegExp(`^${source.replace(/\/$/, "")}/?$`);
}

/** Path segments without a parameter: `/v1/tenants/:slug/integrations/aws` has 4. */
const staticSegments = (path: string) => path.split("/").filter((segment) => segment !== "" && !segment.startsWith(":") && segment !== "*").length;

/**
 * The methods routes of `app` answer for `path` (HEAD where GET is), sorted; empty for an unknown path. Where routes
 * of different shapes match, the most specific wins, as in the document: `/integrations/setup` is its own resource
 * (POST), not a `/integrations/{provider}` (whose provider is aws, azure or gcp).
 */
export function createAllowedMethods(app: Pick<Hono, "routes">): (path: string) => string[] {
  let compiled: { method: string; pattern: RegExp; specificity: number }[] | undefined;
  return (path) => {
    compiled ??= (app.routes as RouteEntry[])
      .filter((route) => route.method !== "ALL")
      .map((route) => ({ method: route.method.toUpperCase(), pattern: routePattern(route.path), specificity: staticSegments(route.path) }));
    const matching = compiled.filter((route) => route.pattern.test(path));
    const best = Math.max(...matching.map((route) => route.specificity));
    const methods = new Set(matching.filter((route) => route.specificity === best).map((route) => route.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  };
}
