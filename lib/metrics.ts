/**
 * Prometheus metrics (prom-client), on a registry of our own. Two kinds:
 * - measured in this process (HTTP latency, run and discovery durations, queue wait): add them up across replicas;
 * - read from the database at scrape time (queue depth, agents enrolled, connect-to-completed): every replica reports
 *   the same, shared figure, so aggregate them with max() rather than sum().
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { DomainMetrics } from "./telemetry";

/** The figures read from the database when scraped (services/ops-figures.ts). */
export interface MetricsSources {
  /** Every run recorded, by kind and status (queued ones are the queue's depth). */
  runsByStatus(): Promise<{ kind: string; status: string; count: number }[]>;
  agentsEnrolled(): Promise<number>;
  /** Seconds from first AWS connect to first `completed`, one value per tenant that completed. */
  secondsToOnboard(): Promise<number[]>;
}

export interface ServiceMetrics extends DomainMetrics {
  registry: Registry;
  observeHttp(method: string, route: string, status: number, durationSeconds: number): void;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
  contentType: string;
}

const RUN_SECONDS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800];
const WAIT_SECONDS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900];
const ONBOARD_SECONDS = [30, 60, 120, 180, 300, 600, 1200, 3600, 14_400];

export function createMetrics(sources?: MetricsSources): ServiceMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "mxdr_" });
  const http = new Histogram({
    name: "mxdr_http_request_duration_seconds",
    help: "HTTP request latency by method, matched route and status",
    labelNames: ["method", "route", "status"],
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const runs = new Counter({
    name: "mxdr_runs_total",
    help: "Stack runs finished by this process, by kind and status",
    labelNames: ["kind", "status"],
    registers: [registry],
  });
  const runDuration = new Histogram({
    name: "mxdr_run_duration_seconds",
    help: "Stack run duration (claimed to finished), by kind and status",
    labelNames: ["kind", "status"],
    buckets: RUN_SECONDS,
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: "mxdr_run_queue_wait_seconds",
    help: "Time from a run's request to its claim by an executor, by kind",
    labelNames: ["kind"],
    buckets: WAIT_SECONDS,
    registers: [registry],
  });
  const discovery = new Histogram({
    name: "mxdr_discovery_region_duration_seconds",
    help: "Discovery scan of one region, by region and outcome",
    labelNames: ["region", "outcome"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const discoveryFailures = new Counter({
    name: "mxdr_discovery_region_failures_total",
    help: "Regions whose discovery scan failed, by region",
    labelNames: ["region"],
    registers: [registry],
  });
  if (sources) {
    new Gauge({
      name: "mxdr_run_queue_depth",
      help: "Runs queued and not yet claimed (shared: the database's figure), by kind",
      labelNames: ["kind"],
      registers: [registry],
      async collect() {
        const counts = await sources.runsByStatus();
        this.reset();
        for (const { kind, status, count } of counts) if (status === "queued") this.set({ kind }, count);
      },
    });
    new Gauge({
      name: "mxdr_runs",
      help: "Runs recorded, by kind and status (shared: the database's figure)",
      labelNames: ["kind", "status"],
      registers: [registry],
      async collect() {
        const counts = await sources.runsByStatus();
        this.reset();
        for (const { kind, status, count } of counts) this.set({ kind, status }, count);
      },
    });
    new Gauge({
      name: "mxdr_agents_enrolled",
      help: "Agents enrolled (shared: the database's figure)",
      registers: [registry],
      async collect() {
        this.set(await sources.agentsEnrolled());
      },
    });
    new Histogram({
      name: "mxdr_onboarding_connect_to_completed_seconds",
      help: "Per tenant, first AWS connect to first completed onboarding (shared: from the audit trail)",
      buckets: ONBOARD_SECONDS,
      registers: [registry],
      async collect() {
        this.reset();
        for (const seconds of await sources.secondsToOnboard()) this.observe(seconds);
      },
    });
  }
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    observeHttp: (method, route, status, seconds) => http.observe({ method, route, status: String(status) }, seconds),
    runStarted: (kind, waitSeconds) => queueWait.observe({ kind }, waitSeconds),
    runFinished: (kind, status, seconds) => {
      runs.inc({ kind, status });
      runDuration.observe({ kind, status }, seconds);
    },
    discoveryRegionScanned: (region, outcome, seconds) => {
      discovery.observe({ region, outcome }, seconds);
      if (outcome === "failed") discoveryFailures.inc({ region });
    },
  };
}
