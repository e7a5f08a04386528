/**
 * Typed API errors and the ONE place they become responses: `{error: {code, message, fields?}}`.
 * Handlers and middleware throw; `onError` (installed by api/app.ts) answers. zod validation
 * failures of OpenAPI routes reach the same shape through `validationHook` (OpenAPIHono defaultHook).
 */
import type { Context, ErrorHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { AgentNotEnrolledError, InvalidEnrollmentTokenError } from "../services/rollout/enrollment";
import { TenantAwsAccessError, TenantNotDeployedError } from "../services/integration/tenant-aws-session";

export interface FieldError {
  /** Dotted path of the bad field, prefixed by where it came from when not the body (`query.limit`, `header.idempotency-key`). */
  field: string;
  message: string;
}

export interface ErrorBody {
  error: { code: string; message: string; fields?: FieldError[]; [extra: string]: unknown };
}

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends ApiError {
  constructor(
    readonly fields: FieldError[],
    message = `invalid request: ${fields.map((field) => field.field).join(", ")}`,
  ) {
    super(400, "validation_failed", message);
  }
}

export class UnauthorizedError extends ApiError {
  constructor(message = "missing or invalid bearer token") {
    super(401, "unauthorized", message);
  }
}

export class ForbiddenError extends ApiError {
  constructor(message = "this token may not do that") {
    super(403, "forbidden", message);
  }
}

export class NotFoundError extends ApiError {
  constructor(message = "not found") {
    super(404, "not_found", message);
  }
}

export class ConflictError extends ApiError {
  constructor(message: string, extra: Record<string, unknown> = {}) {
    super(409, "conflict", message, extra);
  }
}

export class PayloadTooLargeError extends ApiError {
  constructor(limitBytes: number) {
    super(413, "payload_too_large", `the request body exceeds ${limitBytes} bytes`);
  }
}

export class NotImplementedError extends ApiError {
  constructor(message: string) {
    super(501, "not_implemented", message);
  }
}

/** zod issues -> field errors, paths prefixed with the request part unless it is the JSON body. */
export function fieldErrorsFromZod(error: z.ZodError, target?: string): FieldError[] {
  const prefix = target && target !== "json" ? target : "";
  const name = (path: PropertyKey[]) => [prefix, ...path.map(String)].filter(Boolean).join(".") || "body";
  return error.issues.flatMap((issue): FieldError[] => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ field: name([...issue.path, key]), message: "is not a known field" }));
    }
    const missing = issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined;
    return [{ field: name(issue.path), message: missing ? "is required" : issue.message }];
  });
}

/** OpenAPIHono defaultHook: a failed zod validation becomes a ValidationError (thrown, so onError answers). */
export function validationHook(
  result: { success: true; data: unknown; target?: string } | { success: false; error: z.ZodError; target?: string },
  _c: Context,
): undefined {
  if (!result.success) {
    const fields = fieldErrorsFromZod(result.error, result.target);
    throw new ValidationError(fields);
  }
  return undefined;
}

export function errorBody(code: string, message: string, fields?: FieldError[], extra: Record<string, unknown> = {}): ErrorBody {
  return { error: { ...extra, code, message, ...(fields ? { fields } : {}) } };
}

/** Hono onError: typed errors keep their status; anything else is logged and answered 500 without details. */
/** Errors raised by domain modules (below the API) and the answer each deserves. */
function domainErrorResponse(
  error: unknown,
): { status: ContentfulStatusCode; code: string; message: string; extra?: Record<string, unknown> } | undefined {
  if (error instanceof InvalidEnrollmentTokenError) return { status: 401, code: "invalid_enrollment_token", message: error.message };
  if (error instanceof AgentNotEnrolledError) return { status: 404, code: "agent_not_enrolled", message: error.message };
  if (error instanceof TenantNotDeployedError) return { status: 409, code: "tenant_not_deployed", message: error.message };
  if (error instanceof TenantAwsAccessError) return { status: 502, code: "tenant_aws_unreachable", message: error.message };
  return undefined;
}

export function createErrorHandler(log: (message: string) => void = (message) => process.stderr.write(`${message}\n`)): ErrorHandler {
  return (error, c) => {
    if (error instanceof ValidationError) {
      return c.json(errorBody(error.code, error.message, error.fields), error.status);
    }
    if (error instanceof ApiError) {
      return c.json(errorBody(error.code, error.message, undefined, error.extra), error.status);
    }
    const domain = domainErrorResponse(error);
    if (domain) return c.json(errorBody(domain.code, domain.message, undefined, domain.extra), domain.status);
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
