/**
 * The ONE place errors become responses: `{error: {code, message, fields?, ...details}}`. Domain code throws the
 * neutral classes of lib/errors.ts; this maps each class to its status. zod validation failures of OpenAPI routes
 * reach the same shape through `validationHook` (OpenAPIHono defaultHook).
 */
import type { Context, ErrorHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { neutralUpstreamText } from "../lib/upstream-errors";
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  GoneError,
  NotFoundError,
  NotSupportedError,
  RateLimitedError,
  ServiceNotConfiguredError,
  UnauthorizedError,
  UnprocessableError,
  UpstreamUnavailableError,
  ValidationError,
  type FieldProblem,
} from "../lib/errors";

export type FieldError = FieldProblem;

export interface ErrorBody {
  error: { code: string; message: string; fields?: FieldError[]; [extra: string]: unknown };
}

const STATUS_OF: [new (...args: never[]) => DomainError, ContentfulStatusCode][] = [
  [ValidationError, 400],
  [UnauthorizedError, 401],
  [ForbiddenError, 403],
  [NotFoundError, 404],
  [GoneError, 410],
  [ConflictError, 409],
  [UnprocessableError, 422],
  [RateLimitedError, 429],
  [NotSupportedError, 501],
  [UpstreamUnavailableError, 502],
  [ServiceNotConfiguredError, 503],
];

export function statusOf(error: DomainError): ContentfulStatusCode {
  return STATUS_OF.find(([type]) => error instanceof type)?.[1] ?? 500;
}

/**
 * zod issues -> field errors, paths prefixed with the request part unless it is the JSON body. Each field is named once,
 * with its first issue: schemas list their checks from the most to the least useful, and the messages of zod's own
 * issues come from lib/zod-messages.ts ("must be a string, got number", "is required" only when it is missing).
 */
export function fieldErrorsFromZod(error: z.ZodError, target?: string): FieldError[] {
  const prefix = target && target !== "json" ? target : "";
  const name = (path: PropertyKey[]) => [prefix, ...path.map(String)].filter(Boolean).join(".") || prefix || "body";
  const fields = new Map<string, string>();
  for (const issue of error.issues) {
    const problems =
      issue.code === "unrecognized_keys"
        ? issue.keys.map((key) => ({ field: name([...issue.path, key]), message: "is not a known field" }))
        : [{ field: name(issue.path), message: issue.message }];
    for (const problem of problems) if (!fields.has(problem.field)) fields.set(problem.field, problem.message);
  }
  return [...fields].map(([field, message]) => ({ field, message }));
}

/** OpenAPIHono defaultHook: a failed zod validation becomes a ValidationError (thrown, so onError answers). */
export function validationHook(
  result: { success: true; data: unknown; target?: string } | { success: false; error: z.ZodError; target?: string },
  _c: Context,
): undefined {
  if (!result.success) throw new ValidationError(fieldErrorsFromZod(result.error, result.target));
  return undefined;
}

export function errorBody(code: string, message: string, fields?: FieldError[], extra: Record<string, unknown> = {}): ErrorBody {
  return { error: { ...extra, code, message, ...(fields ? { fields } : {}) } };
}

/** Hono onError: domain errors keep their status; anything else is logged and answered 500 without details. */
export function createErrorHandler(log: (message: string) => void = (message) => process.stderr.write(`${message}\n`)): ErrorHandler {
  return (error, c) => {
    if (error instanceof UpstreamUnavailableError) {
      // The upstream's own text (STS, OpenSSL, a socket) is for the operator's log, never for the client.
      log(`upstream error: ${c.req.method} ${c.req.path}: ${error.message}`);
      return c.json(errorBody(error.code, neutralUpstreamText(error.cause ?? error.message), error.fields, error.details), statusOf(error));
    }
    if (error instanceof DomainError) {
      if (error instanceof RateLimitedError) c.header("Retry-After", String(error.retryAfterSeconds));
      return c.json(errorBody(error.code, error.message, error.fields, error.details), statusOf(error));
    }
    if (error instanceof SyntaxError && /JSON/i.test(error.message)) {
      return c.json(errorBody("invalid_json", "the request body is not valid JSON"), 400);
    }
    if (error instanceof HTTPException) {
      const status = error.status as ContentfulStatusCode;
      if (status === 400 && /json/i.test(error.message)) {
        return c.json(errorBody("invalid_json", "the request body is not valid JSON"), 400);
      }
      return c.json(errorBody(status >= 500 ? "internal_error" : "http_error", error.message || "request failed"), status);
    }
    log(`error: ${c.req.method} ${c.req.path}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return c.json(errorBody("internal_error", "internal server error"), 500);
  };
}
