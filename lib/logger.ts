/**
 * The service's structured log: one JSON object per line on stderr (stdout carries only the `listening on` line that
 * scripts read). Every line is censored before pino sees it, as a second line of defence (the first is that callers
 * only log ids, names, statuses and durations, lib/telemetry.ts): fields whose name says secret are replaced at any
 * depth (objects, arrays, errors and their causes), and the project's token shapes, bearer credentials and URL
 * passwords are cut out of every string, the message included.
 */
import pino from "pino";
import type { Logger } from "./telemetry";

export type LogLevel = "debug" | "info" | "warn" | "error";

export const CENSORED = "[redacted]";

/** Field names (any depth, any case, `_`/`-` ignored) whose values are never logged. */
const SECRET_FIELD =
  /^(authorization|cookie|setcookie|(\w*)(token|password|passwd|passphrase|secret|externalid|credentials?|privatekey|secretaccesskey|accesskeyid|apikey|encryptionkey|databaseurl|connectionstring))$/;

/** Secrets inside free text: the project's tokens (prefix_base64url), bearer credentials, passwords in URLs. */
const SECRET_TEXT: [RegExp, string][] = [
  [/\b(mxdr-[a-z]+|whsec)_[\w-]{16,}/g, CENSORED],
  [/\b(Bearer|Basic)\s+[\w.~+/=-]+/gi, `$1 ${CENSORED}`],
  [/(\b[a-z][\w+.-]*:\/\/[^\s:/@]*:)[^\s@/]+@/gi, `$1${CENSORED}@`],
  [/\b((?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|PULUMI_CONFIG_PASSPHRASE|ADMIN_TOKEN|CREDENTIALS_ENCRYPTION_KEY)\s*[=:]\s*)\S+/g, `$1${CENSORED}`],
];

const MAX_DEPTH = 12;

export function censorText(text: string): string {
  return SECRET_TEXT.reduce((censored, [pattern, replacement]) => censored.replace(pattern, replacement), text);
}

const isSecretField = (name: string) => SECRET_FIELD.test(name.toLowerCase().replace(/[-_]/g, ""));

/** A copy of `value` with secret fields and secret text censored at any depth; errors become plain objects. */
export function censorDeep(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === "string") return censorText(value);
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Date) return value;
  if (seen.has(value)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[too deep]";
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => censorDeep(item, depth + 1, seen));
    const source: Record<string, unknown> =
      value instanceof Error
        ? { ...value, type: value.name, message: value.message, stack: value.stack, ...(value.cause === undefined ? {} : { cause: value.cause }) }
        : (value as Record<string, unknown>);
    const copy: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(source)) {
      copy[key] = isSecretField(key) ? CENSORED : censorDeep(field, depth + 1, seen);
    }
    return copy;
  } finally {
    seen.delete(value);
  }
}

export type CensoredLogger = Logger & {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  flush(): void;
};

export function createLogger(level: LogLevel, destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false })): CensoredLogger {
  const logger = pino(
    {
      level,
      base: { service: "mini-xdr-onboarding", pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  const line = (write: pino.LogFn) => (fields: Record<string, unknown>, message: string) =>
    write.call(logger, censorDeep(fields) as object, censorText(message));
  return {
    info: line(logger.info),
    warn: line(logger.warn),
    error: line(logger.error),
    flush: () => logger.flush(),
  };
}
