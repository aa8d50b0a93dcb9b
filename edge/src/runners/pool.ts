import { createHash } from "node:crypto";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { checkRunnerIdentity, runnerIdentity, type TlsMaterial } from "@mcp-gateway/common/tls";
import { RunnerService } from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import type { RunnerTarget } from "../config.js";
import type { EdgeMetrics } from "../metrics.js";

/** What the edge knows about one runner. */
export interface RunnerHandle {
  readonly id: string;
  readonly url: string;
  /** Typed client over mTLS; rebuilt when certificates rotate. */
  client: Client<typeof RunnerService>;
  /** Answered the last probe with a ready sandbox. */
  healthy: boolean;
  /** Why not healthy, for error messages. */
  problem: string;
  /** Running tasks at the last probe plus tasks dispatched since. */
  load: number;
}

/** Options for {@link createRunnerPool}. */
export interface RunnerPoolOptions {
  /** Runners from configuration. */
  targets: readonly RunnerTarget[];
  /** The edge's client certificate, key and the CA bundle. */
  tls: TlsMaterial;
  /** Interval between Info probes, ms. */
  probeIntervalMs: number;
  logger: Logger;
  metrics: EdgeMetrics;
}

/** The set of runners the edge dispatches to. */
export interface RunnerPool {
  /**
   * Picks the runner for a workspace: rendezvous hashing over healthy runners,
   * so a workspace stays on one runner while it is healthy.
   * @throws ConnectError Unavailable when no runner is reachable.
   */
  pick(workspace: string): RunnerHandle;
  /** A runner by id (for tasks already assigned). */
  get(id: string): RunnerHandle | undefined;
  /** Probes every runner now. */
  probe(): Promise<void>;
  /** Installs rotated certificates: new connections use them. */
  rotate(tls: TlsMaterial): void;
  all(): readonly RunnerHandle[];
  close(): void;
}

/** Creates the runner pool and starts probing. */
export function createRunnerPool(options: RunnerPoolOptions): RunnerPool {
  const { logger, metrics } = options;
  let tls = options.tls;
  const clientFor = (t: RunnerTarget): Client<typeof RunnerService> =>
    createClient(
      RunnerService,
      createGrpcTransport({
        baseUrl: t.url,
        nodeOptions: {
          ca: tls.ca,
          cert: tls.cert,
          key: tls.key,
          minVersion: "TLSv1.3",
          checkServerIdentity: checkRunnerIdentity(runnerIdentity(t.id)),
        },
        idleConnectionTimeoutMs: 60_000,
        pingIntervalMs: 10_000,
      }),
    );
  const runners: RunnerHandle[] = options.targets.map((t) => ({
    id: t.id,
    url: t.url,
    client: clientFor(t),
    healthy: false,
    problem: "not probed yet",
    load: 0,
  }));

  async function probeOne(r: RunnerHandle): Promise<void> {
    try {
      const info = await r.client.info({}, { timeoutMs: 2000 });
      if (info.runnerId !== r.id) {
        throw new Error(`runner at ${r.url} says it is ${info.runnerId}, expected ${r.id}`);
      }
      r.healthy = info.sandboxReady;
      r.problem = info.sandboxReady ? "" : info.sandboxProblem;
      r.load = info.runningTasks;
    } catch (err) {
      if (r.healthy) logger.warn({ runner: r.id, err: String(err) }, "runner became unreachable");
      r.healthy = false;
      r.problem = err instanceof ConnectError ? err.rawMessage : String(err);
    }
    metrics.runnerUp.set({ runner: r.id }, r.healthy ? 1 : 0);
  }

  const probe = async () => {
    await Promise.all(runners.map(probeOne));
  };
  const timer = setInterval(() => void probe(), options.probeIntervalMs);
  timer.unref();

  return {
    pick(workspace) {
      const healthy = runners.filter((r) => r.healthy);
      if (healthy.length === 0) {
        const why = runners.map((r) => `${r.id}: ${r.problem}`).join("; ");
        throw new ConnectError(
          `no runner is available${why ? ` (${why})` : " (none configured)"}`,
          Code.Unavailable,
        );
      }
      let best = healthy[0] as RunnerHandle;
      let bestScore = -1n;
      for (const r of healthy) {
        const score = createHash("sha256")
          .update(`${r.id}\0${workspace}`)
          .digest()
          .readBigUInt64BE();
        if (score > bestScore) {
          best = r;
          bestScore = score;
        }
      }
      return best;
    },
    get(id) {
      return runners.find((r) => r.id === id);
    },
    probe,
    rotate(next) {
      tls = next;
      for (const r of runners) {
        const target = options.targets.find((t) => t.id === r.id);
        if (target) r.client = clientFor(target);
      }
      logger.info("runner client certificates rotated");
    },
    all() {
      return runners;
    },
    close() {
      clearInterval(timer);
    },
  };
}
