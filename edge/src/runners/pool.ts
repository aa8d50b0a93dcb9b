import { createHash } from "node:crypto";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createMtlsTransport } from "@mcp-gateway/common/mtls-transport";
import { checkRunnerIdentity, runnerIdentity, type TlsMaterial } from "@mcp-gateway/common/tls";
import { type PeerRefusal, RunnerService } from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import type { RunnerTarget } from "../config.js";
import type { EdgeMetrics } from "../metrics.js";
import type { RunnerRegistry } from "../store/open.js";

/** What the edge knows about one runner. */
export interface RunnerHandle {
  readonly id: string;
  url: string;
  /** Typed client over mTLS; rebuilt when certificates rotate or the URL changes. */
  client: Client<typeof RunnerService>;
  /** Answered the last probe (static) or heartbeat (registered) with a ready sandbox. */
  healthy: boolean;
  /** Why not healthy, for error messages. */
  problem: string;
  /** Fraction of the runner's task slots in use (0..1) at the last report. */
  load: number;
  /** Boot id of the runner process at the last report ("" until known). */
  bootId: string;
  /** Known from configuration (probed) rather than from heartbeats. */
  readonly static: boolean;
}

/** Options for {@link createRunnerPool}. */
export interface RunnerPoolOptions {
  /** Hears of the connections a probed runner refused since its last report (audit chain). */
  onRunnerRefusals?: (runnerId: string, refusals: readonly PeerRefusal[]) => void;
  /** Runners from configuration (probed with Info). */
  targets: readonly RunnerTarget[];
  /** Registry of runners that register themselves with heartbeats. */
  registry: RunnerRegistry;
  /** A registered runner without a heartbeat for this long is taken out, ms. */
  heartbeatTimeoutMs: number;
  /** The edge's client certificate, key and the CA bundle. */
  tls: TlsMaterial;
  /** Interval between probes and registry reads, ms. */
  probeIntervalMs: number;
  logger: Logger;
  metrics: EdgeMetrics;
}

/** The set of runners the edge dispatches to. */
export interface RunnerPool {
  /**
   * Picks the runner for a workspace among healthy runners with a free slot:
   * rendezvous hashing keeps a workspace on one runner while it is healthy.
   * Undefined when none has room. `includeFull`: also a healthy runner whose last
   * reported load is full (the load is a probe's view; the runner refuses for real) —
   * for the fair queue's one attempt at a time.
   */
  tryPick(workspace: string, options?: { includeFull?: boolean }): RunnerHandle | undefined;
  /** Like tryPick, for calls that cannot wait. @throws ConnectError Unavailable. */
  pick(workspace: string): RunnerHandle;
  /** A runner by id (for tasks already assigned). */
  get(id: string): RunnerHandle | undefined;
  /** Probes configured runners and re-reads the registry now. */
  probe(): Promise<void>;
  /** Installs rotated certificates: new connections use them. */
  rotate(tls: TlsMaterial): void;
  all(): readonly RunnerHandle[];
  /** One line about every runner, for error messages. */
  describe(): string;
  /** Takes a runner out until its next heartbeat or probe says otherwise (it refused connections). */
  markDown(id: string, reason: string): void;
  close(): void;
}

/**
 * The runner's own refusal of new work — it is full (ResourceExhausted) or
 * draining (Unavailable "… is draining") — or undefined for any other error.
 */
export function runnerRefusal(err: ConnectError): "full" | "draining" | undefined {
  if (err.code === Code.ResourceExhausted) return "full";
  if (err.code === Code.Unavailable && /is draining/.test(err.rawMessage)) return "draining";
  return undefined;
}

/**
 * A client-safe summary of a runner call that failed: the runner's own refusal
 * ("full", "draining") or the error code, never the transport text (internal
 * addresses, errno, TLS details), which goes to the log.
 */
export function runnerProblem(err: ConnectError): string {
  const refusal = runnerRefusal(err);
  if (refusal) return refusal;
  const name = (Code[err.code] ?? "Unknown").replace(/[a-z][A-Z]/g, (m) => `${m[0]}_${m[1]}`);
  return `unreachable (${name.toLowerCase()})`;
}

