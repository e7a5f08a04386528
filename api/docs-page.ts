/**
 * /docs: Swagger UI for /openapi.json, every byte served by this service from the npm package `swagger-ui-dist`
 * (pinned), so the page works where no CDN can be reached. A Content-Security-Policy limits the page to this origin
 * (Swagger UI's validator badge, the one thing it would fetch from elsewhere, is turned off).
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Hono } from "hono";
import type { AppEnv } from "./auth";

const DIST = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

/** The files of swagger-ui-dist the page uses (and the style sheet's source map), with their media types. */
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui.css.map": "application/json",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

export const DOCS_CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

function page(openApiPath: string): string {
  return `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Mini-XDR tenant onboarding API</title>
    <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
    <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  </head>
  <body>
    <div id="swagger-ui" data-openapi-url="${openApiPath}"></div>
    <script src="/docs/assets/swagger-ui-bundle.js"></script>
    <script src="/docs/swagger-initializer.js"></script>
  </body>
</html>
`;
}

/** Our initializer (the package's own points at a public demo document). validatorUrl null: no badge from swagger.io. */
const INITIALIZER = `window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
`;

export function mountDocsPage(app: Hono<AppEnv>, openApiPath: string): void {
  const cache = new Map<string, Promise<Buffer>>();
  const secured = { "content-security-policy": DOCS_CONTENT_SECURITY_POLICY, "x-content-type-options": "nosniff" };

  app.get("/docs", (c) => c.html(page(openApiPath), 200, secured));
  app.get("/docs/swagger-initializer.js", (c) => c.body(INITIALIZER, 200, { ...secured, "content-type": "text/javascript; charset=utf-8" }));
  app.get("/docs/assets/:file", async (c) => {
    const file = c.req.param("file");
    const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
    if (!type) return c.json({ error: { code: "not_found", message: `no docs asset ${JSON.stringify(file)}` } }, 404);
    if (!cache.has(file)) cache.set(file, readFile(join(DIST, file)));
    const content = await cache.get(file)!;
    return c.body(new Uint8Array(content), 200, { ...secured, "content-type": type, "cache-control": "public, max-age=86400" });
  });
}
