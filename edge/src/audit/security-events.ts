import { AsyncLocalStorage } from "node:async_hooks";
import { decodeJwt } from "jose";
import type { Logger } from "pino";
import type { AuditEntry, PrincipalRecord } from "../store/types.js";

/**
 * Refusals: frequent under attack, so bounded and aggregated. The audit
 * operation is `security.<kind>`.
 */
export type RefusalKind =
  /** Authentication failed (any door). */
  | "auth_failed"
  /** A principal exceeded its rate limit. */
  | "rate_limited"
  /** A browser Origin was not allowed (CORS preflight or the MCP endpoint). */
  | "origin_refused"
  /** An mTLS peer's identity was not allowed (runner or registry port). */
  | "mtls_refused";

/**
 * Lifecycle events: rare by nature, always recorded one by one. The audit
 * operation is `security.<kind>`.
 */
export type LifecycleKind =
  | "policy_loaded"
  | "policy_load_failed"
  | "audit_key_rotated"
  | "config_reloaded"
  | "config_reload_failed"
  | "tools_changed";

/** A refusal to record. */
export interface Refusal {
  kind: RefusalKind;
  /** Who was refused, as far as known: peer address, certificate identity. The aggregation key. */
  source: string;
  /** Short machine reason (e.g. the AuthError code). */
  reason: string;
  /** The principal, when it was authenticated (rate limits). */
  principal?: PrincipalRecord | null;
  /** Facts safe to keep (never a token or secret). */
  details?: Record<string, unknown>;
}

/** Options for {@link createSecurityEvents}. */
export interface SecurityEventsOptions {
  /** Appends one record to the chain. */
  append: (entry: AuditEntry) => Promise<unknown>;
  /** Aggregation window, ms. */
  windowMs: number;
  /** Refusals of one kind from one source recorded one by one per window. */
  perSource: number;
  /** Refusals recorded one by one per window in total. */
  maxRecords: number;
  /** Sources counted separately per window; more are counted under source "*". */
  maxSources: number;
  /** Edge id, in every record's details. */
  edgeId: string;
  logger: Logger;
  /** Current policy revision, for the records' policyRevision. */
  policyRevision?: () => string;
}

/** Records security events in the audit chain, with refusals bounded per window. */
export interface SecurityEvents {
  /**
   * Records a refusal: the first `perSource` per kind and source and at most
   * `maxRecords` per window one by one, the rest as counts in one
   * `security.aggregated` record per kind and source at the end of the window.
   * Never throws and never waits for the store.
   */
  refused(refusal: Refusal): void;
  /** Records a lifecycle event one by one; resolves when it is in the chain. */
  lifecycle(
    kind: LifecycleKind,
    outcome: string,
    details: Record<string, unknown>,
    principal?: PrincipalRecord | null,
  ): Promise<void>;
  /** Writes the pending aggregates now (end of window, shutdown). */
  flush(): Promise<void>;
  /** Flushes and stops the window timer. */
  close(): Promise<void>;
}

/** Per kind and source, within one window. */
interface Bucket {
  kind: RefusalKind;
  source: string;
  recorded: number;
  suppressed: number;
  reasons: Record<string, number>;
  first: number;
  last: number;
}

/** Longest string kept from an unverified token claim or a header. */
const MAX_FACT = 256;

/** A string fact clipped to {@link MAX_FACT} characters. */
export function clip(value: string): string {
  return value.length > MAX_FACT ? `${value.slice(0, MAX_FACT)}…` : value;
}

/**
 * The token's claimed `sub` and `iss` for the record of a failed
 * authentication, when the token parses as a JWT — unverified (that is why it
 * failed), clipped, never the token itself.
 */
export function claimedIdentity(authorization: string | null): Record<string, string> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
  if (!m?.[1] || m[1].length > 16 * 1024) return {};
  try {
    const claims = decodeJwt(m[1]);
    const out: Record<string, string> = {};
    if (typeof claims.sub === "string") out.claimedSub = clip(claims.sub);
    if (typeof claims.iss === "string") out.claimedIss = clip(claims.iss);
    return out;
  } catch {
    return {};
  }
}

