/**
 * A real OpenID Connect provider for tests (`oidc-provider`) on a port the kernel picks on 127.0.0.1, issuer
 * `http://127.0.0.1:<port>`, configured as an enterprise IdP is for a first-party app: one confidential client
 * (authorization code, PKCE S256 required; registered as client_secret_basic, and like most IdPs the provider takes the
 * secret in the form body too), scopes openid email profile groups, a fixed directory of accounts, and consent granted
 * by the provider itself, so the only page a user sees is the provider's own login form (devInteractions: `login` and
 * `password` inputs, a "Sign-in" button). Its cookies are named `idp_*`, apart from a service's on 127.0.0.1.
 *
 * The login form accepts a directory login (any non-empty password, or the account's `password` when set) and shows
 * the form again, with "Unknown login or wrong password.", for anything else. The subject (`sub`) is `user-<login>`;
 * email, email_verified, name and groups are in the ID token as well as at userinfo (`conformIdTokenClaims: false`),
 * each when its scope (email, profile, groups; or profile, with `groupsWithProfile`) was requested. A redirect URI can
 * be registered after the start (`allowRedirectUri`), as an administrator adds one in the IdP's console, since the
 * service's callback URL is only known once it listens.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
// @ts-expect-error oidc-provider ships no type declarations; the part used here is typed by OidcProvider below.
import { Provider as UntypedProvider } from "oidc-provider";

export interface DirectoryAccount {
  login: string;
  email: string;
  name: string;
  groups: string[];
  /** The only password the login form accepts for this account; unset: any non-empty password. */
  password?: string;
}

export interface IdentityProviderOptions {
  clientId: string;
  clientSecret: string;
  /** Exact redirect URIs of the client (more can be added with `allowRedirectUri`). */
  redirectUris?: string[];
  accounts: DirectoryAccount[];
  /**
   * The groups claim also comes with the profile scope, not only with the groups scope: an IdP whose app is set to
   * always include the groups claim (Entra ID's group claims, an Okta claim "always" included).
   */
  groupsWithProfile?: boolean;
}

export interface TestIdentityProvider {
  /** `http://127.0.0.1:<port>`; discovery at `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  port: number;
  clientId: string;
  clientSecret: string;
  /** The client's current redirect URIs. */
  readonly redirectUris: readonly string[];
  /** Registers one more exact redirect URI for the client (from the next request on). */
  allowRedirectUri(uri: string): void;
  /** The `sub` the provider gives an account of the directory. */
  subjectOf(login: string): string;
  close(): Promise<void>;
}

/** What the login form shows above itself after a refused sign-in. */
export const LOGIN_REFUSED_MESSAGE = "Unknown login or wrong password.";

const LOGIN_REFUSED_FLAG = "login_refused";
const MAX_FORM_BYTES = 16 * 1024;

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  type: string;
  req: IncomingMessage;
  res: ServerResponse;
  redirect(url: string): void;
}

interface OidcGrant {
  jti: string;
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  save(): Promise<string>;
}

interface OidcContext {
  oidc: {
    client: { clientId: string };
    session: { accountId?: string; grantIdFor(clientId: string): string | undefined };
    result?: { consent?: { grantId?: string } };
    requestParamOIDCScopes: Set<string>;
    requestParamClaims: Set<string>;
    provider: OidcProvider;
  };
}

interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  use(middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): OidcProvider;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<{ uid: string; prompt: { name: string } }>;
  interactionResult(
    request: IncomingMessage,
    response: ServerResponse,
    result: object,
    options: { mergeWithLastSubmission: boolean },
  ): Promise<string>;
  Grant: {
    new (properties: { accountId: string; clientId: string }): OidcGrant;
    find(id: string): Promise<OidcGrant | undefined>;
  };
}

const Provider = UntypedProvider as new (issuer: string, configuration: object) => OidcProvider;

/** The stable subject of a directory login. */
export function subjectOfLogin(login: string): string {
  return `user-${login}`;
}

