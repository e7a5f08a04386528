/**
 * The discovery benchmark's per-region delaying HTTP proxy on 127.0.0.1, with a record/replay mode.
 *
 *   forward  every request goes to the target (moto) after the region's fixed delay (the default);
 *   record   the same, and each answer (status, headers, body) is stored, keyed by region + method +
 *            path + request body;
 *   replay   answered from the recording after the region's delay, without contacting the target,
 *            so every region is served independently (as AWS serves regions) instead of by moto's one
 *            Python process. A request not in the recording gets a 599 and counts as a miss.
 *
 * The key leaves out all headers, so the volatile SigV4 parts (Authorization, X-Amz-Date, the SDK's
 * invocation id) do not matter. The bodies of EC2/RDS query-protocol calls are deterministic form
 * bodies. Pagination tokens are kept in the key verbatim: moto's DescribeInstances NextToken is the
 * id of the last reservation on the page (stable while the estate is unchanged), and in replay the
 * client only ever sends back tokens it read from recorded answers, so a verbatim key always matches.
 */
import http from "node:http";

export type ProxyMode = "forward" | "record" | "replay";

interface Recorded {
  status: number;
  headers: http.OutgoingHttpHeaders;
  body: Buffer;
}

export interface Proxy {
  url: string;
  region: string;
  delayMs: number;
  mode: ProxyMode;
  /**
   * Since the last reset: requests answered, time the target took to answer the forwarded ones
   * (summed), answers replayed from the recording, and replay misses.
   */
  stats: { requests: number; upstreamMs: number; replayed: number; misses: number };
  /** Distinct answers recorded, and requests that carried a pagination token while recording. */
  recording: { entries: number; paginated: number; bytes: number };
  close(): Promise<void>;
}

/** Hop-by-hop / per-connection headers, not replayed (Node sets its own). */
const NOT_REPLAYED = new Set(["connection", "keep-alive", "transfer-encoding", "date", "content-length"]);

function keyOf(region: string, req: http.IncomingMessage, body: Buffer): string {
  return `${region} ${req.method} ${req.url} ${body.toString("utf8")}`;
}

function readBody(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

/** One region's round trip to `target`: forwards (or replays) every request after `delayMs`. */
export function startDelayProxy(target: string, delayMs: number, region: string): Promise<Proxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const stats = { requests: 0, upstreamMs: 0, replayed: 0, misses: 0 };
  const recording = { entries: 0, paginated: 0, bytes: 0 };
  const store = new Map<string, Recorded>();
  const proxy = { mode: "forward" as ProxyMode };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const sent = performance.now();
    stats.requests++;
    const request = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on("end", () => {
          stats.upstreamMs += performance.now() - sent;
        });
        answer.pipe(res);
      },
    );
    request.on("error", (error) => {
      res.writeHead(502).end(String(error));
    });
    req.pipe(request);
  };

  const record = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => {
    const sent = performance.now();
    stats.requests++;
    const request = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (answer) => {
        readBody(answer).then(
          (answerBody) => {
            stats.upstreamMs += performance.now() - sent;
            const status = answer.statusCode ?? 502;
            const headers = { ...answer.headers };
            // Only successful answers are kept: a throttle or a 5xx is not part of the estate.
            if (status < 400) {
              const key = keyOf(region, req, body);
              if (!store.has(key)) {
                recording.entries++;
                recording.bytes += answerBody.length;
                if (/(^|&)(NextToken|Marker)=/.test(body.toString("utf8"))) recording.paginated++;
              }
              for (const name of Object.keys(headers)) if (NOT_REPLAYED.has(name)) delete headers[name];
              store.set(key, { status, headers, body: answerBody });
            }
            res.writeHead(status, answer.headers);
            res.end(answerBody);
          },
          (error: unknown) => res.destroy(error as Error),
        );
      },
    );
    request.on("error", (error) => {
      res.writeHead(502).end(String(error));
    });
    request.end(body);
  };

  const replay = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => {
    stats.requests++;
    const hit = store.get(keyOf(region, req, body));
    if (!hit) {
      stats.misses++;
      res.writeHead(599, { "content-type": "text/plain" }).end(`not in the recording: ${req.method} ${req.url} ${body.toString("utf8")}`);
      return;
    }
    stats.replayed++;
    res.writeHead(hit.status, { ...hit.headers, date: new Date().toUTCString(), "content-length": hit.body.length });
    res.end(hit.body);
  };

  const server = http.createServer((req, res) => {
    const mode = proxy.mode;
    if (mode === "forward") {
      setTimeout(() => forward(req, res), delayMs);
      return;
    }
    // Record/replay: the delay runs from the request's arrival, as in forward mode; the body is
    // read meanwhile (it is needed for the key).
    const due = new Promise((resolve) => setTimeout(resolve, delayMs));
    const handle = mode === "record" ? record : replay;
    readBody(req).then(
      async (body) => {
        await due;
        handle(req, body, res);
      },
      (error: unknown) => res.destroy(error as Error),
    );
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as { port: number };
      resolve(
        Object.assign(proxy, {
          url: `http://127.0.0.1:${address.port}`,
          region,
          delayMs,
          stats,
          recording,
          close: () =>
            new Promise<void>((done) => {
              agent.destroy();
              server.closeAllConnections();
              server.close(() => done());
            }),
        }),
      );
    });
  });
}
