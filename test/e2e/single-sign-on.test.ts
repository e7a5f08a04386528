/// <reference lib="dom" />
/**
 * People sign in as people, through real parts: a real OpenID provider (oidc-provider, configured as a company's IdP
 * would be: a confidential client, PKCE, its own login page), a real SMTP server receiving the invitation mails
 * (smtp-server), chromium (playwright-core) for every person, each in a browser context of their own, and the service
 * as a process on PostgreSQL, with moto behind it for the AWS connection.
 *
 *   1. the operator signs in through the provider's login page (the operator group makes them one); a stranger is refused
 *   2. the operator creates a tenant and invites its admin; the admin opens the link from the mail, signs in, connects AWS
 *   3. the admin invites a viewer, who sees progress and cannot start a run (no button, 403 from the service)
 *   4. a forged cross-origin POST is refused; removing the viewer ends their session; a used invitation gets a page
 *   5. no session ID or invitation secret in the service's output, its rows or the pages' storage
 */
import { randomBytes } from "node:crypto";
import { createServer, type AddressInfo } from "node:net";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { hashToken } from "../../db/crypto";
import { CHROMIUM_OPTIONS, reachLoopbackOnly, screenChecks } from "../harness/console-browser";
import { createStackFromQuickCreateLink, customerAccount } from "../harness/customer-cloudformation";
import { startIdentityProvider, type TestIdentityProvider } from "../harness/identity-provider";
import { serviceUnderTest } from "../harness/service-under-test";
import { linksIn, startSmtpSink, type SmtpSink } from "../harness/smtp-sink";
import { AGENT_PUBLIC_BASE_URL, newAccountId } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const REGION = "us-east-1";
const TEMPLATE_BUCKET = "mini-xdr-sso-templates";
const PROVIDER_NAME = "Example Corp SSO";
const OPERATORS_GROUP = "mxdr-operators";
const slug = `sso-${randomBytes(3).toString("hex")}`;
const customerAccountId = newAccountId();
const people = {
  operator: { login: "olivia", email: "olivia@platform.example", name: "Olivia Operator", groups: [OPERATORS_GROUP, "staff"] },
  admin: { login: "ada", email: "ada@customer.example", name: "Ada Admin", groups: ["customer-it"] },
  viewer: { login: "grace", email: "grace@customer.example", name: "Grace Viewer", groups: ["customer-soc"] },
  stranger: { login: "mallory", email: "mallory@elsewhere.example", name: "Mallory", groups: [] },
};

const waitFor = waitForWith({ timeoutMs: 120_000, retryErrors: true });
const { screenshots, checkScreen } = screenChecks();
const blocked: string[] = [];
const isQuickCreateLink = (url: URL) => url.host === `${REGION}.console.aws.amazon.com`;
let idp: TestIdentityProvider;
let smtp: SmtpSink;
let browser: Browser;
let port: number;

/** A port nothing listens on now (the service binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address() as AddressInfo;
      probe.close(() => resolve(free));
    });
  });
}
const contexts: BrowserContext[] = [];
/** Every invitation link mailed, and every session cookie a browser got: none may show up anywhere else. */
const secrets = new Map<string, string>();

const service = serviceUnderTest({
  name: "sso",
  ssmStandIn: true,
  offboardWhenDone: [{ slug }],
  env: () => ({
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_CLIENT_ID: idp.clientId,
    OIDC_CLIENT_SECRET: idp.clientSecret,
    OIDC_PROVIDER_NAME: PROVIDER_NAME,
    OIDC_SCOPES: "openid email profile groups",
    OIDC_OPERATOR_CLAIM: "groups",
    OIDC_OPERATOR_VALUES: OPERATORS_GROUP,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    // Mailed links carry the console's address, never one taken from a request: the service's port is chosen here.
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    SMTP_FROM: "Mini-XDR <no-reply@mini-xdr.test>",
    BOOTSTRAP_TEMPLATE_BUCKET: TEMPLATE_BUCKET,
    AGENT_PUBLIC_BASE_URL,
  }),
  beforeServerStart: async () => {
    idp = await startIdentityProvider({
      clientId: "mini-xdr-console",
      clientSecret: randomBytes(24).toString("base64url"),
      accounts: Object.values(people),
    });
    smtp = await startSmtpSink();
    port = await freePort();
    const s3 = new S3Client({ region: REGION });
    await s3.send(new CreateBucketCommand({ Bucket: TEMPLATE_BUCKET }));
    s3.destroy();
  },
  setUp: async (started) => {
    // The client's redirect URI is registered with the provider once the service's address is known, as an admin does.
    idp.allowRedirectUri(`${started.server.baseUrl}/auth/callback`);
    browser = await chromium.launch(CHROMIUM_OPTIONS);
  },
});
const base = () => service.server.baseUrl;

