/** A server-sent-events reader for the service's event streams (run events, progress, fleet runs). */

export interface ServerSentEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Reads a server-sent-events stream until an event named `until` (or the stream's end), returning the events in
 * order and the raw text. Rejects on a non-200 answer or after timeoutMs.
 */
export async function readEventStream(
  url: string,
  {
    token,
    until = "end",
    timeoutMs = 240_000,
    headers = {},
  }: { token?: string; until?: string; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<{ status: number; contentType: string | null; events: ServerSentEvent[]; text: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no "${until}" event within ${timeoutMs / 1000} s from ${url}`)), timeoutMs);
  try {
    const response = await fetch(url, {
      headers: { accept: "text/event-stream", ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal: controller.signal,
    });
    const contentType = response.headers.get("content-type");
    if (response.status !== 200 || !response.body) {
      return { status: response.status, contentType, events: [], text: await response.text() };
    }
    const decoder = new TextDecoder();
    const events: ServerSentEvent[] = [];
    let text = "";
    let buffer = "";
    const reader = response.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const chunk = decoder.decode(value, { stream: true });
      text += chunk;
      buffer += chunk.replace(/\r\n/g, "\n");
      let boundary: number;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const event: ServerSentEvent = { event: "message", data: "" };
        const data: string[] = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith(":") || line === "") continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.event = value;
          else if (field === "data") data.push(value);
          else if (field === "id") event.id = value;
        }
        event.data = data.join("\n");
        if (data.length === 0 && event.id === undefined && event.event === "message") continue;
        events.push(event);
        if (event.event === until) {
          await reader.cancel().catch(() => undefined);
          return { status: response.status, contentType, events, text };
        }
      }
    }
    return { status: response.status, contentType, events, text };
  } finally {
    clearTimeout(timer);
  }
}
