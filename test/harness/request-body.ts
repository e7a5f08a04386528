/** What the stand-ins in front of moto share: a request's whole body, the request forwarded as is, the answer relayed. */
import { request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";

export const readRequestBody = (req: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });

/** Sends the request unchanged to `target` (moto); 502 with the error when it cannot be reached. */
export function forwardRequest(
  target: URL,
  req: IncomingMessage,
  body: Buffer,
  onAnswer: (status: number, headers: IncomingHttpHeaders, text: Buffer) => void,
): void {
  const forwarded = request(
    { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
    (answer) => {
      const parts: Buffer[] = [];
      answer.on("data", (chunk: Buffer) => parts.push(chunk));
      answer.on("end", () => onAnswer(answer.statusCode ?? 502, answer.headers, Buffer.concat(parts)));
    },
  );
  forwarded.on("error", (error) => onAnswer(502, { "content-type": "text/plain" }, Buffer.from(String(error))));
  forwarded.end(body);
}

/** Relays an answer, with its length as now (the body may have been amended). */
export function relayAnswer(res: ServerResponse, status: number, headers: IncomingHttpHeaders, body: Buffer): void {
  const { "content-length": _length, "transfer-encoding": _encoding, ...rest } = headers;
  res.writeHead(status, { ...(rest as Record<string, string>), "content-length": String(body.length) });
  res.end(body);
}
