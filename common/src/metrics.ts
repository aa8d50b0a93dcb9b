import { collectDefaultMetrics, Registry } from "prom-client";

/**
 * A fresh prom-client registry with the Node process metrics, labelled with
 * the tier. Each process owns one and passes it in; nothing registers on the
 * global registry.
 */
export function createMetricsRegistry(tier: "edge" | "runner"): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ tier });
  collectDefaultMetrics({ register: registry });
  return registry;
}