afterAll(async () => {
  await browser?.close();
  await smtp?.close();
  await idp?.close();
  if (screenshots.length) console.log(`single sign-on screenshots:\n${screenshots.map((file) => `  ${file}`).join("\n")}`);
});

/** A person's own browser (cookies apart), which reaches 127.0.0.1 only (the AWS console link goes to a stand-in page). */
async function browserOf(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  contexts.push(context);
  await reachLoopbackOnly(context, blocked, isQuickCreateLink);
  await context.route(
    (url) => isQuickCreateLink(url),
    (route) => route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html><title>Quick create stack</title><h1>stand-in</h1>" }),
  );
  return { context, page: await context.newPage() };
}

/** The provider's own login form: its login and password fields and its "Sign-in" button. */
async function logInAtProvider(page: Page, login: string): Promise<void> {
  await page.waitForURL((url) => url.origin === idp.issuer);
  await page.locator("input[name=login]").fill(login);
  await page.locator("input[name=password]").fill(`correct horse ${login}`);
  await page.getByRole("button", { name: "Sign-in" }).click();
}

async function sessionCookieOf(context: BrowserContext): Promise<string> {
  const cookie = (await context.cookies(base())).find((candidate) => candidate.name === "mxdr_session");
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Lax", secure: false });
  secrets.set(`session cookie ${secrets.size}`, cookie!.value);
  return cookie!.value;
}

async function mailedInvitationLink(to: string): Promise<string> {
  const mail = await smtp.waitForMail(to, 20_000);
  expect(mail.subject).toContain("You are invited to");
  const [link] = linksIn(mail.text).filter((url) => url.startsWith(`${base()}/auth/invitations/`));
  expect(link).toMatch(/\/auth\/invitations\/mxdr-invite_[A-Za-z0-9_-]{43}$/);
  secrets.set(`invitation to ${to}`, link!.split("/").pop()!);
  return link!;
}

