/**
 * What the three server-sent-event streams share: how long one connection may last, and how the OpenAPI document
 * describes their events.
 *
 * A stream ends after at most `maxSeconds` (EVENT_STREAM_MAX_SECONDS), whatever it follows: a client reconnects, as
 * EventSource does by itself and the console's followEvents does, sending `Last-Event-ID` where the stream numbers
 * its events (a run's events are replayed from there). So no connection is held for ever (a run queued behind a
 * stopped worker, a progress nobody changes), every reconnect is authenticated again, and a client, a proxy or a
 * fuzzer always sees each response end.
 *
 * The document gives each event's shape as OpenAPI 3.2 does (`itemSchema` of text/event-stream): an object of the
 * SSE fields, `data` a JSON text whose parsed shape is `contentSchema`.
 */
import type { RouteConfig } from "@hono/zod-openapi";

export const DEFAULT_EVENT_STREAM_MAX_SECONDS = 300;

type JsonSchema = Record<string, unknown>;

export interface StreamEvent {
  /** The SSE `event` field. */
  event: string;
  /** The shape of the JSON in `data`. */
  data: JsonSchema;
  /** Whether the event carries an `id` (a client sends the last one back as Last-Event-ID). */
  id: boolean;
}

/** A schema the document has as a component (a zod schema named with .openapi(name) and used by some route). */
export const componentRef = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

type ResponseConfig = RouteConfig["responses"][number];

/** The 200 answer of a stream that sends `events` (each by its `event` name). */
export function eventStreamResponse(description: string, events: StreamEvent[]): ResponseConfig {
  const itemSchema = {
    oneOf: events.map((event) => ({
      type: "object",
      properties: {
        event: { const: event.event },
        data: { type: "string", contentMediaType: "application/json", contentSchema: event.data },
        ...(event.id ? { id: { type: "string", pattern: "^[0-9]+$" } } : {}),
        retry: { type: "integer", minimum: 0 },
      },
      required: ["event", "data", ...(event.id ? ["id"] : [])],
    })),
  };
  return {
    description: `${description}. The stream ends after at most EVENT_STREAM_MAX_SECONDS (default ${DEFAULT_EVENT_STREAM_MAX_SECONDS} s): reconnect, with Last-Event-ID where events carry an id`,
    // A JSON Schema written out: the type of the generator's SchemaObject is not exported.
    content: { "text/event-stream": { itemSchema } },
  } as ResponseConfig;
}
