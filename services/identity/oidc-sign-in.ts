/**
 * Single sign-on: the service is a relying party of the configured OpenID Connect provider (openid-client): issuer
 * discovery, the authorization code flow with PKCE (S256), state and nonce, and the ID token validated by the library.
 * Claims the ID token lacks (email, name, the operator claim) are read from the userinfo endpoint.
 */
import * as client from "openid-client";
import { UnauthorizedError, UpstreamUnavailableError } from "../../lib/errors";
import { claimGrants, type PendingSignIn, type ProviderIdentity } from "./provider-identity";

export interface OidcSettings {
  issuerUrl: string;
  clientId: string;
  clientSecret: string;
  providerName: string;
  /** Space-separated, openid among them. */
  scopes: string;
  operatorClaim: string;
  operatorValues: readonly string[];
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

export function createOidcSignIn(settings: OidcSettings) {
  let discovered: Promise<client.Configuration> | undefined;
  // Plain http only to an identity provider on this machine (a development provider); anywhere else TLS is required.
  const insecure = new URL(settings.issuerUrl).protocol === "http:" && LOOPBACK.has(new URL(settings.issuerUrl).hostname);

  function configuration(): Promise<client.Configuration> {
    discovered ??= client
      .discovery(
        new URL(settings.issuerUrl),
        settings.clientId,
        settings.clientSecret,
        undefined,
        insecure ? { execute: [client.allowInsecureRequests] } : undefined,
      )
      .catch((error: unknown) => {
        discovered = undefined;
        throw new UpstreamUnavailableError(
          `the identity provider ${settings.issuerUrl} cannot be reached or discovered (${error instanceof Error ? error.message : String(error)}): try again shortly`,
          { code: "identity_provider_unavailable" },
        );
      });
    return discovered;
  }

  return {
    providerName: settings.providerName,

    /** Where to send the browser, and what to keep in its cookie until the callback. */
    async begin(redirectUri: string, invitation?: string): Promise<{ url: string; pending: PendingSignIn }> {
      const config = await configuration();
      const codeVerifier = client.randomPKCECodeVerifier();
      const pending: PendingSignIn = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        codeVerifier,
        ...(invitation ? { invitation } : {}),
      };
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: settings.scopes,
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: "S256",
        state: pending.state,
        nonce: pending.nonce,
      });
      return { url: url.href, pending };
    },

    /** The identity of the callback's code: exchanged, the ID token validated (signature, issuer, audience, nonce). */
    async complete(callbackUrl: URL, pending: PendingSignIn): Promise<ProviderIdentity> {
      const config = await configuration();
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
      try {
        tokens = await client.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
      } catch (error) {
        throw new UnauthorizedError(`the identity provider's answer was refused: ${error instanceof Error ? error.message : String(error)}`, {
          code: "sign_in_refused",
        });
      }
      const idClaims = tokens.claims();
      if (!idClaims) throw new UnauthorizedError("the identity provider returned no ID token", { code: "sign_in_refused" });
      let claims: Record<string, unknown> = { ...idClaims };
      if (claims.email === undefined || claims[settings.operatorClaim] === undefined) {
        const userInfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub).catch(() => undefined);
        if (userInfo) claims = { ...userInfo, ...claims };
      }
      return {
        issuer: idClaims.iss,
        subject: idClaims.sub,
        email: typeof claims.email === "string" ? claims.email.toLowerCase() : null,
        name: typeof claims.name === "string" ? claims.name : null,
        operator: claimGrants(claims[settings.operatorClaim], settings.operatorValues),
      };
    },
  };
}

export type OidcSignIn = ReturnType<typeof createOidcSignIn>;
