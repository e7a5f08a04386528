/**
 * Upstream failures map to a neutral code and message: the upstream's text (STS's principal and role ARNs, OpenSSL
 * internals, loopback ports) never comes out. The socket and TLS errors are real ones, made on 127.0.0.1.
 */
import { createServer as createHttpServer } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createErrorHandler } from "../../api/errors";
import { neutralUpstreamText, UPSTREAM_MESSAGES, upstreamFailureOf } from "../../lib/upstream-errors";
import { TenantAwsAccessError } from "../../services/core/tenant-aws-session";

/** An error shaped as the AWS SDK v3 throws them (ServiceException: name = the AWS error code). */
function awsError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  Object.assign(error, { $fault: "client", $metadata: { httpStatusCode: 403, requestId: "00000000-0000-4000-8000-000000000000" } });
  return error;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function httpsFailure(port: number): Promise<Error> {
  return new Promise((resolve) => {
    const request = httpsRequest({ host: "127.0.0.1", port, path: "/", rejectUnauthorized: true }, () => resolve(new Error("answered")));
    request.on("error", resolve);
    request.end();
  });
}

const leaks = (text: string, upstream: string) => upstream.split(/[\s:]+/).filter((word) => word.length > 6 && text.includes(word));

describe("upstream error mapping", () => {
  it("STS AccessDenied becomes upstream_access_denied without the principal or the role", () => {
    const upstream =
      "User: arn:aws:iam::123456789012:role/MiniXdrPlatform is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::400000000001:role/MiniXdrBootstrap";
    const failure = upstreamFailureOf(awsError("AccessDenied", upstream));
    expect(failure).toEqual({ code: "upstream_access_denied", message: UPSTREAM_MESSAGES.upstream_access_denied });
    // The text an older layer made of it ("Name: message") maps the same.
    expect(upstreamFailureOf(`AccessDenied: ${upstream}`)).toEqual(failure);
    expect(leaks(neutralUpstreamText(`AccessDenied: ${upstream}`), upstream)).toEqual([]);
  });

  it("a refused connection (a real ECONNREFUSED on loopback) becomes upstream_unreachable without host or port", async () => {
    const port = await freePort();
    const error = await httpsFailure(port);
    expect((error as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
    const text = neutralUpstreamText(error);
    expect(text).toBe(`${UPSTREAM_MESSAGES.upstream_unreachable} (upstream_unreachable)`);
    expect(text).not.toContain(String(port));
    expect(text).not.toContain("127.0.0.1");
  });

  it("a TLS failure (https to a plain http server: OpenSSL's 'wrong version number') becomes upstream_tls_failed", async () => {
    const plain = createHttpServer((_req, res) => res.end("plain"));
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    try {
      const error = await httpsFailure((plain.address() as AddressInfo).port);
      expect(error.message).toMatch(/SSL|TLS|wrong version/i);
      const failure = upstreamFailureOf(error);
      expect(failure.code).toBe("upstream_tls_failed");
      expect(neutralUpstreamText(error)).not.toMatch(/SSL routines|wrong version|ssl3/i);
    } finally {
      plain.closeAllConnections();
      await new Promise((resolve) => plain.close(resolve));
    }
  });

  it("reads the cause chain, maps throttling and expired credentials, and falls back to upstream_error", () => {
    expect(upstreamFailureOf(new Error("could not assume the role", { cause: awsError("ThrottlingException", "Rate exceeded") })).code).toBe(
      "upstream_throttled",
    );
    expect(upstreamFailureOf(awsError("ExpiredToken", "The security token included in the request is expired")).code).toBe(
      "upstream_credentials_invalid",
    );
    expect(upstreamFailureOf(awsError("InternalFailure", "An internal error occurred at 10.1.2.3"))).toEqual({
      code: "upstream_error",
      message: UPSTREAM_MESSAGES.upstream_error,
    });
  });

  it("is idempotent on its own output (a stored neutral reason shown again)", () => {
    const once = neutralUpstreamText(awsError("AccessDenied", "User: x is not authorized"));
    expect(neutralUpstreamText(once)).toBe(once);
    expect(neutralUpstreamText(UPSTREAM_MESSAGES.upstream_timeout)).toBe(`${UPSTREAM_MESSAGES.upstream_timeout} (upstream_timeout)`);
  });

  it("the API answers an upstream failure with its code and the neutral reason; the upstream text goes to the log only", async () => {
    const logged: string[] = [];
    const upstream = "us-east-1: AccessDeniedException: User: arn:aws:sts::400000000001:assumed-role/MiniXdr/mini-xdr-acme is not authorized";
    const app = new Hono()
      .get("/deployment", () => {
        throw new TenantAwsAccessError(`could not read the agent rollout from SSM: ${upstream}`);
      })
      .onError(createErrorHandler((message) => logged.push(message)));
    const response = await app.request("/deployment");
    expect(response.status).toBe(502);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({
      error: { code: "tenant_aws_unreachable", message: `${UPSTREAM_MESSAGES.upstream_access_denied} (upstream_access_denied)` },
    });
    expect(text).not.toMatch(/AccessDenied|arn:aws|not authorized/);
    expect(logged.join("\n")).toContain(upstream);
  });
});