/** A call made by the page itself, as its own script does: with the session's CSRF token. */
const callFromPage = (page: Page, method: string, path: string, body?: unknown) =>
  page.evaluate(
    async ({ method, path, body }) => {
      const session = await (await fetch("/v1/session")).json();
      const response = await fetch(path, {
        method,
        headers: { "content-type": "application/json", "x-csrf-token": session.csrf_token },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json().catch(() => null) };
    },
    { method, path, body },
  );

describe("single sign-on, invitations and roles (oidc-provider, smtp-server, chromium)", () => {
  let operator: { context: BrowserContext; page: Page };
  let admin: { context: BrowserContext; page: Page };
  let viewer: { context: BrowserContext; page: Page };

  it("1. the operator signs in through the provider's own login page; a person nobody invited is refused", async () => {
    operator = await browserOf();
    const { page } = operator;
    await page.goto(base());
    const signIn = page.getByRole("link", { name: `Sign in with ${PROVIDER_NAME}` });
    await signIn.waitFor();
    await checkScreen(page, "21-sso-sign-in");
    await signIn.click();
    await logInAtProvider(page, people.operator.login);
    await page.getByRole("heading", { name: "Onboarding KPIs" }).waitFor();
    expect(await page.locator("#who").innerText()).toBe(`${people.operator.email} · platform operator`);
    await sessionCookieOf(operator.context);

    const stranger = await browserOf();
    await stranger.page.goto(`${base()}/auth/sign-in`);
    await logInAtProvider(stranger.page, people.stranger.login);
    await stranger.page.getByRole("heading", { name: "You cannot sign in here yet" }).waitFor();
    expect(await stranger.page.getByRole("alert").innerText()).toContain(`${people.stranger.email} is not a member of any tenant`);
    expect((await stranger.context.cookies(base())).map((cookie) => cookie.name)).not.toContain("mxdr_session");
    await stranger.context.close();
  });

  it("2. the operator creates a tenant and invites its admin; the admin opens the mailed link, signs in and connects AWS", async () => {
    const { page } = operator;
    await page.getByRole("button", { name: "New tenant…" }).click();
    const dialog = page.getByRole("dialog", { name: "New tenant" });
    await dialog.getByLabel("Name").fill("Customer Corp");
    await dialog.getByLabel("Slug").fill("Not A Slug");
    await dialog.getByRole("button", { name: "Create tenant" }).click();
    await dialog.getByText("must be 3-40 lowercase letters").waitFor();
    await dialog.getByLabel("Slug").fill(slug);
    await dialog.getByLabel("AWS account ID (optional)").fill(customerAccountId);
    await checkScreen(page, "22-new-tenant");
    const createdAt = performance.now();
    await dialog.getByRole("button", { name: "Create tenant" }).click();
    await dialog.getByText("Customer Corp is created").waitFor();
    await dialog.getByRole("button", { name: "Close" }).click();
    await page.getByRole("heading", { name: "Customer Corp" }).waitFor();

    await page.getByRole("button", { name: "Invite…" }).click();
    const invite = page.getByRole("dialog", { name: "Invite to Customer Corp" });
    await invite.getByLabel("Email").fill(people.admin.email);
    expect(await invite.getByLabel("Role").inputValue()).toBe("admin");
    await invite.getByRole("button", { name: "Send invitation" }).click();
    await invite.getByText(`Invitation mailed to ${people.admin.email}`).waitFor();
    await checkScreen(page, "23-invite");
    await invite.getByRole("button", { name: "Close" }).click();

    // The admin's own browser: the link from the mail, the invitation page, the provider, then the tenant's console.
    const link = await mailedInvitationLink(people.admin.email);
    admin = await browserOf();
    await admin.page.goto(link);
    await admin.page.getByRole("heading", { name: "Join Customer Corp" }).waitFor();
    await admin.page.getByRole("button", { name: `Sign in with ${PROVIDER_NAME} to accept` }).click();
    await logInAtProvider(admin.page, people.admin.login);
    await admin.page.getByRole("heading", { name: "Welcome to Mini-XDR: get started in minutes with seamless cloud integration" }).waitFor();
    const seconds = ((performance.now() - createdAt) / 1000).toFixed(1);
    console.log(`single sign-on: from the operator's "New tenant" to the admin's first page: ${seconds} s`);
    expect(await admin.page.locator("#who").innerText()).toBe(`${people.admin.email} · admin of Customer Corp`);
    await sessionCookieOf(admin.context);

    // The admin connects AWS with the one click: the customer creates the stack from the link, the service connects.
    const connect = admin.page.getByRole("button", { name: "Connect AWS" });
    await expect.poll(() => connect.isEnabled(), { timeout: 30_000 }).toBe(true);
    const opened = admin.context.waitForEvent("page");
    await connect.click();
    const consoleTab = await opened;
    await consoleTab.waitForLoadState();
    await admin.page.getByText(/Waiting for the CloudFormation stack/).waitFor();
    const customer = await customerAccount(customerAccountId, REGION);
    expect((await createStackFromQuickCreateLink(customer, consoleTab.url())).status).toBe("CREATE_COMPLETE");
    await consoleTab.close();
    const up = await waitFor("the first up, started once the role answers", async () => {
      const { runs } = (await service.call("GET", `/v1/tenants/${slug}/runs?limit=5`)).body;
      return runs.find((run: { kind: string }) => run.kind === "up");
    });
    const settled = await service.settledRun(slug, up.id);
    expect({ status: settled.status, error: settled.error }).toEqual({ status: "succeeded", error: null });
    await admin.page.locator('[data-step="stack"] .step-icon.done').waitFor({ timeout: 60_000 });
    // The admin started the wait that connected; the audit trail names them: provider, subject and email.
    const [connected] = await service.sql<{ details: Record<string, string> }[]>`
      select details from audit_log where action = 'integration.aws.bootstrap_wait' and organization_id = (select id from organizations where slug = ${slug})`;
    expect(connected?.details).toMatchObject({
      actorName: people.admin.email,
      actorSubject: idp.subjectOf(people.admin.login),
      actorIssuer: idp.issuer,
    });
  });

  it("3. the admin invites a viewer, who sees progress and cannot start a run: no button on the page, 403 from the service", async () => {
    const { page } = admin;
    await page.getByRole("button", { name: "Members", exact: true }).click();
    await page.getByRole("button", { name: "Invite a colleague…" }).click();
    const invite = page.getByRole("dialog", { name: "Invite a colleague" });
    await invite.getByLabel("Email").fill(people.viewer.email);
    await invite.getByLabel("Role").selectOption("viewer");
    await invite.getByRole("button", { name: "Send invitation" }).click();
    await invite.getByText(`Invitation mailed to ${people.viewer.email}`).waitFor();
    await invite.getByRole("button", { name: "Close" }).click();
    await page.getByRole("cell", { name: people.viewer.email, exact: true }).waitFor();
    // The recent activity names who did what: the admin, by email, subject and identity provider.
    const byAdmin = `${people.admin.email} (${idp.subjectOf(people.admin.login)} at ${idp.issuer})`;
    await page.locator("#activity tr", { hasText: "member.invite" }).filter({ hasText: byAdmin }).waitFor();
    await checkScreen(page, "24-members");

    viewer = await browserOf();
    await viewer.page.goto(await mailedInvitationLink(people.viewer.email));
    await viewer.page.getByRole("button", { name: `Sign in with ${PROVIDER_NAME} to accept` }).click();
    await logInAtProvider(viewer.page, people.viewer.login);
    await viewer.page.locator(".progress-panel").waitFor();
    expect(await viewer.page.locator("#who").innerText()).toBe(`${people.viewer.email} · viewer of Customer Corp`);
    await sessionCookieOf(viewer.context);
    await viewer.page.locator('[data-step="stack"] .step-icon.done').waitFor();
    await checkScreen(viewer.page, "25-viewer");
    // No button that changes anything, on any view.
    for (const [view, button] of [
      ["Quick start", "Connect an organization"],
      ["Settings", "Save settings"],
      ["Members", "Invite a colleague…"],
    ] as const) {
      await viewer.page.getByRole("button", { name: view, exact: true }).click();
      await viewer.page.locator("#screen-title").waitFor();
      expect({ view, buttons: await viewer.page.getByRole("button", { name: button }).count() }).toEqual({ view, buttons: 0 });
    }
    expect(await viewer.page.getByRole("button", { name: /^Remove / }).count()).toBe(0);
    // And the service refuses what the page does not offer.
    expect(await callFromPage(viewer.page, "POST", `/v1/tenants/${slug}/runs`, { kind: "up" })).toMatchObject({
      status: 403,
      body: { error: { code: "viewer_read_only" } },
    });
    expect((await callFromPage(viewer.page, "GET", `/v1/tenants/${slug}/progress`)).status).toBe(200);
  });

  it("4. a forged cross-origin POST is refused; removing the viewer ends their session at once; a used invitation gets a page", async () => {
    // Another origin on the same site (the provider's, 127.0.0.1 on another port): the cookie goes along, the POST is refused.
    const forger = await admin.context.newPage();
    await forger.goto(`${idp.issuer}/.well-known/openid-configuration`);
    const forged = forger.waitForResponse((response) => response.url() === `${base()}/v1/tenants/${slug}/runs`);
    await forger.evaluate(
      (target) =>
        fetch(target, { method: "POST", credentials: "include", mode: "no-cors", headers: { "content-type": "text/plain" }, body: '{"kind":"up"}' }),
      `${base()}/v1/tenants/${slug}/runs`,
    );
    expect((await forged).status()).toBe(403);
    await forger.close();
    const { runs } = (await service.call("GET", `/v1/tenants/${slug}/runs?limit=5`)).body;
    expect(runs.filter((run: { kind: string }) => run.kind === "up")).toHaveLength(1);

    // The admin removes the viewer: the viewer's open page loses its session and shows the sign-in page.
    await viewer.page.getByRole("button", { name: "Quick start", exact: true }).click();
    await admin.page.getByRole("button", { name: "Members", exact: true }).click();
    await admin.page.getByRole("button", { name: `Remove ${people.viewer.email}` }).click();
    await admin.page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await viewer.page.getByRole("heading", { name: "Sign in to Mini-XDR" }).waitFor({ timeout: 30_000 });
    const gone = await viewer.context.request.get(`${base()}/v1/tenants/${slug}/progress`);
    expect(gone.status()).toBe(401);

    // The invitation link again: refused with a page that says why, and no session.
    const used = await browserOf();
    const invitation = [...secrets].find(([name]) => name === `invitation to ${people.viewer.email}`)![1];
    const answer = await used.page.goto(`${base()}/auth/invitations/${invitation}`);
    expect(answer!.status()).toBe(410);
    await used.page.getByText("this invitation was used already").waitFor();
    expect(await used.context.cookies(base())).toEqual([]);
  });

  it("5. no session ID or invitation secret in the service's output, its rows or any page's storage", async () => {
    expect(secrets.size).toBeGreaterThanOrEqual(5);
    const output = service.server.stdout() + service.server.stderr();
    const rows = await service.sql<{ dump: string }[]>`
      select (select coalesce(json_agg(t), '[]') from people t)::text || (select coalesce(json_agg(t), '[]') from browser_sessions t)::text
        || (select coalesce(json_agg(t), '[]') from invitations t)::text || (select coalesce(json_agg(t), '[]') from audit_log t)::text
        || (select coalesce(json_agg(t), '[]') from memberships t)::text as dump`;
    for (const [name, secret] of secrets) {
      expect(output.includes(secret), `${name} in the service's output`).toBe(false);
      expect(rows[0]!.dump.includes(secret), `${name} in the rows`).toBe(false);
    }
    // Hashed at rest: every session cookie is there as its hash only.
    for (const [name, secret] of secrets) if (name.startsWith("session cookie")) expect(rows[0]!.dump).toContain(hashToken(secret));
    for (const context of contexts.slice(0, 3)) {
      for (const page of context.pages()) {
        if (!page.url().startsWith(base())) continue;
        expect(await page.evaluate(() => JSON.stringify([localStorage, sessionStorage, document.cookie]))).toBe('[{},{},""]');
      }
    }
    expect(blocked).toEqual([]);
  });
});
