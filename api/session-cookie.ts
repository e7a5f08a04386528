/**
 * The browser session cookie: the opaque session ID only, HttpOnly (no page script reads it), SameSite=Lax (another
 * site's form posts do not carry it), Path=/, Secure unless the service is reached on loopback over plain HTTP.
 */
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { PendingSignIn } from "../services/identity/provider-identity";

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

/** A sign-in through the identity provider in progress: its state, nonce and PKCE verifier, for 10 minutes, /auth only. */
const PENDING_SIGN_IN_COOKIE = "mxdr_sign_in";

export function setPendingSignInCookie(c: Context, pending: PendingSignIn): void {
  setCookie(c, PENDING_SIGN_IN_COOKIE, Buffer.from(JSON.stringify(pending)).toString("base64url"), {
    httpOnly: true,
    sameSite: "Lax",
    path: "/auth",
    secure: !isLoopback(c.req.url),
    maxAge: 600,
  });
}

/** The pending sign-in (removed: a callback is used once); undefined when absent or not ours. */
export function takePendingSignInCookie(c: Context): PendingSignIn | undefined {
  const raw = getCookie(c, PENDING_SIGN_IN_COOKIE);
  deleteCookie(c, PENDING_SIGN_IN_COOKIE, { path: "/auth", secure: !isLoopback(c.req.url) });
  if (!raw) return undefined;
  try {
    const value = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as Partial<PendingSignIn>;
    if (typeof value.state !== "string" || typeof value.nonce !== "string" || typeof value.codeVerifier !== "string") return undefined;
    return {
      state: value.state,
      nonce: value.nonce,
      codeVerifier: value.codeVerifier,
      ...(typeof value.invitation === "string" ? { invitation: value.invitation } : {}),
    };
  } catch {
    return undefined;
  }
}
