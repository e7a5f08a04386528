/**
 * A JSON caller bound to a service process: parses each answer (the text kept) and can record every response body,
 * to prove later that no secret ever left the server.
 */

export interface Call {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

export interface CallOptions {
  /** Bearer token; null: none; undefined: the client's default token. */
  token?: string | null;
  body?: unknown;
  /** A raw request body (sent as application/json unless a content-type header says otherwise). */
  raw?: string;
  headers?: Record<string, string>;
}

export type CallFn = (method: string, path: string, options?: CallOptions) => Promise<Call>;

/**
 * A JSON fetch helper bound to a server: parses the answer (text kept), and pushes every response body onto
 * `responses` (to prove later that no secret ever left the server).
 */
export function createCaller(target: { baseUrl: () => string; defaultToken?: () => string | undefined; responses?: string[] }): CallFn {
  return async (method, path, options = {}) => {
    const token = options.token === undefined ? target.defaultToken?.() : options.token;
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers["content-type"] ??= "application/json";
    const response = await fetch(`${target.baseUrl()}${path}`, { method, headers, body });
    const text = await response.text();
    target.responses?.push(text);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  };
}
