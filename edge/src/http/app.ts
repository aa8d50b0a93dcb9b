import { Hono } from "hono";
import type { Registry } from "prom-client";

/** Options for {@link createHttpApp}. */
export interface HttpAppOptions {
  version: string;
  startedAt: number;
  registry: Registry;
  /** false once shutdown began (or while a standby waits): readiness answers 503 so load balancers stop sending work. */
  ready: () => boolean;
  /** Why the edge is not serving: "draining" or "standby". */
  notServing: () => string;
  /**
   * Readiness: resolves to the problems, empty when ready ("draining" or
   * "standby" while not serving; otherwise unreachable dependencies). The same
   * function answers grpc.health.v1.Health, so the two never disagree.
   */
  readiness: () => Promise<readonly string[]>;
}

/**
 * The plain HTTP routes of the edge port, written against web-standard
 * Request/Response: `GET /health` (liveness + version + uptime),
 * `GET /health/ready` (503 while draining or when the store or every runner
 * is unreachable) and `GET /metrics` (Prometheus text).
 *
 * @example
 * const app = createHttpApp({ version, startedAt, registry, ready, notServing, readiness });
 */
export function createHttpApp(options: HttpAppOptions): Hono {
  const app = new Hono();
  const uptime = () => Math.floor((Date.now() - options.startedAt) / 1000);

  app.get("/health", (c) =>
    c.json({
      status: options.ready() ? "ok" : options.notServing(),
      version: options.version,
      uptime_seconds: uptime(),
    }),
  );
  app.get("/health/live", (c) => c.json({ status: "ok" }));
  app.get("/health/ready", async (c) => {
    const problems = await options.readiness();
    return c.json(
      { status: problems.length === 0 ? "ready" : "not_ready", problems },
      problems.length === 0 ? 200 : 503,
    );
  });
  app.get("/metrics", async (c) => {
    const body = await options.registry.metrics();
    return c.body(body, 200, { "content-type": options.registry.contentType });
  });
  app.notFound((c) =>
    c.json({ code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }, 404),
  );
  app.onError((_err, c) => c.json({ code: "internal", message: "internal error" }, 500));
  return app;
}
