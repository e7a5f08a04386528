/** The few server-rendered pages of signing in (an invitation, a refused link): plain HTML, no script, escaped text. */
import { escapeHtml } from "../lib/escape-html";

function layout(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)} · Mini-XDR</title><link rel="stylesheet" href="/console/console.css"></head><body><header class="topbar"><span class="brand">Mini-XDR</span></header><main id="main"><section class="card narrow" aria-labelledby="page-title"><h1 id="page-title">${escapeHtml(title)}</h1>${body}</section></main></body></html>`;
}

/** A sign-in or invitation that cannot go on: what happened and what to do, in words (never a stack trace). */
export function problemPage(title: string, message: string): string {
  return layout(title, `<p role="alert">${escapeHtml(message)}</p><p><a href="/">Go to the sign-in page</a></p>`);
}

/** What an invitation offers, with one button: a link scanner that fetches the URL accepts nothing. */
export function invitationPage(
  invitation: { tenantName: string; email: string; role: string; expiresAt: Date },
  action: string,
  providerName?: string,
): string {
  const role = invitation.role === "admin" ? "an admin" : "a viewer (read-only)";
  const button = providerName ? `Sign in with ${providerName} to accept` : "Accept and sign in";
  return layout(
    `Join ${invitation.tenantName}`,
    `<p>You are invited to <strong>${escapeHtml(invitation.tenantName)}</strong> on Mini-XDR as ${role}.</p>` +
      `<p>The invitation is for <strong>${escapeHtml(invitation.email)}</strong> and can be used once, until ${escapeHtml(invitation.expiresAt.toUTCString())}.</p>` +
      `<form method="post" action="${escapeHtml(action)}"><button type="submit">${escapeHtml(button)}</button></form>`,
  );
}
