/**
 * The error taxonomy every layer shares. Domain code throws these neutral classes where a problem arises; only the
 * API's error handler (api/errors.ts) turns them into statuses and the response envelope.
 *
 * `code` is a stable machine-readable reason (`run_in_progress`, `approval_required`, ...); `details` carries what a
 * client needs to act (`blocking_run_id`, ...); `fields` names the inputs to fix.
 */

export interface FieldProblem {
  /** Dotted path of the bad field as the client sent it (`integration_settings.regions`, `query.limit`). */
  field: string;
  message: string;
}

export abstract class DomainError extends Error {
  abstract readonly defaultCode: string;
  readonly fields?: FieldProblem[];
  readonly details: Record<string, unknown>;
  private readonly explicitCode?: string;

  constructor(message: string, options: { code?: string; fields?: FieldProblem[]; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.explicitCode = options.code;
    this.fields = options.fields;
    this.details = options.details ?? {};
  }

  get code(): string {
    return this.explicitCode ?? this.defaultCode;
  }
}

/** The input is malformed: the client must change the request. */
export class ValidationError extends DomainError {
  readonly defaultCode = "validation_failed";
  constructor(fields: FieldProblem[], message = `invalid request: ${fields.map((field) => field.field).join(", ")}`) {
    super(message, { fields });
  }
}

export class UnauthorizedError extends DomainError {
  readonly defaultCode = "unauthorized";
  constructor(message = "missing or invalid bearer token", options: { code?: string } = {}) {
    super(message, options);
  }
}

export class ForbiddenError extends DomainError {
  readonly defaultCode = "forbidden";
  constructor(message = "this token may not do that", options: { code?: string; fields?: FieldProblem[] } = {}) {
    super(message, options);
  }
}

export class NotFoundError extends DomainError {
  readonly defaultCode = "not_found";
  constructor(message = "not found", options: { code?: string } = {}) {
    super(message, options);
  }
}

/** What was asked for existed once and is no longer usable (a used or expired single-use link). */
export class GoneError extends DomainError {
  readonly defaultCode = "gone";
  constructor(message: string, options: { code?: string } = {}) {
    super(message, options);
  }
}

/** The request is well-formed but clashes with the current state (an active run, an offboarded tenant, ...). */
export class ConflictError extends DomainError {
  readonly defaultCode = "conflict";
  constructor(message: string, options: { code?: string; fields?: FieldProblem[]; details?: Record<string, unknown> } = {}) {
    super(message, options);
  }
}

/** The request is well-formed but cannot be carried out as it stands (a tenant not ready, a role that cannot be assumed). */
export class UnprocessableError extends DomainError {
  readonly defaultCode = "unprocessable";
  constructor(message: string, options: { code?: string; fields?: FieldProblem[]; details?: Record<string, unknown> } = {}) {
    super(message, options);
  }
}

/** Something outside the service (the tenant's AWS account, STS, SSM) could not be reached or refused. */
export class UpstreamUnavailableError extends DomainError {
  readonly defaultCode = "upstream_unavailable";
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, options);
  }
}

/** The service itself lacks a setting the operation needs (an operator must fix the deployment). */
export class ServiceNotConfiguredError extends DomainError {
  readonly defaultCode = "service_not_configured";
  constructor(message: string, options: { fields?: FieldProblem[] } = {}) {
    super(message, options);
  }
}

/** A feature that is not there yet (Azure, GCP). */
export class NotSupportedError extends DomainError {
  readonly defaultCode = "not_implemented";
  constructor(message: string) {
    super(message);
  }
}

/** A limit was reached (failed authentications, queued runs, open streams): try again after `retryAfterSeconds`. */
export class RateLimitedError extends DomainError {
  readonly defaultCode = "rate_limited";
  readonly retryAfterSeconds: number;
  constructor(message: string, options: { code?: string; retryAfterSeconds: number; details?: Record<string, unknown> }) {
    const retryAfterSeconds = Math.max(1, Math.ceil(options.retryAfterSeconds));
    super(message, { code: options.code, details: { ...options.details, retry_after_seconds: retryAfterSeconds } });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
