/**
 * A loopback pass-through proxy in front of moto whose requests can be held (never forwarded, never answered), then
 * released or dropped: it makes "a run caught in the middle of an AWS call" deterministic.
 */
import http from "node:http";

export interface ProxiedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface HoldingProxy {
  url: string;
  /** Requests forwarded so far. */
  readonly forwarded: number;
  /** Requests held (never forwarded) so far. */
  readonly held: number;
  /**
   * From now on, requests the predicate accepts are held: never forwarded, never answered (until close()), so the
   * AWS call they carry never happens. null: forward everything again (held requests stay held).
   */
  hold(predicate: ((request: ProxiedRequest) => boolean) | null): void;
  /** Forwards every request held so far (their answers reach the callers late, as from a slow AWS). */
  release(): void;
  /** Drops the connections of the requests held so far (their clients see a reset and retry). */
  drop(): void;
  close(): Promise<void>;
}

/** STS calls (AssumeRole, GetCallerIdentity): a provider configures with them; they change nothing. */
export const isStsCall = (request: ProxiedRequest) => /(^|&)Action=(AssumeRole|GetCallerIdentity)(&|$)/.test(request.body);

/** Forwards every request to `target` (moto) on loopback, except those it was told to hold. */
export async function startHoldingProxy(target: string): Promise<HoldingProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const state = { forwarded: 0, held: 0, predicate: null as ((request: ProxiedRequest) => boolean) | null };
  const parked = new Set<http.ServerResponse>();
  const heldForwards = new Map<http.ServerResponse, () => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const request = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers, body: body.toString("utf8") };
      const forward = () => {
        state.forwarded++;
        const outbound = http.request(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        outbound.on("error", (error) => {
          if (!res.headersSent) res.writeHead(502);
          res.end(String(error));
        });
        outbound.end(body);
      };
      if (state.predicate?.(request)) {
        state.held++;
        parked.add(res);
        heldForwards.set(res, forward);
        res.on("close", () => {
          parked.delete(res);
          heldForwards.delete(res);
        });
        return;
      }
      forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get forwarded() {
      return state.forwarded;
    },
    get held() {
      return state.held;
    },
    hold(predicate) {
      state.predicate = predicate;
    },
    release() {
      const forwards = [...heldForwards.values()];
      heldForwards.clear();
      parked.clear();
      for (const forward of forwards) forward();
    },
    drop() {
      heldForwards.clear();
      for (const res of parked) res.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of parked) res.destroy();
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
