/**
 * The browser session cookie: the opaque session ID only, HttpOnly (no page script reads it), SameSite=Lax (another
 * site's form posts do not carry it), Path=/, Secure unless the service is reached on loopback over plain HTTP.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";

export const SESSION_COOKIE = "mxdr_session";

const isLoopback = (url: string) => ["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname);

export function setSessionCookie(c: Context, sessionId: string, expiresAt: Date): void {
  setCookie(c, SESSION_COOKIE, sessionId, {
    httpOnly: true,
    sameSite: "Lax",
    path: "/",
    secure: !isLoopback(c.req.url),
    expires: expiresAt,
  });
}

export const sessionCookieOf = (c: Context): string | undefined => getCookie(c, SESSION_COOKIE);

export function clearSessionCookie(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: "/", secure: !isLoopback(c.req.url) });
}
