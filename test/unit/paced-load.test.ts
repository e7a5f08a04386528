/**
 * The benchmark's load generator (bench/paced-load.ts) against a server on 127.0.0.1: requests start on schedule
 * whatever earlier answers do (open loop), and a slow answer counts from its scheduled start.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pacedLoad } from "../../bench/paced-load";

let server: Server;
let url: string;
/** The first request to `/held` is answered only once ten more have arrived: a generator that waits would never get there. */
const HELD_UNTIL = 10;
let heldAnswer: (() => void) | undefined;
let arrivedAfterHeld = 0;

beforeAll(async () => {
  server = createServer((request, response) => {
    const answer = () => response.writeHead(request.url === "/missing" ? 404 : 200).end("ok");
    if (request.url !== "/held") return answer();
    if (!heldAnswer) {
      heldAnswer = answer;
      return;
    }
    answer();
    if (++arrivedAfterHeld === HELD_UNTIL) heldAnswer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("paced load", () => {
  it("keeps starting requests on schedule while an earlier one is unanswered, and counts the wait against it", async () => {
    const result = await pacedLoad({ url: `${url}/held`, headers: {}, rate: 100, seconds: 0.5 });
    expect(result).toMatchObject({ requests: 50, non2xx: 0, errors: 0 });
    expect(arrivedAfterHeld).toBe(49);
    // The held request was answered after the 11th started, which is scheduled 100 ms after it (timers fire to the
    // millisecond, so a little less can be measured).
    expect(result.latency.max).toBeGreaterThan(98);
  });

  it("counts answers that are not 2xx", async () => {
    const result = await pacedLoad({ url: `${url}/missing`, headers: {}, rate: 50, seconds: 0.2 });
    expect(result).toMatchObject({ requests: 10, non2xx: 10 });
  });
});
