// Entry: a browser session (signed in through a link or the identity provider) is used as it is; otherwise sign in
// with a pasted token (kept in sessionStorage for this tab only). Then find out who it is and load the tenant's or
// the platform operator's console.
import { api, ApiError, clearSession, loadSession, saveSession, useSessionCsrf } from "./api.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOutButton = document.getElementById("sign-out");
let unmount = () => {};

/** Platform admins may read the KPIs; a tenant token gets 403 there and sees exactly one tenant. */
async function identify(token) {
  try {
    await api("GET", "/v1/kpis", undefined, token);
    return { token, scope: "platform_admin" };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
  }
  const { tenants } = await api("GET", "/v1/tenants?limit=1", undefined, token);
  if (!tenants[0]) throw new Error("this token's tenant no longer exists");
  return { token, scope: "tenant", slug: tenants[0].slug, name: tenants[0].name };
}

async function start(session) {
  document.getElementById("sign-in")?.remove();
  signOutButton.hidden = false;
  who.textContent = session.scope === "platform_admin" ? "Platform operator" : `Tenant admin · ${session.name}`;
  if (session.scope === "platform_admin") {
    const { mountOperator } = await import("./operator.js");
    unmount = mountOperator({ main, nav, session });
  } else {
    const { mountTenant } = await import("./tenant.js");
    unmount = mountTenant({ main, nav, session });
  }
  main.focus();
}

async function signOut() {
  unmount();
  if (!loadSession()?.token) await api("POST", "/v1/session/sign-out").catch(() => {});
  clearSession();
  // A fresh page: nothing of the session stays in memory.
  location.replace("/");
}

function wireSignIn() {
  const form = document.getElementById("sign-in-form");
  const input = document.getElementById("token");
  const error = document.getElementById("sign-in-error");
  const fields = document.getElementById("sign-in-fields");
  if (!form) return;
  fields.disabled = false;
  input.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const token = input.value.trim();
    if (!token) {
      error.textContent = "Paste a token first.";
      return;
    }
    fields.disabled = true;
    try {
      const session = await identify(token);
      input.value = "";
      saveSession(session);
      await start(session);
    } catch (failure) {
      fields.disabled = false;
      error.textContent =
        failure instanceof ApiError && failure.status === 401 ? "This token is not valid (or was revoked)." : `Could not sign in: ${failure.message}`;
      input.focus();
    }
  });
}

/** The browser session, when the cookie holds a live one: who it is, and its CSRF token for the calls that change. */
async function browserSession() {
  try {
    const session = await api("GET", "/v1/session");
    if (session.kind !== "session") return null;
    useSessionCsrf(session.csrf_token);
    if (session.scope === "platform_admin") return { scope: "platform_admin" };
    const { tenants } = await api("GET", "/v1/tenants?limit=1");
    return tenants[0] ? { scope: "tenant", slug: tenants[0].slug, name: tenants[0].name, role: session.role } : null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

signOutButton.addEventListener("click", () => void signOut());
const existing = loadSession();
if (existing?.token) {
  start(existing).catch(() => {
    clearSession();
    location.replace("/");
  });
} else {
  browserSession()
    .then((session) => (session ? start(session) : wireSignIn()))
    .catch(() => wireSignIn());
}