/** Creates the runner pool and starts probing. */
export function createRunnerPool(options: RunnerPoolOptions): RunnerPool {
  const { logger, metrics } = options;
  let tls = options.tls;
  const clientFor = (id: string, url: string): Client<typeof RunnerService> =>
    createClient(
      RunnerService,
      createMtlsTransport({
        baseUrl: url,
        tls,
        checkServerIdentity: checkRunnerIdentity(runnerIdentity(id)),
        pingIntervalMs: 2_000,
      }),
    );
  const runners = new Map<string, RunnerHandle>();
  for (const t of options.targets) {
    runners.set(t.id, {
      id: t.id,
      url: t.url,
      client: clientFor(t.id, t.url),
      healthy: false,
      problem: "not probed yet",
      load: 0,
      bootId: "",
      static: true,
    });
  }

  function setHealth(r: RunnerHandle, healthy: boolean, problem: string): void {
    if (r.healthy && !healthy) logger.warn({ runner: r.id, problem }, "runner taken out");
    if (!r.healthy && healthy) logger.info({ runner: r.id, url: r.url }, "runner available");
    r.healthy = healthy;
    r.problem = problem;
    metrics.runnerUp.set({ runner: r.id }, healthy ? 1 : 0);
  }

  async function probeStatic(r: RunnerHandle): Promise<void> {
    try {
      const info = await r.client.info({}, { timeoutMs: 2000 });
      if (info.runnerId !== r.id) {
        throw new Error(`runner at ${r.url} says it is ${info.runnerId}, expected ${r.id}`);
      }
      r.bootId = info.bootId;
      setHealth(r, info.sandboxReady, info.sandboxReady ? "" : info.sandboxProblem);
      if (info.refusals.length > 0) options.onRunnerRefusals?.(r.id, info.refusals);
    } catch (err) {
      // The problem is shown to clients ("no runner is available (…)") and on /health/ready:
      // the code only; the transport text (addresses, errno, TLS) goes to the log.
      const ce = ConnectError.from(err);
      if (r.healthy || r.problem === "not probed yet") {
        logger.warn({ runner: r.id, url: r.url, err: ce.rawMessage }, "runner probe failed");
      }
      setHealth(r, false, runnerProblem(ce));
    }
  }

  async function readRegistry(): Promise<void> {
    let alive: Awaited<ReturnType<RunnerRegistry["alive"]>>;
    try {
      alive = await options.registry.alive(options.heartbeatTimeoutMs);
    } catch (err) {
      logger.warn({ err: String(err) }, "runner registry unreachable; keeping the last view");
      return;
    }
    const seen = new Set<string>();
    for (const rec of alive) {
      seen.add(rec.id);
      let r = runners.get(rec.id);
      if (!r) {
        r = {
          id: rec.id,
          url: rec.url,
          client: clientFor(rec.id, rec.url),
          healthy: false,
          problem: "",
          load: 0,
          bootId: rec.bootId,
          static: false,
        };
        runners.set(rec.id, r);
      } else if (r.url !== rec.url && !r.static) {
        r.url = rec.url;
        r.client = clientFor(rec.id, rec.url);
      }
      if (r.static) continue;
      r.load = rec.load;
      r.bootId = rec.bootId;
      setHealth(r, rec.healthy, rec.healthy ? "" : "runner reports its sandbox is not ready");
    }
    for (const r of runners.values()) {
      if (!r.static && !seen.has(r.id) && r.healthy) {
        setHealth(r, false, `no heartbeat for more than ${options.heartbeatTimeoutMs} ms`);
      }
    }
  }

  const probe = async () => {
    await Promise.all([
      ...[...runners.values()].filter((r) => r.static).map(probeStatic),
      readRegistry(),
    ]);
  };
  const timer = setInterval(() => void probe(), options.probeIntervalMs);
  timer.unref();

  function tryPick(
    workspace: string,
    pickOptions: { includeFull?: boolean } = {},
  ): RunnerHandle | undefined {
    let best: RunnerHandle | undefined;
    let bestScore = -1n;
    for (const r of runners.values()) {
      if (!r.healthy || (r.load >= 1 && pickOptions.includeFull !== true)) continue;
      const score = createHash("sha256").update(`${r.id}\0${workspace}`).digest().readBigUInt64BE();
      // Affinity first; among runners past 80 % load, prefer the least loaded.
      const adjusted = r.load >= 0.8 ? score / 4n : score;
      if (adjusted > bestScore) {
        best = r;
        bestScore = adjusted;
      }
    }
    return best;
  }

  function describe(): string {
    if (runners.size === 0) return "no runner configured or registered";
    return [...runners.values()]
      .map((r) => `${r.id}: ${r.healthy ? `ok, load ${Math.round(r.load * 100)}%` : r.problem}`)
      .join("; ");
  }

  return {
    tryPick,
    pick(workspace) {
      const r = tryPick(workspace);
      if (!r) throw new ConnectError(`no runner is available (${describe()})`, Code.Unavailable);
      return r;
    },
    get(id) {
      return runners.get(id);
    },
    probe,
    rotate(next) {
      tls = next;
      for (const r of runners.values()) r.client = clientFor(r.id, r.url);
      logger.info("runner client certificates rotated");
    },
    all() {
      return [...runners.values()];
    },
    describe,
    markDown(id, reason) {
      const r = runners.get(id);
      if (r) setHealth(r, false, reason);
    },
    close() {
      clearInterval(timer);
    },
  };
}