/**
 * Creates the security event recorder. Refusals go to the chain without
 * delaying the refused request; at most `maxRecords` individual records plus
 * one aggregate per (kind, source) — at most `maxSources + 1` per kind — are
 * written per window, however many refusals arrive, so a flood cannot exhaust
 * the disk or the store's write rate, and the counts still add up.
 *
 * @example
 * const security = createSecurityEvents({ append: (e) => pipeline.audit(e), windowMs: 10_000, perSource: 3, maxRecords: 100, maxSources: 100, edgeId, logger });
 * security.refused({ kind: "auth_failed", source: peer, reason: "expired" });
 */
export function createSecurityEvents(options: SecurityEventsOptions): SecurityEvents {
  const { logger } = options;
  let buckets = new Map<string, Bucket>();
  let windowStart = Date.now();
  let recordedInWindow = 0;
  const pending = new Set<Promise<unknown>>();

  function entry(
    operation: string,
    decision: AuditEntry["decision"],
    outcome: string,
    reasons: string[],
    details: Record<string, unknown>,
    principal: PrincipalRecord | null,
  ): AuditEntry {
    return {
      time: Date.now(),
      traceId: "",
      principal,
      operation,
      params: {},
      decision,
      reasons,
      policyRevision: options.policyRevision?.() ?? "",
      taskId: "",
      runnerId: "",
      outcome,
      details: { edge: options.edgeId, ...details },
    };
  }

  function write(e: AuditEntry): Promise<void> {
    const p = options.append(e).then(
      () => undefined,
      (err: unknown) => {
        logger.error({ err: String(err), operation: e.operation }, "security event not recorded");
      },
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
    return p;
  }

  async function flush(): Promise<void> {
    const done = buckets;
    const start = windowStart;
    buckets = new Map();
    windowStart = Date.now();
    recordedInWindow = 0;
    for (const b of done.values()) {
      if (b.suppressed === 0) continue;
      void write(
        entry(
          "security.aggregated",
          "deny",
          "aggregated",
          Object.keys(b.reasons),
          {
            kind: b.kind,
            source: b.source,
            count: b.suppressed,
            recordedIndividually: b.recorded,
            reasons: b.reasons,
            windowStart: start,
            windowEnd: windowStart,
            firstAt: b.first,
            lastAt: b.last,
          },
          null,
        ),
      );
    }
    await Promise.all([...pending]);
  }

  const timer = setInterval(() => {
    void flush();
  }, options.windowMs);
  timer.unref();

  return {
    refused(r) {
      const now = Date.now();
      let key = `${r.kind}\n${r.source}`;
      let bucket = buckets.get(key);
      if (!bucket) {
        const sources = buckets.size;
        if (sources >= options.maxSources) key = `${r.kind}\n*`;
        bucket = buckets.get(key);
        if (!bucket) {
          bucket = {
            kind: r.kind,
            source: sources >= options.maxSources ? "*" : r.source,
            recorded: 0,
            suppressed: 0,
            reasons: {},
            first: now,
            last: now,
          };
          buckets.set(key, bucket);
        }
      }
      bucket.last = now;
      if (bucket.recorded < options.perSource && recordedInWindow < options.maxRecords) {
        bucket.recorded++;
        recordedInWindow++;
        void write(
          entry(
            `security.${r.kind}`,
            "deny",
            "refused",
            [r.reason],
            { source: r.source, ...r.details },
            r.principal ?? null,
          ),
        );
        return;
      }
      bucket.suppressed++;
      bucket.reasons[r.reason] = (bucket.reasons[r.reason] ?? 0) + 1;
    },
    lifecycle(kind, outcome, details, principal = null) {
      return write(entry(`security.${kind}`, "none", outcome, [], details, principal));
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}

/** Facts about the current request that refusal hooks read (set once per request by the listener). */
export interface RequestFacts {
  /** Peer address. */
  peer: string;
}

/**
 * The current request's facts, so hooks deep in a door (the authenticator
 * wrapper, the rate limiter) know who is being refused without every door
 * passing it along.
 */
export const requestFacts = new AsyncLocalStorage<RequestFacts>();
