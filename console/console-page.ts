/**
 * The console's one HTML page. The sign-in form is in the markup, so the first render needs no script; the client
 * (console/client/main.js) takes over from there and enables the form (a form posted without it would carry the
 * token in a request body to nowhere, never in a URL). No inline script or style (the CSP forbids them).
 */
export function consolePage(): string {
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
    <p>Paste your API token: a tenant token to onboard your cloud, or a platform admin token to operate tenants.
    It stays in this browser tab only and is forgotten when the tab closes.</p>
    <form id="sign-in-form" method="post" autocomplete="off">
      <fieldset id="sign-in-fields" disabled>
      <legend class="visually-hidden">Token</legend>
      <label for="token">API token</label>
      <input id="token" name="token" type="password" required spellcheck="false" autocomplete="off" aria-describedby="sign-in-error">
      <p id="sign-in-error" class="error" role="alert"></p>
      <button type="submit">Sign in</button>
      </fieldset>
    </form>
  </section>
</main>
<div id="announcer" class="visually-hidden" aria-live="polite" aria-atomic="true"></div>
</body>
</html>
`;
}
