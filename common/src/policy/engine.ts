import { stat } from "node:fs/promises";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import type { Logger } from "pino";
import { type PolicyBundle, readBundle } from "./bundle.js";
import { type Decision, denyDecision, parseDecision } from "./decision.js";
import type { PolicyInput } from "./input.js";
import { createWasmEvaluator, type WasmEvaluator } from "./wasm-eval.js";

/** Entrypoint built by scripts/build-policy.sh. */
export const DEFAULT_ENTRYPOINT = "mcp/authz/decision";

/** Result of one (re)load attempt, passed to {@link PolicyEngineOptions.onReload}. */
export interface ReloadResult {
  /** True when the new bundle was loaded and is now in use. */
  ok: boolean;
  /** Revision in use after the attempt ("" if none). */
  revision: string;
  /** Why the attempt failed (absent when ok). */
  error?: string;
}

/** Counters for metrics (the caller exports them, e.g. with prom-client). */
export interface PolicyEngineStats {
  /** Revision in use ("" if none). */
  revision: string;
  /** Successful loads, including the first. */
  loads: number;
  /** Failed load attempts (missing, corrupt or invalid bundles). */
  loadFailures: number;
  /** Decisions made. */
  decisions: number;
  /** Decisions that failed closed because evaluation threw or returned a bad shape. */
  evaluationErrors: number;
}

/** Options for {@link createPolicyEngine}. */
export interface PolicyEngineOptions {
  /** Path of the bundle tarball built by scripts/build-policy.sh (policies/build/bundle.tar.gz). */
  bundlePath: string;
  /** Logger for load/reload outcomes and evaluation errors (inputs are never logged). */
  logger: Logger;
  /**
   * How often the bundle file is checked for changes, in ms. Default 2000.
   * 0 disables the watcher (call {@link PolicyEngine.reload} yourself).
   */
  pollIntervalMs?: number;
  /** Called after every load attempt (startup, watcher, explicit reload). Must not throw. */
  onReload?: (result: ReloadResult) => void;
  /** Entrypoint to evaluate. Default {@link DEFAULT_ENTRYPOINT}. */
  entrypoint?: string;
  /**
   * Required bundle revision. When set, a bundle with another revision is
   * rejected (the runner pins the edge's revision this way). Default: any.
   */
  expectedRevision?: string;
}

/** In-process OPA policy evaluation. */
export interface PolicyEngine {
  /**
   * Decides a request. Synchronous and fail-closed: never throws; a missing or
   * broken bundle, an evaluation error or a result of the wrong shape gives
   * `{allow: false, denyReasons: [clear reason]}`.
   */
  decide(input: PolicyInput): Decision;
  /** Revision of the bundle in use ("" if none loaded). */
  revision(): string;
  /**
   * The data document of the bundle in use (`data.json`, read-only; undefined if none
   * loaded): settings the gateway applies outside a decision, such as task quotas.
   */
  data(): unknown;
  /** Loads the bundle file again now; resolves true if a new or the same valid bundle is in use. */
  reload(): Promise<boolean>;
  /** Counters for metrics. */
  stats(): PolicyEngineStats;
  /** Stops the watcher. decide() keeps working with the last bundle. */
  close(): void;
}

interface Active {
  /** Evaluates the entrypoint: input in, result set JSON out (see wasm-eval.ts). */
  evaluate: WasmEvaluator;
  revision: string;
  sha256: string;
  data: unknown;
  /** Decisions by the exact result JSON they were parsed from (see {@link decisionFor}). */
  results: Map<string, Decision>;
}

/** Result texts kept per bundle; the least recently used is dropped beyond this. */
const MAX_CACHED_RESULTS = 256;
/** Longer result texts (UTF-16 code units; long deny reasons) are parsed every time, not kept. */
const MAX_CACHED_RESULT_CHARS = 4096;

function freezeDecision(d: Decision): Decision {
  Object.freeze(d.denyReasons);
  Object.freeze(d.warnings);
  Object.freeze(d.obligations.limits);
  Object.freeze(d.obligations);
  return Object.freeze(d);
}

/**
 * Converts the result set JSON of one evaluation into a Decision. The policy
 * is evaluated for every request; what is reused is only the conversion of
 * result text seen before: most requests produce one of a few results (the
 * same allow with the same obligations), and JSON.parse plus the shape check
 * cost as much as a fifth of a decision. Identical text gives an identical
 * Decision, so a kept one is returned (frozen: callers never mutate it).
 *
 * @throws Error or DecisionShapeError for a result of the wrong shape.
 */
