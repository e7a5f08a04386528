/** The event streams' polling loop, leases and token re-check (api/sse.ts), on a bare Hono app (through the service: the e2e tests). */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { RateLimitedError } from "../../lib/errors";
import { createEventStreams, eventOnChange, type EventStreamOptions, type PollingStream } from "../../api/sse";
import type { Principal } from "../../services/core/principal";

const tenantPrincipal: Principal = { tokenId: 7, tokenName: "t", scope: "tenant", organizationId: 1, actor: "token:7" };

function streamingApp(polling: () => PollingStream, options: Partial<EventStreamOptions> & { tokenIsLive?: boolean; principal?: Principal } = {}) {
  const { tokenIsLive = true, principal = tenantPrincipal, ...streamOptions } = options;
  const streams = createEventStreams(
    { tokenIsLive: async () => tokenIsLive },
    { sessionIsLive: async () => true },
    { maxPerSubject: 1, ...streamOptions },
  );
  const app = new Hono();
  app.onError((error, c) => c.json({ code: error instanceof RateLimitedError ? error.code : "other" }, 429));
  app.get("/events", (c) => streams.stream(c, principal, polling()));
  return app;
}

describe("an event stream", () => {
  it("sends what each poll finds, with ids, and ends with the end event", async () => {
    const seen: (number | undefined)[] = [];
    const app = streamingApp(() => {
      let polls = 0;
      return {
        pollMs: 1,
        async poll(lastEventId) {
          seen.push(lastEventId);
          polls += 1;
          if (polls === 1)
            return {
              events: [
                { id: 3, event: "engine", data: "{}" },
                { event: "note", data: "1" },
              ],
            };
          if (polls === 2) return { events: [] };
          return { events: [{ id: 4, event: "engine", data: "{}" }], end: { event: "end", data: '{"status":"succeeded"}' } };
        },
      };
    });
    const response = await app.request("/events");
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    expect(await response.text()).toBe(
      'event: engine\ndata: {}\nid: 3\n\nevent: note\ndata: 1\n\nevent: engine\ndata: {}\nid: 4\n\nevent: end\ndata: {"status":"succeeded"}\n\n',
    );
    expect(seen).toEqual([undefined, 3, 3]);
  });

  it("resumes after the client's Last-Event-ID only where the stream is resumable", async () => {
    for (const resumable of [true, false]) {
      const seen: (number | undefined)[] = [];
      const app = streamingApp(() => ({
        pollMs: 1,
        resumable,
        poll: async (lastEventId) => {
          seen.push(lastEventId);
          return { events: [], end: { event: "end", data: "{}" } };
        },
      }));
      await (await app.request("/events", { headers: { "last-event-id": "41" } })).text();
      expect(seen).toEqual([resumable ? 41 : undefined]);
    }
  });

  it("polls again at once while more are waiting", async () => {
    let polls = 0;
    const app = streamingApp(() => ({
      pollMs: 60_000,
      poll: async () => (++polls < 3 ? { events: [], more: true } : { events: [], end: { event: "end", data: "{}" } }),
    }));
    await (await app.request("/events")).text();
    expect(polls).toBe(3);
  });

  it("sends a keep-alive comment when nothing was sent for keepAliveMs", async () => {
    const app = streamingApp(() => {
      let polls = 0;
      return {
        pollMs: 200,
        keepAliveMs: 150,
        poll: async () => (++polls < 3 ? { events: [] } : { events: [], end: { event: "end", data: "{}" } }),
      };
    });
    // The first poll comes at once: only the second finds the stream idle for keepAliveMs.
    expect(await (await app.request("/events")).text()).toBe(": keep-alive\n\nevent: end\ndata: {}\n\n");
  });

  it("ends after maxSeconds, and with a revoked event when its token is gone", async () => {
    const forever = (): PollingStream => ({ pollMs: 5, poll: async () => ({ events: [] }) });
    expect(await (await streamingApp(forever, { maxSeconds: 0.05 }).request("/events")).text()).toBe("");
    expect(await (await streamingApp(forever, { recheckMs: 10, tokenIsLive: false }).request("/events")).text()).toBe(
      'event: revoked\ndata: {"code":"token_revoked"}\n\n',
    );
    const expired = { ...tenantPrincipal, expiresAt: new Date(Date.now() - 1000) };
    expect(await (await streamingApp(forever, { principal: expired }).request("/events")).text()).toBe(
      'event: revoked\ndata: {"code":"token_expired"}\n\n',
    );
  });

  it("refuses a stream past the cap until one ends, however it ends", async () => {
    let finish = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const app = streamingApp(() => ({
      pollMs: 1,
      poll: async () => {
        await finished;
        return { events: [], end: { event: "end", data: "{}" } };
      },
    }));
    const first = await app.request("/events");
    const refused = await app.request("/events");
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ code: "event_stream_limit" });
    finish();
    await first.text();
    const next = await app.request("/events");
    expect(next.status).toBe(200);
    await next.text();
  });

  it("stops polling when the client goes away, and gives its lease back", async () => {
    let polls = 0;
    const app = streamingApp(() => ({ pollMs: 5, poll: async () => ({ events: [{ event: "tick", data: String(++polls) }] }) }));
    const first = await app.request("/events");
    const reader = first.body!.getReader();
    await reader.read();
    await reader.cancel();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const after = polls;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(polls).toBe(after);
    expect((await app.request("/events")).status).toBe(200);
  });
});

describe("eventOnChange", () => {
  it("answers the event only when its data changed, numbered per stream", () => {
    const progress = eventOnChange("progress");
    expect(progress("a")).toEqual([{ id: 0, event: "progress", data: "a" }]);
    expect(progress("a")).toEqual([]);
    expect(progress("b")).toEqual([{ id: 1, event: "progress", data: "b" }]);
  });
});
