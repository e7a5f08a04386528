/**
 * What a tenant may learn when a call outside the service fails (STS, SSM, EC2 in its account, a TLS handshake, a
 * socket): a neutral code and a fixed message, never the upstream text. That text names principals, ARNs, hosts,
 * ports and library internals (OpenSSL's "wrong version number", `ECONNREFUSED 127.0.0.1:18499`), which would turn
 * every error into a probe. Operators read the full text in the service log (censored, lib/logger.ts).
 *
 * upstreamFailureOf accepts an error (its name, code and message, and its cause's) or the text an older layer made
 * of one ("AccessDenied: User: ... is not authorized ..."); it is idempotent on its own messages.
 */

export type UpstreamFailureCode =
  | "upstream_access_denied"
  | "upstream_credentials_invalid"
  | "upstream_not_found"
  | "upstream_throttled"
  | "upstream_timeout"
  | "upstream_unreachable"
  | "upstream_tls_failed"
  | "upstream_error";

export interface UpstreamFailure {
  code: UpstreamFailureCode;
  message: string;
}

export const UPSTREAM_MESSAGES: Record<UpstreamFailureCode, string> = {
  upstream_access_denied: "the cloud account refused the request (access denied)",
  upstream_credentials_invalid: "the cloud provider did not accept the platform's credentials",
  upstream_not_found: "the cloud provider did not find the resource",
  upstream_throttled: "the cloud provider throttled the request; it will be retried",
  upstream_timeout: "the cloud provider did not answer in time",
  upstream_unreachable: "the cloud provider's endpoint could not be reached",
  upstream_tls_failed: "a secure connection to the cloud provider could not be established",
  upstream_error: "the cloud provider's request failed",
};

/** First match wins: checked against "name code message" of the error and its causes. */
const RULES: [RegExp, UpstreamFailureCode][] = [
  [/\b(ERR_SSL|ERR_TLS|SSL routines|wrong version number|CERT_|UNABLE_TO_VERIFY|SELF_SIGNED|certificate|EPROTO|handshake)/i, "upstream_tls_failed"],
  [/\b(Throttl|RequestLimitExceeded|TooManyRequests|SlowDown|Rate exceeded)/i, "upstream_throttled"],
  [
    /\b(InvalidClientTokenId|ExpiredToken|SignatureDoesNotMatch|UnrecognizedClient|InvalidAccessKeyId|CredentialsProviderError|security token)/i,
    "upstream_credentials_invalid",
  ],
  [/\b(AccessDenied|UnauthorizedOperation|AuthorizationError|not authorized|Forbidden|\b403\b)/i, "upstream_access_denied"],
  [/\b(NoSuchEntity|NotFound|does not exist|InvalidInstanceID)/i, "upstream_not_found"],
  [/\b(ETIMEDOUT|TimeoutError|timed out|RequestTimeout|ESOCKETTIMEDOUT)/i, "upstream_timeout"],
  [/\b(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|socket hang up|getaddrinfo|connect )/i, "upstream_unreachable"],
];

const KNOWN_MESSAGES = new Map(Object.entries(UPSTREAM_MESSAGES).map(([code, message]) => [message, code as UpstreamFailureCode]));

function describe(error: unknown, depth = 0): string {
  if (depth > 4 || error === undefined || error === null) return "";
  if (typeof error === "string") return error;
  if (typeof error !== "object") return String(error);
  const { name, code, message, cause, Code } = error as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown; Code?: unknown };
  return `${[name, code, Code, message].filter((part) => typeof part === "string").join(" ")} ${describe(cause, depth + 1)}`;
}

export function upstreamFailureOf(error: unknown): UpstreamFailure {
  if (typeof error === "string") {
    const known = KNOWN_MESSAGES.get(error) ?? (/\((upstream_[a-z_]+)\)$/.exec(error)?.[1] as UpstreamFailureCode | undefined);
    if (known && known in UPSTREAM_MESSAGES) return { code: known, message: UPSTREAM_MESSAGES[known] };
  }
  const text = describe(error);
  const code = RULES.find(([pattern]) => pattern.test(text))?.[1] ?? "upstream_error";
  return { code, message: UPSTREAM_MESSAGES[code] };
}

/** The text a tenant is shown for an upstream failure: the neutral message with its code. */
export function neutralUpstreamText(error: unknown): string {
  const failure = upstreamFailureOf(error);
  return `${failure.message} (${failure.code})`;
}

export type AccessDeniedCause =
  | "service_control_policy"
  | "resource_control_policy"
  | "permissions_boundary"
  | "session_policy"
  | "identity_policy_deny"
  | "resource_policy_deny"
  | "no_allow"
  | "unknown";

/** AWS's words for each cause (its AccessDenied messages since 2021), the only upstream text a tenant is shown. */
export const ACCESS_DENIED_CAUSES: Record<AccessDeniedCause, string> = {
  service_control_policy: "an explicit deny in a service control policy",
  resource_control_policy: "an explicit deny in a resource control policy",
  permissions_boundary: "an explicit deny in a permissions boundary",
  session_policy: "an explicit deny in a session policy",
  identity_policy_deny: "an explicit deny in an identity-based policy",
  resource_policy_deny: "an explicit deny in a resource-based policy",
  no_allow: "no policy allows it",
  unknown: "access denied",
};

/** AWS's phrase for each cause, as its AccessDenied messages word it. */
export const ACCESS_DENIED_CAUSE_RULES: [RegExp, AccessDeniedCause][] = [
  [/explicit deny in a service control policy/i, "service_control_policy"],
  [/explicit deny in a resource control policy/i, "resource_control_policy"],
  [/explicit deny in a permissions boundary/i, "permissions_boundary"],
  [/explicit deny in a session policy/i, "session_policy"],
  [/explicit deny in an identity-based policy/i, "identity_policy_deny"],
  [/explicit deny in a resource-based policy/i, "resource_policy_deny"],
  [/no (identity-based|resource-based|permissions boundary|session)? ?polic(y|ies) allows?/i, "no_allow"],
];

/**
 * What an AccessDenied says, in fixed words only: the denied action (`service:Action`, checked against that shape) and
 * the cause. Undefined when the failure is not an access denial.
 */
export function accessDeniedDetail(error: unknown): { action: string | null; cause: AccessDeniedCause } | undefined {
  const text = describe(error);
  if (upstreamFailureOf(error).code !== "upstream_access_denied" && !/UnauthorizedOperation|AccessDenied/.test(text)) return undefined;
  const action = /perform:? ([a-z0-9-]{2,32}:[A-Za-z0-9*]{2,64})\b/.exec(text)?.[1] ?? null;
  const cause = ACCESS_DENIED_CAUSE_RULES.find(([pattern]) => pattern.test(text))?.[1] ?? "unknown";
  return { action, cause };
}
