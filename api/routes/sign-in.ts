/**
 * Signing in, as browsers do it (pages and redirects, under /auth):
 * - GET /auth/options: whether single sign-on is configured, and the provider's name for the sign-in button;
 * - GET /auth/sign-in → the identity provider (authorization code with PKCE) → GET /auth/callback: the session starts;
 * - GET /auth/sign-in-link/{token}: the single-use operator link printed at start without an identity provider;
 * - GET /auth/invitations/{token}: what the invitation offers, with a button; POST accepts it, through the identity
 *   provider when there is one, else as the invited email directly.
 * A link that cannot be used, a refused sign-in or a stranger gets a page that says why (410, 401, 403).
 */
import type { Context } from "hono";
import { Hono } from "hono";
import { DomainError, ForbiddenError, GoneError, NotFoundError } from "../../lib/errors";
import type { Services } from "../../services";
import type { StartedSession } from "../../services/identity/identity-service";
import { sameOrigin } from "../../services/identity/session-fns";
import { invitationPage, problemPage } from "../auth-pages";
import { statusOf } from "../errors";
import { setPendingSignInCookie, setSessionCookie, takePendingSignInCookie } from "../session-cookie";

type SignInServices = Pick<Services, "identity" | "invitations" | "singleSignOn">;

const TITLES: Record<number, string> = {
  401: "Sign-in did not complete",
  403: "You cannot sign in here yet",
  404: "Single sign-on is not configured",
  410: "This link cannot be used",
  503: "The identity provider is unavailable",
};

export function signInRouter({ identity, invitations, singleSignOn }: SignInServices, { publicUrl }: { publicUrl?: string } = {}) {
  const router = new Hono();
  const baseOf = (c: Context) => (publicUrl ?? new URL(c.req.url).origin).replace(/\/+$/, "");

  router.use("*", async (c, next) => {
    // Links carry secrets in their path: never cached, never sent to another origin as a Referer. (same-origin, not
    // no-referrer: with no-referrer a browser sends `Origin: null` on the invitation page's own form POST.)
    c.header("cache-control", "no-store");
    c.header("referrer-policy", "same-origin");
    // No script, no framing (a framed invitation page could be clicked for its viewer). No form-action: the
    // invitation's form redirects to the identity provider, which form-action would block.
    c.header("content-security-policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'");
    c.header("x-content-type-options", "nosniff");
    await next();
  });
  router.onError((error, c) => {
    if (!(error instanceof DomainError)) throw error;
    const status = statusOf(error);
    return c.html(problemPage(TITLES[status] ?? "Sign-in did not complete", error.message), status);
  });

  const signedIn = (c: Context, started: StartedSession) => {
    setSessionCookie(c, started.sessionId, started.expiresAt);
    return c.redirect("/", 303);
  };

  const toProvider = async (c: Context, invitation?: string) => {
    if (!singleSignOn)
      throw new NotFoundError("this service has no identity provider: use the sign-in link it printed at start, or an invitation link");
    const { url, pending } = await singleSignOn.begin(`${baseOf(c)}/auth/callback`, invitation);
    setPendingSignInCookie(c, pending);
    return c.redirect(url, 302);
  };

  router.get("/options", (c) => c.json({ single_sign_on: singleSignOn ? { provider_name: singleSignOn.providerName } : null }));

  router.get("/sign-in", (c) => toProvider(c));

  router.get("/callback", async (c) => {
    if (!singleSignOn) throw new NotFoundError("this service has no identity provider");
    const pending = takePendingSignInCookie(c);
    const providerError = c.req.query("error");
    if (providerError) {
      // Only the error code, which OAuth defines: the description is the query string's, anyone's words.
      throw new ForbiddenError(
        `the identity provider did not sign you in (${/^[a-z_]{1,40}$/.test(providerError) ? providerError : "error"}): try again`,
        {
          code: "sign_in_refused",
        },
      );
    }
    if (!pending)
      throw new GoneError("this sign-in expired or was started in another browser: start again from the sign-in page", { code: "sign_in_expired" });
    const callbackUrl = new URL(`${baseOf(c)}/auth/callback${new URL(c.req.url).search}`);
    const who = await singleSignOn.complete(callbackUrl, pending);
    return signedIn(c, pending.invitation ? await invitations.accept(pending.invitation, who) : await identity.signInWithProvider(who));
  });

  router.get("/sign-in-link/:token", async (c) => signedIn(c, await identity.redeemOperatorSignInLink(c.req.param("token"))));

  router.get("/invitations/:token", async (c) => {
    const invitation = await invitations.describe(c.req.param("token"));
    return c.html(invitationPage(invitation, c.req.path, singleSignOn?.providerName), 200);
  });

  router.post("/invitations/:token", async (c) => {
    if (!sameOrigin({ origin: c.req.header("origin"), referer: c.req.header("referer") }, [new URL(c.req.url).origin, baseOf(c)])) {
      throw new ForbiddenError("an invitation is accepted from its own page: open the link again", { code: "cross_site_request" });
    }
    const token = c.req.param("token");
    if (singleSignOn) {
      await invitations.describe(token);
      return toProvider(c, token);
    }
    return signedIn(c, await invitations.accept(token, "invited_email"));
  });

  return router;
}
