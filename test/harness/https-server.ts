/**
 * An HTTPS server on 127.0.0.1 for tests, with a throwaway self-signed certificate (P-256, CN and subjectAltName
 * 127.0.0.1, valid one day) made by `openssl` in a temp dir. Clients trust it through `caFile` (curl:
 * CURL_CA_BUNDLE, OpenSSL-based tools: SSL_CERT_FILE, Node: `ca`), never by turning verification off.
 * Requests go to a fetch-style handler (a Hono app's `fetch` fits) and are recorded with their response status.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { getRequestListener } from "@hono/node-server";

const run = promisify(execFile);

export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. `/v1/agents/enroll`. */
  path: string;
  status: number;
}

export interface HttpsTestServer {
  /** `https://127.0.0.1:<port>` */
  origin: string;
  port: number;
  /** PEM of the server's self-signed certificate: the one CA a client needs. */
  caFile: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** openssl req arguments for a new P-256 key, unencrypted. */
export const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** Writes `key.pem` and `cert.pem` for 127.0.0.1 (and `dnsNames`) into `dir`. */
export async function selfSignedCertificate(dir: string, dnsNames: string[] = []): Promise<{ keyFile: string; certFile: string }> {
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  const args = [
    "req",
    "-x509",
    ...NEW_EC_KEY,
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    `subjectAltName=${["IP:127.0.0.1", ...dnsNames.map((name) => `DNS:${name}`)].join(",")}`,
    "-days",
    "1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ];
  try {
    await run("openssl", args, { timeout: 30_000 });
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") {
      throw new Error("openssl is not on PATH: the tests need it to make a self-signed certificate (apt-get install openssl)");
    }
    throw new Error(`openssl could not make a self-signed certificate (OpenSSL >= 1.1.1 needed for -addext): ${err.stderr ?? err.message}`);
  }
  return { keyFile, certFile };
}

/** Starts the server on a port the kernel picks on 127.0.0.1. */
export async function startHttpsServer(handler: FetchHandler): Promise<HttpsTestServer> {
  const dir = await mkdtemp(join(tmpdir(), "mxdr-https-"));
  try {
    const { keyFile, certFile } = await selfSignedCertificate(dir);
    const requests: RecordedRequest[] = [];
    const recording: FetchHandler = async (request) => {
      const url = new URL(request.url);
      const entry: RecordedRequest = { method: request.method, path: url.pathname + url.search, status: 0 };
      requests.push(entry);
      try {
        const response = await handler(request);
        entry.status = response.status;
        return response;
      } catch (error) {
        entry.status = 500;
        return new Response(`test server handler failed: ${error instanceof Error ? error.message : String(error)}`, {
          status: 500,
        });
      }
    };
    const server = createServer(
      { key: await readFile(keyFile), cert: await readFile(certFile) },
      getRequestListener(recording, { hostname: "127.0.0.1" }),
    );
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("the HTTPS test server has no TCP address");
    return {
      origin: `https://127.0.0.1:${address.port}`,
      port: address.port,
      caFile: certFile,
      requests,
      async close() {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