export async function startIdentityProvider(options: IdentityProviderOptions): Promise<TestIdentityProvider> {
  const { clientId, clientSecret, accounts } = options;
  const byLogin = new Map(accounts.map((account) => [account.login, account]));
  const bySubject = new Map(accounts.map((account) => [subjectOfLogin(account.login), account]));
  // The client lives in the provider's storage (the "Client" model of the adapter), not in its static configuration,
  // so that a redirect URI registered later is seen: the provider reads a stored client on every request.
  const client = {
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [...(options.redirectUris ?? [])],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    application_type: "web",
  };

  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the identity provider's server has no TCP address");
  const issuer = `http://127.0.0.1:${address.port}`;

  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const configuration = {
    adapter: memoryAdapter(clientId, () => client),
    jwks: { keys: [{ ...privateKey.export({ format: "jwk" }), kid: randomUUID(), alg: "RS256", use: "sig" }] },
    cookies: {
      names: { session: "idp_session", interaction: "idp_interaction", resume: "idp_interaction_resume" },
      keys: [randomBytes(32).toString("base64url")],
    },
    scopes: ["openid", "email", "profile", "groups"],
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: options.groupsWithProfile ? ["name", "groups"] : ["name"],
      groups: ["groups"],
    },
    // Scope claims in the ID token too, not only at userinfo, as Entra ID, Google and Okta (for its groups claim) do.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx: unknown, sub: string) {
      const account = bySubject.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, email: account.email, email_verified: true, name: account.name, groups: [...account.groups] };
        },
      };
    },
    // First-party app: the provider grants what the client asks for, no consent page (the documented recipe).
    async loadExistingGrant(ctx: OidcContext) {
      const { oidc } = ctx;
      const accountId = oidc.session.accountId;
      if (!accountId) return undefined;
      const clientId = oidc.client.clientId;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(clientId);
      const grant = (grantId ? await oidc.provider.Grant.find(grantId) : undefined) ?? new oidc.provider.Grant({ accountId, clientId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(" "));
      if (oidc.requestParamClaims.size > 0) grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    // The provider's defaults for these print a notice on first use.
    ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 3600, Session: 86_400, Grant: 86_400 },
    clientBasedCORS: () => false,
    async renderError(ctx: KoaContext, out: Record<string, string>) {
      ctx.type = "html";
      ctx.body = page(
        "Sign-in failed",
        Object.entries(out).map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`),
      );
    },
  };

  let provider: OidcProvider;
  try {
    provider = withoutProviderWarnings(() => new Provider(issuer, configuration));
  } catch (error) {
    server.close();
    throw error;
  }

  provider.use(async (ctx, next) => {
    const uid = /^\/interaction\/([^/]+)$/.exec(ctx.path)?.[1];
    if (uid !== undefined && ctx.method === "POST" && (await pendingPrompt(provider, ctx)) === "login") {
      // The login form's submission: only directory accounts sign in, as `user-<login>`.
      const form = new URLSearchParams(await readBody(ctx.req));
      const account = byLogin.get(form.get("login") ?? "");
      const password = form.get("password") ?? "";
      ctx.status = 303;
      if (!account || password === "" || (account.password !== undefined && password !== account.password)) {
        ctx.redirect(`/interaction/${uid}?${LOGIN_REFUSED_FLAG}=1`);
        return;
      }
      const login = { accountId: subjectOfLogin(account.login) };
      ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, { login }, { mergeWithLastSubmission: false }));
      return;
    }
    await next();
    if (typeof ctx.body === "string" && ctx.type.startsWith("text/html")) {
      // Pages that load nothing from outside (the provider's pages import a Google font).
      let html = ctx.body.replaceAll(/@import url\(https:\/\/fonts\.googleapis\.com\/[^)]*\);/g, "");
      if (uid !== undefined && ctx.method === "GET" && ctx.query[LOGIN_REFUSED_FLAG] !== undefined) {
        const refusal = `<p class="login-error" role="alert">${LOGIN_REFUSED_MESSAGE}</p>`;
        html = html.replace('<form autocomplete="off"', `${refusal}\n<form autocomplete="off"`);
      }
      ctx.body = html;
    }
  });
  server.on("request", provider.callback());

  return {
    issuer,
    port: address.port,
    clientId,
    clientSecret,
    get redirectUris() {
      return [...client.redirect_uris];
    },
    allowRedirectUri(uri: string) {
      if (!URL.canParse(uri)) throw new Error(`not a redirect URI: ${uri}`);
      if (!client.redirect_uris.includes(uri)) client.redirect_uris.push(uri);
    },
    subjectOf(login: string) {
      if (!byLogin.has(login)) throw new Error(`no account ${login} in the identity provider's directory`);
      return subjectOfLogin(login);
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** The prompt an interaction waits for (`login`, `consent`), undefined when there is none for the request's cookie. */
async function pendingPrompt(provider: OidcProvider, ctx: KoaContext): Promise<string | undefined> {
  try {
    return (await provider.interactionDetails(ctx.req, ctx.res)).prompt.name;
  } catch {
    return undefined; // no interaction: the provider's own route answers with its error page
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new Error("login form too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

interface StoredEntry {
  payload: Record<string, unknown>;
  expiresAt: number;
}

/**
 * The provider's storage: its models (sessions, interactions, codes, tokens, grants) in memory for this provider
 * alone, and the one client read from `client()` at every lookup.
 */
function memoryAdapter(clientId: string, client: () => object) {
  const entries = new Map<string, StoredEntry>();
  const sessionIdsByUid = new Map<string, string>();
  const live = (key: string) => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= Date.now()) entries.delete(key);
    return entries.get(key)?.payload;
  };
  return (model: string) => ({
    async find(id: string) {
      if (model === "Client") return id === clientId ? structuredClone(client()) : undefined;
      return live(`${model}:${id}`);
    },
    async findByUid(uid: string) {
      const id = sessionIdsByUid.get(uid);
      return id === undefined ? undefined : live(`${model}:${id}`);
    },
    async findByUserCode(userCode: string) {
      for (const [key, entry] of entries) {
        if (key.startsWith(`${model}:`) && entry.payload.userCode === userCode) return live(key);
      }
      return undefined;
    },
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      if (model === "Client") throw new Error("the test identity provider's client is fixed: use allowRedirectUri");
      if (model === "Session" && typeof payload.uid === "string") sessionIdsByUid.set(payload.uid, id);
      const expiresAt = typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY;
      entries.set(`${model}:${id}`, { payload, expiresAt });
    },
    async consume(id: string) {
      const payload = live(`${model}:${id}`);
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    },
    async destroy(id: string) {
      entries.delete(`${model}:${id}`);
    },
    async revokeByGrantId(grantId: string) {
      for (const [key, entry] of entries) {
        if (entry.payload.grantId === grantId) entries.delete(key);
      }
    },
  });
}

/** Runs `fn` without the provider's console warnings about its development-only quick-start features (devInteractions). */
function withoutProviderWarnings<T>(fn: () => T): T {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === "string" && args[0].includes("oidc-provider WARNING")) return;
    warn(...args);
  };
  try {
    return fn();
  } finally {
    console.warn = warn;
  }
}

function page(title: string, body: string[]): string {
  const head = `<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`;
  return `<!DOCTYPE html>\n<html>\n${head}\n<body>\n<h1>${escapeHtml(title)}</h1>\n${body.join("\n")}\n</body>\n</html>`;
}

function escapeHtml(value: string): string {
  return value.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}
