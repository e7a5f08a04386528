/**
 * The console's one HTML page. The way to sign in is in the markup, so the first render needs no script: "Sign in with
 * <provider>" when single sign-on is configured, else where the sign-in links come from. The client
 * (console/client/main.js) takes over once a session exists. No inline script or style (the CSP forbids them).
 */
import { escapeHtml } from "../lib/escape-html";

export function consolePage({ providerName }: { providerName?: string } = {}): string {
  const signIn = providerName
    ? `    <p>Use your company account. Someone new? Ask your tenant's admin for an invitation.</p>
    <p><a class="button" id="single-sign-on" href="/auth/sign-in">Sign in with ${escapeHtml(providerName)}</a></p>`
    : `    <p>This service signs people in with links, as no identity provider is configured.</p>
    <ul>
      <li>Platform operators: open the one-time sign-in link the service printed when it started.</li>
      <li>Everyone else: open the invitation link you received from your tenant's admin.</li>
    </ul>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mini-XDR console</title>
<link rel="stylesheet" href="/console/console.css">
<link rel="modulepreload" href="/console/api.js">
<link rel="modulepreload" href="/console/dom.js">
<script type="module" src="/console/main.js"></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="topbar">
  <span class="brand">Mini-XDR</span>
  <nav id="nav" aria-label="Console sections"></nav>
  <span id="who" class="who"></span>
  <button type="button" id="sign-out" class="secondary" hidden>Sign out</button>
</header>
<main id="main" tabindex="-1">
  <section class="card narrow" aria-labelledby="sign-in-title" id="sign-in">
    <h1 id="sign-in-title">Sign in to Mini-XDR</h1>
${signIn}
  </section>
</main>
<div id="announcer" class="visually-hidden" aria-live="polite" aria-atomic="true"></div>
</body>
</html>
`;
}
