/**
 * An open-loop load generator: requests start on a fixed schedule (one every 1000/rate ms, over keep-alive
 * connections on loopback), whatever the answers before them do, and each latency is measured from the request's
 * scheduled start, so a slow answer that delays the ones behind it counts against them too (no coordinated omission).
 * autocannon's rate limit is not this: each connection sends its share of the second back to back and then waits for
 * the next second, so "200 per second" arrives as bursts of 20 concurrent requests.
 */
import { Agent, request } from "node:http";

export interface PacedLoadResult {
  requests: number;
  non2xx: number;
  errors: number;
  /** Milliseconds from the scheduled start to the end of the answer. */
  latency: { p50: number; p90: number; p99: number; max: number };
  /** Requests per second actually started. */
  rate: number;
}

export async function pacedLoad({
  url,
  headers,
  rate,
  seconds,
}: {
  url: string;
  headers: Record<string, string>;
  rate: number;
  seconds: number;
}): Promise<PacedLoadResult> {
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const interval = 1000 / rate;
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = started + i * interval;
    const wait = scheduled - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(
      new Promise<void>((resolve) => {
        const req = request({ agent, host: target.hostname, port: target.port, path: target.pathname + target.search, headers }, (res) => {
          res.resume();
          res.on("end", () => {
            latencies.push(performance.now() - scheduled);
            if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) non2xx++;
            resolve();
          });
        });
        req.on("error", () => {
          errors++;
          resolve();
        });
        req.end();
      }),
    );
  }
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(inFlight);
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10;
  return {
    requests: total,
    non2xx,
    errors,
    latency: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) },
    rate: Math.round((total / elapsed) * 10) / 10,
  };
}
