/**
 * The web console, served by the service: GET / is a static page (the sign-in form renders without JavaScript), and
 * /console/<file> its plain ES modules and stylesheet from console/client, served as they are on disk (no build
 * step), gzipped when the browser accepts it, with an ETag. Nothing comes from another host: the Content Security
 * Policy allows only this origin. The page holds no data: every data call is made by the client with the browser
 * session (its HttpOnly cookie, and the session's CSRF token on calls that change something).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { Hono } from "hono";
import { consolePage } from "./console-page";

export const CONSOLE_CLIENT_DIR = join(import.meta.dirname, "client");

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

interface Asset {
  body: Buffer;
  gzipped: Buffer;
  contentType: string;
  etag: string;
}

function asset(body: Buffer, contentType: string): Asset {
  return {
    body,
    gzipped: gzipSync(body, { level: 9 }),
    contentType,
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
  };
}

/** The console's files by URL path, read once. */
export function loadConsoleAssets(page: { providerName?: string } = {}, dir = CONSOLE_CLIENT_DIR): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir).sort()) {
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType) assets.set(`/console/${name}`, asset(readFileSync(join(dir, name)), contentType));
  }
  assets.set("/", asset(Buffer.from(consolePage(page), "utf8"), "text/html; charset=utf-8"));
  return assets;
}

export function consoleRouter(assets = loadConsoleAssets()) {
  const router = new Hono();
  const serve = (path: string) => (c: import("hono").Context) => {
    const file = assets.get(path);
    if (!file) return c.notFound();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
    c.header("content-type", file.contentType);
    c.header("cache-control", "no-cache");
    c.header("etag", file.etag);
    c.header("vary", "accept-encoding");
    if (c.req.header("if-none-match") === file.etag) return c.body(null, 304);
    if (/\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) {
      c.header("content-encoding", "gzip");
      return c.body(new Uint8Array(file.gzipped), 200);
    }
    return c.body(new Uint8Array(file.body), 200);
  };
  router.get("/", serve("/"));
  for (const path of assets.keys()) if (path !== "/") router.get(path, serve(path));
  return router;
}
