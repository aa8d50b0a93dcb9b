import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@mcp-gateway/proto/grpc/health/v1";

/** Options for {@link createHealthService}. */
export interface HealthServiceOptions {
  /**
   * Services with a status of their own besides the server as a whole (""),
   * e.g. `["mcp.McpService"]`. Any other name is unknown (NOT_FOUND for Check,
   * SERVICE_UNKNOWN for Watch).
   */
  services: readonly string[];
  /**
   * The edge's readiness, the same function `/health/ready` answers from:
   * resolves to the problems, empty when ready (not draining, not a waiting
   * standby, store, policy and a runner available).
   */
  readiness: () => Promise<readonly string[]>;
  /** How often Watch re-evaluates readiness while anyone watches, ms (default 1000). */
  watchIntervalMs?: number;
}

/** A status change feed shared by every Watch call: one readiness poll, however many watchers. */
interface StatusFeed {
  /** Resolves with the next status that differs from `last`, or undefined once `signal` aborts. */
  next(last: ServingStatus, signal: AbortSignal): Promise<ServingStatus | undefined>;
}

function createStatusFeed(current: () => Promise<ServingStatus>, intervalMs: number): StatusFeed {
  const waiting = new Set<{ last: ServingStatus; resolve: (s: ServingStatus) => void }>();
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  const stopWhenIdle = () => {
    if (waiting.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  const poll = async () => {
    if (polling) return; // a slow readiness check must not pile up behind itself
    polling = true;
    try {
      const status = await current();
      for (const w of waiting) {
        if (status !== w.last) {
          waiting.delete(w);
          w.resolve(status);
        }
      }
    } finally {
      polling = false;
      stopWhenIdle();
    }
  };
  return {
    next(last, signal) {
      if (signal.aborted) return Promise.resolve(undefined);
      return new Promise((resolve) => {
        const w = {
          last,
          resolve: (s: ServingStatus | undefined) => {
            signal.removeEventListener("abort", onAbort);
            resolve(s);
          },
        };
        const onAbort = () => {
          waiting.delete(w);
          stopWhenIdle();
          w.resolve(undefined);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiting.add(w);
        if (!timer) {
          timer = setInterval(() => void poll().catch(() => undefined), intervalMs);
        }
      });
    },
  };
}

/** Resolves once `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}

/**
 * The standard gRPC health service (`grpc.health.v1.Health`) for Kubernetes
 * gRPC probes, grpc-health-probe, Envoy and cloud load balancers. It answers
 * from the edge's readiness — the state `/health/ready` reports — so the two
 * never disagree: SERVING when ready, NOT_SERVING while draining, while a
 * standby waits for the active lease, or when the store, the policy or every
 * runner is unavailable. The server as a whole ("") and each listed service
 * share that state. Needs no credentials (a public procedure in the
 * interceptor).
 *
 * @example
 * router.service(Health, createHealthService({ services: ["mcp.McpService"], readiness }));
 */
export function createHealthService(options: HealthServiceOptions): ServiceImpl<typeof Health> {
  const known = new Set(["", ...options.services]);
  const current = async (): Promise<ServingStatus> =>
    (await options.readiness()).length === 0 ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  const feed = createStatusFeed(current, options.watchIntervalMs ?? 1000);
  const response = (status: ServingStatus): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status });
  return {
    async check(req) {
      if (!known.has(req.service)) {
        throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      }
      return response(await current());
    },
    async list() {
      const status = response(await current());
      return create(HealthListResponseSchema, {
        statuses: Object.fromEntries([...known].map((name) => [name, status])),
      });
    },
    async *watch(req, ctx: HandlerContext) {
      if (!known.has(req.service)) {
        // The health-checking spec: tell the watcher, keep the stream open (the set of
        // services is fixed here, so nothing more will come until the call ends).
        yield response(ServingStatus.SERVICE_UNKNOWN);
        await aborted(ctx.signal);
        return;
      }
      let last = await current();
      yield response(last);
      for (;;) {
        const next = await feed.next(last, ctx.signal);
        if (next === undefined) return;
        last = next;
        yield response(last);
      }
    },
  };
}