function decisionFor(active: Active, text: string): Decision {
  const kept = active.results.get(text);
  if (kept) {
    // Most recently used last: a burst of distinct denials evicts the rare results first.
    active.results.delete(text);
    active.results.set(text, kept);
    return kept;
  }
  const resultSet: unknown = JSON.parse(text);
  if (!Array.isArray(resultSet) || resultSet.length === 0) {
    throw new Error("the policy returned no decision (undefined result)");
  }
  if (resultSet.length > 1) throw new Error("the policy returned more than one result");
  const first: unknown = resultSet[0];
  const raw =
    typeof first === "object" && first !== null && "result" in first ? first.result : undefined;
  const decision = freezeDecision(parseDecision(raw, active.revision));
  if (text.length <= MAX_CACHED_RESULT_CHARS) {
    if (active.results.size >= MAX_CACHED_RESULTS) {
      const oldest = active.results.keys().next().value;
      if (oldest !== undefined) active.results.delete(oldest);
    }
    active.results.set(text, decision);
  }
  return decision;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Largest wasm memory a policy may use: 2048 pages of 64 KiB = 128 MiB. */
const MAX_MEMORY_PAGES = 2048;

function message(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  if (typeof err === "string") return err;
  if (typeof err === "object" && err !== null && "message" in err) return String(err.message);
  return String(err);
}

async function instantiate(bundle: PolicyBundle, entrypoint: string): Promise<WasmEvaluator> {
  const policy = await loadPolicy(bundle.wasm, { initial: 8, maximum: MAX_MEMORY_PAGES });
  const entrypoints = policy.entrypoints as Record<string, number>;
  if (!Object.hasOwn(entrypoints, entrypoint)) {
    throw new Error(
      `the bundle has no entrypoint ${entrypoint} (it has: ${Object.keys(entrypoints).join(", ") || "none"})`,
    );
  }
  policy.setData(bundle.data as object);
  return createWasmEvaluator(policy, entrypoint);
}

/**
 * Loads the policy bundle and returns an engine that evaluates it in-process
 * with @open-policy-agent/opa-wasm. Never rejects because of the bundle: a
 * missing or invalid bundle gives an engine that denies everything with a
 * clear reason until a valid bundle appears (the watcher picks it up).
 *
 * A changed bundle file is loaded in the background and swapped in atomically;
 * an invalid one is rejected (logged, counted, reported to onReload) and the
 * last good bundle stays in use. Write new bundles atomically (write a temp
 * file, then rename) so a half-written file is never seen.
 *
 * @example
 * const engine = await createPolicyEngine({ bundlePath: "policies/build/bundle.tar.gz", logger });
 * const decision = engine.decide(input);
 * if (!decision.allow) throw new ConnectError(decision.denyReasons.join("; "), Code.PermissionDenied);
 */
export async function createPolicyEngine(options: PolicyEngineOptions): Promise<PolicyEngine> {
  const { bundlePath, logger } = options;
  const entrypoint = options.entrypoint ?? DEFAULT_ENTRYPOINT;
  const pollIntervalMs = options.pollIntervalMs ?? 2000;
  let active: Active | undefined;
  let lastError = "the policy bundle has not been loaded yet";
  let lastStatKey = "";
  let closed = false;
  let inFlight: Promise<boolean> | undefined;
  const counters = { loads: 0, loadFailures: 0, decisions: 0, evaluationErrors: 0 };

  function report(result: ReloadResult): void {
    try {
      options.onReload?.(result);
    } catch (err) {
      logger.error({ err }, "policy onReload callback threw");
    }
  }

  async function loadOnce(): Promise<boolean> {
    try {
      const st = await stat(bundlePath).catch(() => undefined);
      lastStatKey = st ? `${st.ino}:${st.size}:${st.mtimeMs}` : "";
      const bundle = await readBundle(bundlePath);
      if (active && bundle.sha256 === active.sha256) return true;
      if (options.expectedRevision !== undefined && bundle.revision !== options.expectedRevision) {
        throw new Error(
          `the bundle has revision ${bundle.revision}, expected ${options.expectedRevision}`,
        );
      }
      const evaluate = await instantiate(bundle, entrypoint);
      const previous = active?.revision ?? "";
      active = {
        evaluate,
        revision: bundle.revision,
        sha256: bundle.sha256,
        data: deepFreeze(bundle.data),
        results: new Map(),
      };
      counters.loads++;
      logger.info({ revision: bundle.revision, previous, bundlePath }, "policy bundle loaded");
      report({ ok: true, revision: bundle.revision });
      return true;
    } catch (err) {
      counters.loadFailures++;
      lastError = message(err);
      const kept = active?.revision ?? "";
      logger.error(
        { err, bundlePath, keptRevision: kept },
        active
          ? "policy bundle rejected; keeping the last good bundle"
          : "policy bundle could not be loaded; denying every request",
      );
      report({ ok: false, revision: kept, error: lastError });
      return false;
    }
  }

  function reload(): Promise<boolean> {
    // Serialize loads: a reload requested during another waits for it, then runs.
    const run = (inFlight ?? Promise.resolve(true)).then(loadOnce, loadOnce);
    inFlight = run;
    void run.finally(() => {
      if (inFlight === run) inFlight = undefined;
    });
    return run;
  }

  async function poll(): Promise<void> {
    if (closed || inFlight) return;
    const st = await stat(bundlePath).catch(() => undefined);
    const key = st ? `${st.ino}:${st.size}:${st.mtimeMs}` : "";
    if (key !== lastStatKey && key !== "") await reload();
    else lastStatKey = key;
  }

  await reload();

  const timer =
    pollIntervalMs > 0
      ? setInterval(() => {
          poll().catch((err: unknown) => logger.error({ err }, "policy bundle poll failed"));
        }, pollIntervalMs)
      : undefined;
  timer?.unref();

  function decide(input: PolicyInput): Decision {
    counters.decisions++;
    const current = active;
    if (!current) {
      return denyDecision(
        `policy unavailable, denying by default: ${lastError} (bundle ${bundlePath})`,
        "",
      );
    }
    try {
      return decisionFor(current, current.evaluate(input));
    } catch (err) {
      counters.evaluationErrors++;
      const why = message(err);
      logger.error({ err: why, revision: current.revision }, "policy evaluation failed; denying");
      return denyDecision(`policy evaluation failed, denying by default: ${why}`, current.revision);
    }
  }

  return {
    decide,
    revision: () => active?.revision ?? "",
    data: () => active?.data,
    reload,
    stats: () => ({ revision: active?.revision ?? "", ...counters }),
    close() {
      closed = true;
      if (timer) clearInterval(timer);
    },
  };
}
