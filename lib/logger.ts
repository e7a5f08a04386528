/**
 * The service's structured log: one JSON object per line on stderr (stdout carries only the `listening on` line that
 * scripts read). Fields that could carry a secret are censored by path as a second line of defence; the first is
 * that callers only log ids, names, statuses and durations (lib/telemetry.ts).
 */
import pino from "pino";
import type { Logger } from "./telemetry";

export type LogLevel = "debug" | "info" | "warn" | "error";

export const REDACTED_FIELDS = [
  "authorization",
  "token",
  "password",
  "passphrase",
  "secret",
  "externalId",
  "external_id",
  "credentials",
  "*.authorization",
  "*.token",
  "*.password",
  "*.secret",
  "*.externalId",
  "*.external_id",
];

export function createLogger(level: LogLevel, destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false })): Logger & {
  flush(): void;
} {
  const logger = pino(
    {
      level,
      base: { service: "mini-xdr-onboarding", pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_FIELDS, censor: "[redacted]" },
    },
    destination,
  );
  return {
    info: (fields, message) => logger.info(fields, message),
    warn: (fields, message) => logger.warn(fields, message),
    error: (fields, message) => logger.error(fields, message),
    flush: () => logger.flush(),
  };
}
