/**
 * What domain code reports about itself: structured log lines and a handful of measurements. Services take a
 * `Telemetry` in their deps and never see pino or prom-client; api/server.ts wires the real ones (lib/logger.ts,
 * lib/metrics.ts), tests may leave the no-op default.
 */

/** Fields of a log line: ids, names, counts, durations. Never a secret (tokens, external IDs, credentials, plans). */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
}

export interface DomainMetrics {
  /** A run was claimed by an executor, `queueWaitSeconds` after it was requested. */
  runStarted(kind: string, queueWaitSeconds: number): void;
  runFinished(kind: string, status: string, durationSeconds: number): void;
  /** One region of a discovery scan. */
  discoveryRegionScanned(region: string, outcome: "succeeded" | "failed", durationSeconds: number): void;
}

export interface Telemetry {
  log: Logger;
  metrics: DomainMetrics;
}

const ignore = () => undefined;

export const noopTelemetry: Telemetry = {
  log: { info: ignore, warn: ignore, error: ignore },
  metrics: { runStarted: ignore, runFinished: ignore, discoveryRegionScanned: ignore },
};
