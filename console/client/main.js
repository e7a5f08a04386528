// Entry: the browser session (signed in through the identity provider, an invitation or the operator's link) decides
// which console loads: the platform operator's, or the tenant's (with the member's role). Without a session the page's
// own sign-in section stays.
import { api, ApiError, useSessionCsrf } from "./api.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOutButton = document.getElementById("sign-out");
let unmount = () => {};

async function start(session) {
  document.getElementById("sign-in")?.remove();
  signOutButton.hidden = false;
  document.body.dataset.role = session.role;
  const person = session.email ?? "Signed in";
  who.textContent = session.scope === "platform_admin" ? `${person} · platform operator` : `${person} · ${session.role} of ${session.name}`;
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
  await api("POST", "/v1/session/sign-out").catch(() => {});
  // A fresh page: nothing of the session stays in memory.
  location.replace("/");
}

/** The browser session, when the cookie holds a live one: who it is, and its CSRF token for the calls that change. */
async function browserSession() {
  try {
    const session = await api("GET", "/v1/session");
    if (session.kind !== "session") return null;
    useSessionCsrf(session.csrf_token);
    if (session.scope === "platform_admin") return { scope: "platform_admin", role: "admin", email: session.email };
    const { tenants } = await api("GET", "/v1/tenants?limit=1");
    return tenants[0] ? { scope: "tenant", slug: tenants[0].slug, name: tenants[0].name, role: session.role, email: session.email } : null;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return null;
    throw error;
  }
}

signOutButton.addEventListener("click", () => void signOut());
browserSession()
  .then((session) => session && start(session))
  .catch(() => {});
