/**
 * The EC2 instance metadata service (IMDSv2) as an instance's install step sees it, on 127.0.0.1 (there is no
 * metadata service off EC2): `PUT /latest/api/token` hands out a session token, and with it
 * `GET /latest/meta-data/tags/instance/<key>` answers the instance's tag, 404 when the instance does not carry the
 * key or does not serve its tags in instance metadata (EC2's default), 401 without a valid token; and
 * `GET /latest/dynamic/instance-identity/document` and `.../signature`, the instance's identity document and its
 * signature (made by the test CA of test/harness/instance-identity.ts, or whatever the test hands it).
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface ImdsInstance {
  tags: Record<string, string>;
  /** Instance metadata tags turned on for the instance (EC2 default: off). */
  metadataTags: boolean;
  /** The identity document and signature served under /latest/dynamic/instance-identity/ (none: 404). */
  identity?: { document: string; signature: string };
}

export interface ImdsStandIn {
  endpoint: string;
  setInstance(instance: ImdsInstance): void;
  /** `<method> <path>` of every request, in order. */
  requests: string[];
  stop(): Promise<void>;
}

export async function startImdsStandIn(): Promise<ImdsStandIn> {
  let instance: ImdsInstance = { tags: {}, metadataTags: false };
  const tokens = new Set<string>();
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = req.url ?? "/";
    requests.push(`${req.method} ${path}`);
    const reply = (status: number, body = "") => {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(body);
    };
    if (req.method === "PUT" && path === "/latest/api/token") {
      if (!req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) return reply(400);
      const token = randomBytes(16).toString("base64url");
      tokens.add(token);
      return reply(200, token);
    }
    if (!tokens.has(String(req.headers["x-aws-ec2-metadata-token"] ?? ""))) return reply(401);
    if (req.method === "GET" && path === "/latest/dynamic/instance-identity/document" && instance.identity) {
      return reply(200, instance.identity.document);
    }
    if (req.method === "GET" && path === "/latest/dynamic/instance-identity/signature" && instance.identity) {
      return reply(200, instance.identity.signature);
    }
    // The tag keys, one per line, as EC2 lists them; 404 while instance metadata tags are off.
    if (req.method === "GET" && path === "/latest/meta-data/tags/instance") {
      return instance.metadataTags ? reply(200, Object.keys(instance.tags).join("\n")) : reply(404);
    }
    const tag = /^\/latest\/meta-data\/tags\/instance\/(.+)$/.exec(path);
    if (req.method === "GET" && tag && instance.metadataTags) {
      const value = instance.tags[decodeURIComponent(tag[1]!)];
      return value === undefined ? reply(404) : reply(200, value);
    }
    return reply(404);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    setInstance(next) {
      instance = next;
    },
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
