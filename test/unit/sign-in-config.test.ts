/** The sign-in settings are read and checked once, at start: single sign-on all or nothing, mailed links need PUBLIC_URL. */
import { describe, expect, it } from "vitest";
import { loadServiceConfig } from "../../platform/config";
import { configProblems } from "../harness/config-problems";

const problems = configProblems;

describe("sign-in settings", () => {
  it("default to sign-in links: no identity provider, no mail, a week's invitations", () => {
    expect(loadServiceConfig({})).toMatchObject({
      OIDC_ISSUER_URL: undefined,
      OIDC_SCOPES: "openid email profile",
      OIDC_OPERATOR_CLAIM: "groups",
      OIDC_OPERATOR_VALUES: [],
      SMTP_URL: undefined,
      INVITATION_SECONDS: 604_800,
      MAX_MEMBERS_PER_TENANT: 200,
      MAX_PENDING_INVITATIONS_PER_TENANT: 50,
    });
    expect(loadServiceConfig({ OIDC_OPERATOR_VALUES: " ops , platform-admins ,," }).OIDC_OPERATOR_VALUES).toEqual(["ops", "platform-admins"]);
  });

  it("take single sign-on as all three settings or none, naming the missing ones", () => {
    expect(
      problems({ OIDC_ISSUER_URL: "https://login.example.com" })
        .map((problem) => problem.variable)
        .sort(),
    ).toEqual(["OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"]);
    expect(problems({ OIDC_ISSUER_URL: "https://login.example.com", OIDC_CLIENT_ID: "console", OIDC_CLIENT_SECRET: "s3cret" })).toEqual([]);
    expect(problems({ OIDC_SCOPES: "email profile" })).toEqual([{ variable: "OIDC_SCOPES", message: "must include openid" }]);
  });

  it("refuse mailed invitations without PUBLIC_URL: a link is never built from a request's Host header", () => {
    expect(problems({ SMTP_URL: "smtp://127.0.0.1:2525" })).toEqual([
      { variable: "PUBLIC_URL", message: expect.stringContaining("required with SMTP_URL") },
    ]);
    expect(problems({ SMTP_URL: "smtp://127.0.0.1:2525", PUBLIC_URL: "https://xdr.example.com" })).toEqual([]);
    expect(problems({ SMTP_URL: "http://mail.example.com" })).toEqual([{ variable: "SMTP_URL", message: "must be an smtp:// or smtps:// URL" }]);
  });
});
