import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The edge's metrics, registered on the registry passed in. */
export interface EdgeMetrics {
  registry: Registry;
  /** mcp_api_requests_total{method, protocol, code} */
  requests: Counter<"method" | "protocol" | "code">;
  /** mcp_task_latency_ms{operation, outcome}: accept-to-finish for tasks, call time for the rest. */
  taskLatency: Histogram<"operation" | "outcome">;
  /** mcp_policy_decisions_total{result, operation} */
  policyDecisions: Counter<"result" | "operation">;
  /** mcp_policy_eval_duration_seconds */
  policyEval: Histogram;
  /** mcp_audit_write_duration_seconds */
  auditWrite: Histogram;
  /** mcp_tasks_in_flight{state} */
  tasksInFlight: Gauge<"state">;
  /** mcp_tasks_queued: accepted tasks waiting for a runner with room. */
  tasksQueued: Gauge;
  /** mcp_runner_up{runner} */
  runnerUp: Gauge<"runner">;
  /** mcp_policy_reloads_total{result} */
  policyReloads: Counter<"result">;
  /** mcp_auth_failures_total{reason} */
  authFailures: Counter<"reason">;
  /** mcp_auth_failures_delayed_total */
  authFailuresDelayed: Counter;
  /** mcp_rate_limited_total */
  rateLimited: Counter;
}

const MS_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];
const FAST_BUCKETS = [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.05];

/**
 * mcp_store_commits_total and mcp_store_syncs_total, read from the store at
 * scrape time: write transactions, and disk syncs that made them durable
 * (fewer syncs than commits: group commit). The hot path's regression test
 * counts them per task.
 */
export function registerStoreWriteMetrics(
  registry: Registry,
  stats: () => { commits: number; syncs: number },
): void {
  new Counter({
    name: "mcp_store_commits_total",
    help: "Store write transactions committed.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats().commits);
    },
  });
  new Counter({
    name: "mcp_store_syncs_total",
    help: "Disk syncs of the store's log (each makes every commit before it durable).",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats().syncs);
    },
  });
}

/** Registers the edge's metrics. */
export function createEdgeMetrics(registry: Registry): EdgeMetrics {
  const metrics = createMetrics(registry);
  // Series that alerts compute increase() over exist from the start at 0, so the first event counts.
  metrics.policyReloads.inc({ result: "error" }, 0);
  metrics.policyReloads.inc({ result: "ok" }, 0);
  for (const result of ["allow", "deny"])
    metrics.policyDecisions.inc({ result, operation: "execute" }, 0);
  return metrics;
}

function createMetrics(registry: Registry): EdgeMetrics {
  return {
    registry,
    requests: new Counter({
      name: "mcp_api_requests_total",
      help: "McpService calls by method, protocol and result code.",
      labelNames: ["method", "protocol", "code"],
      registers: [registry],
    }),
    taskLatency: new Histogram({
      name: "mcp_task_latency_ms",
      help: "Latency of operations in milliseconds (tasks: accepted to finished).",
      labelNames: ["operation", "outcome"],
      buckets: MS_BUCKETS,
      registers: [registry],
    }),
    policyDecisions: new Counter({
      name: "mcp_policy_decisions_total",
      help: "Policy decisions by result (allow, deny).",
      labelNames: ["result", "operation"],
      registers: [registry],
    }),
    policyEval: new Histogram({
      name: "mcp_policy_eval_duration_seconds",
      help: "Time to evaluate one policy decision in-process.",
      buckets: FAST_BUCKETS,
      registers: [registry],
    }),
    auditWrite: new Histogram({
      name: "mcp_audit_write_duration_seconds",
      help: "Time to append one audit record durably.",
      buckets: FAST_BUCKETS.concat([0.1, 0.25, 1]),
      registers: [registry],
    }),
    tasksInFlight: new Gauge({
      name: "mcp_tasks_in_flight",
      help: "Tasks accepted by this edge and not finished, by state.",
      labelNames: ["state"],
      registers: [registry],
    }),
    tasksQueued: new Gauge({
      name: "mcp_tasks_queued",
      help: "Accepted tasks waiting for a runner with room.",
      registers: [registry],
    }),
    runnerUp: new Gauge({
      name: "mcp_runner_up",
      help: "1 when the runner answers over mTLS with a ready sandbox, else 0.",
      labelNames: ["runner"],
      registers: [registry],
    }),
    policyReloads: new Counter({
      name: "mcp_policy_reloads_total",
      help: "Policy bundle loads by result (ok, error).",
      labelNames: ["result"],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: "mcp_auth_failures_total",
      help: "Rejected credentials by reason.",
      labelNames: ["reason"],
      registers: [registry],
    }),
    authFailuresDelayed: new Counter({
      name: "mcp_auth_failures_delayed_total",
      help: "Authentication failures answered after the delay: beyond their address's budget.",
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: "mcp_rate_limited_total",
      help: "Calls refused by the per-principal rate limit.",
      registers: [registry],
    }),
  };
}
