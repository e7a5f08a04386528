// The console's only way to the API: the browser session (its HttpOnly cookie, which the page never reads), with the
// session's CSRF token on every state-changing call. JSON calls, and server-sent events read with fetch().

/** The signed-in session's CSRF token (GET /v1/session), kept in memory only. */
let csrfToken = null;

export function useSessionCsrf(token) {
  csrfToken = token;
}

/** The session ended while the page was open (signed out elsewhere, removed from the tenant, timed out): back to sign-in. */
const sessionEnded = (error) => error.status === 401 && String(error.code ?? "").startsWith("session_") && csrfToken !== null;

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `request failed (${status})`);
    this.status = status;
    this.code = body?.error?.code;
    this.fields = body?.error?.fields ?? [];
  }
}

/** A JSON call with the session. Throws ApiError for a non-2xx answer. */
export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (csrfToken && method !== "GET") headers["x-csrf-token"] = csrfToken;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (sessionEnded(error)) location.replace("/");
    throw error;
  }
  return parsed;
}

/**
 * Every item of a keyset-paginated list (`{<key>: [...], next_cursor}`), page after page of the largest size the API
 * takes; `path` may carry a query already.
 */
export async function apiAllPages(path, key, pageSize = 1000) {
  const items = [];
  let cursor = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${separator}limit=${pageSize}${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`);
    items.push(...page[key]);
    cursor = page.next_cursor ?? null;
  } while (cursor !== null);
  return items;
}

export const tenantPath = (slug, rest = "") => `/v1/tenants/${encodeURIComponent(slug)}${rest}`;

/**
 * Follows a server-sent-events stream: onEvent({ event, data, id }) for each event. Reconnects after a dropped
 * connection (with Last-Event-ID) until `signal` aborts; onState("open" | "reconnecting" | "closed") tells the page.
 * `until(event)` returning true ends it.
 */
export async function followEvents(path, { onEvent, onState = () => {}, signal, until = () => false }) {
  let lastEventId;
  let delayMs = 500;
  while (!signal.aborted) {
    try {
      const headers = { accept: "text/event-stream" };
      if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
      const response = await fetch(path, { headers, signal, cache: "no-store" });
      if (response.status === 401 && csrfToken !== null) {
        location.replace("/");
        return;
      }
      if (response.status === 401 || response.status === 403 || response.status === 404) {
        onState("closed");
        return;
      }
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      onState("open");
      delayMs = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let boundary;
        while ((boundary = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          const event = parseFrame(frame);
          if (!event) continue;
          if (event.id !== undefined) lastEventId = event.id;
          if (event.event === "revoked") {
            location.replace("/");
            return;
          }
          onEvent(event);
          if (until(event)) {
            await reader.cancel().catch(() => {});
            onState("closed");
            return;
          }
        }
      }
    } catch {
      if (signal.aborted) break;
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, 10_000);
  }
  onState("closed");
}

function parseFrame(frame) {
  const event = { event: "message", data: "" };
  const data = [];
  for (const line of frame.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") event.id = value;
  }
  if (data.length === 0) return null;
  event.data = data.join("\n");
  return event;
}
