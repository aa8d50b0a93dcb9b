import { createHash } from "node:crypto";
import { join } from "node:path";
import type { ReloadResult } from "@mcp-gateway/common/policy";
import type { PeerRefusal } from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import type { EdgeConfig } from "../config.js";
import { gatewayToolDefinitions } from "../mcp/tools.js";
import type { AuditEntry, AuditRecord, PrincipalRecord, TaskStore } from "../store/types.js";
import { canonicalJson } from "./chain.js";
import {
  type Checkpointer,
  type CheckpointSink,
  createCheckpointer,
  defaultCheckpointFile,
  defaultCheckpointKeyPath,
  fileCheckpointSink,
  loadCheckpointSigner,
  streamCheckpointSink,
  webhookCheckpointSink,
} from "./checkpoints.js";
import {
  type AuditExporter,
  type AuditExportSink,
  createAuditExporter,
  fileExportSink,
  otlpExportSink,
  streamExportSink,
} from "./export.js";
import {
  claimedIdentity,
  clip,
  createSecurityEvents,
  requestFacts,
  type SecurityEvents,
} from "./security-events.js";

/** Options for {@link createAuditTrail}. */
export interface AuditTrailOptions {
  config: EdgeConfig;
  store: TaskStore;
  /** Id of the key that signs new records. */
  signingKeyId: string;
  logger: Logger;
}

/**
 * Everything around the chain that the edge wires in one place: security
 * events (bounded refusals and lifecycle events), signed checkpoints outside
 * the store and live export. The hooks are plain functions so the doors only
 * call them.
 */
export interface AuditTrail {
  security: SecurityEvents;
  /** Pass as PipelineOptions.onAppend: every record this edge appends. */
  appended(record: AuditRecord): void;
  /** Wraps an authenticator so failures are recorded (reason, claimed sub/iss, peer). */
  recordAuthFailures<A extends (authorization: string | null) => Promise<PrincipalRecord>>(
    authenticate: A,
  ): A;
  /** Wraps a rate limiter so refusals are recorded (principal, peer). */
  recordRateLimits(take: (principal: PrincipalRecord) => number): (p: PrincipalRecord) => number;
  /** A refused browser Origin (CORS preflight or the MCP endpoint). */
  originRefused(origin: string, peer: string): void;
  /** A refused mTLS client (registry port). */
  mtlsRefused(peer: string, identities: readonly string[], reason: string): void;
  /**
   * Records the connections a runner refused at its own port (it keeps no chain), as
   * reported with its heartbeat or an Info probe: one refusal per report entry, with the
   * runner's count.
   */
  runnerRefusals(runnerId: string, refusals: readonly PeerRefusal[]): void;
  /** Pass from PolicyEngineOptions.onReload. */
  policyReloaded(result: ReloadResult): void;
  /** A configuration part reloaded (e.g. "runnerTls"), or failed to. */
  configReloaded(what: string, error?: unknown, details?: Record<string, unknown>): void;
  /** Checkpoint now (tests, shutdown). */
  checkpoint(): Promise<void>;
  /** Exporters, for tests. */
  exporters: readonly AuditExporter[];
  /** Final aggregates and checkpoint, exporters stopped. Call before the store closes. */
  close(): Promise<void>;
}

/**
 * Creates the edge's audit trail services from the `audit` configuration and
 * records what changed since the last start (audit key rotation, MCP tool
 * definitions).
 *
 * @example
 * const trail = await createAuditTrail({ config, store, signingKeyId: keys[0].id, logger });
 * const pipeline = createPipeline({ ..., onAppend: trail.appended });
 */
export async function createAuditTrail(options: AuditTrailOptions): Promise<AuditTrail> {
  const { config, store, logger } = options;
  const log = logger.child({ component: "audit" });
  const audit = config.audit;
  let checkpointer: Checkpointer | undefined;
  const exporters: AuditExporter[] = [];
  const appended = (record: AuditRecord) => {
    checkpointer?.appended(record);
    for (const e of exporters) e.wake();
  };
  const append = async (entry: AuditEntry) => {
    const record = await store.appendAudit(entry);
    appended(record);
    return record;
  };
  const security = createSecurityEvents({
    append,
    windowMs: audit.securityEvents.windowMs,
    perSource: audit.securityEvents.perSource,
    maxRecords: audit.securityEvents.maxRecords,
    maxSources: audit.securityEvents.maxSources,
    edgeId: config.id,
    logger: log,
  });

  // Checkpoints: a separate Ed25519 key; sinks outside the store.
  const cp = audit.checkpoints;
  const signer = await loadCheckpointSigner(
    cp.keyFile ?? defaultCheckpointKeyPath(config.dataDir),
    cp.keyFile === undefined,
  );
  const sinks: CheckpointSink[] = [];
  const file = cp.file ?? defaultCheckpointFile(config.dataDir);
  if (file !== "") sinks.push(fileCheckpointSink(file));
  if (cp.stdout) sinks.push(streamCheckpointSink());
  if (cp.webhook) {
    sinks.push(
      webhookCheckpointSink({
        url: cp.webhook.url,
        method: cp.webhook.method,
        headers: cp.webhook.headers,
      }),
    );
  }
  if (sinks.length > 0) {
    checkpointer = createCheckpointer({
      signer,
      edgeId: config.id,
      sinks,
      head: () => store.auditHead(),
      everyRecords: cp.everyRecords,
      everyMs: cp.everyMs,
      logger: log,
    });
  }
  log.info(
    { checkpointKeyId: signer.keyId, sinks: sinks.map((s) => s.name) },
    "audit checkpoints signed (Ed25519)",
  );

  // Live export.
  for (const [i, target] of audit.export.entries()) {
    let sink: AuditExportSink;
    if (target.type === "file") {
      if (!target.path) throw new Error(`audit.export[${i}]: type file needs a path`);
      sink = fileExportSink(target.path);
    } else if (target.type === "stdout") {
      sink = streamExportSink();
    } else {
      if (!target.endpoint) throw new Error(`audit.export[${i}]: type otlp needs an endpoint`);
      sink = otlpExportSink({
        endpoint: target.endpoint,
        headers: target.headers,
        instanceId: config.id,
      });
    }
    exporters.push(
      await createAuditExporter({
        list: (afterSeq, limit) => store.listAudit({ afterSeq, limit }),
        sink,
        positionFile: target.positionFile ?? join(config.dataDir, "audit", `export-${i}.pos`),
        logger: log,
      }),
    );
  }

  // What changed since the last record: the signing key, the MCP tools.
  const head = await store.auditHead();
  if (head.seq > 0) {
    const [last] = await store.listAudit({ afterSeq: head.seq - 1, limit: 1 });
    if (last && last.keyId !== options.signingKeyId) {
      await security.lifecycle("audit_key_rotated", "rotated", {
        previousKeyId: last.keyId ?? "",
        keyId: options.signingKeyId,
        previousKeyLastSeenSeq: last.seq,
      });
    }
  }
  if (config.mcp.enabled) {
    const tools = [...gatewayToolDefinitions().values()];
    const digest = createHash("sha256").update(canonicalJson(tools)).digest("hex");
    const previous = await lastDetails(store, "security.tools_changed");
    if (previous?.digest !== digest) {
      await security.lifecycle("tools_changed", "published", {
        digest,
        previousDigest: previous?.digest ?? "",
        tools: tools.map((t) => (t as { name: string }).name),
      });
    }
  }

  const peer = () => requestFacts.getStore()?.peer ?? "";
  return {
    security,
    appended,
    exporters,
    recordAuthFailures(authenticate) {
      const wrapped = async (authorization: string | null) => {
        try {
          return await authenticate(authorization);
        } catch (err) {
          const source = peer();
          security.refused({
            kind: "auth_failed",
            source,
            reason: String((err as { code?: unknown }).code ?? "unknown"),
            details: claimedIdentity(authorization),
          });
          throw err;
        }
      };
      return wrapped as typeof authenticate;
    },
    recordRateLimits(take) {
      return (p) => {
        const waitMs = take(p);
        if (waitMs > 0) {
          security.refused({
            kind: "rate_limited",
            source: `${p.tenant}/${p.sub}`,
            reason: "rate_limited",
            principal: p,
            details: { peer: peer(), waitMs },
          });
        }
        return waitMs;
      };
    },
    originRefused(origin, from) {
      security.refused({
        kind: "origin_refused",
        source: from || peer(),
        reason: "origin_not_allowed",
        details: { origin: clip(origin) },
      });
    },
    mtlsRefused(from, identities, reason) {
      security.refused({
        kind: "mtls_refused",
        source: identities[0] ?? from,
        reason,
        details: { port: "registry", peer: from, identities: identities.slice(0, 8).map(clip) },
      });
    },
    runnerRefusals(runnerId, refusals) {
      for (const r of refusals.slice(0, 256)) {
        security.refused({
          kind: "mtls_refused",
          source: r.identities[0] ?? r.peer,
          reason: r.reason,
          details: {
            port: "runner",
            runner: clip(runnerId),
            peer: clip(r.peer),
            identities: r.identities.slice(0, 8).map(clip),
            count: r.count,
            firstMs: Number(r.firstMs),
            lastMs: Number(r.lastMs),
          },
        });
      }
    },
    policyReloaded(r) {
      void security.lifecycle(
        r.ok ? "policy_loaded" : "policy_load_failed",
        r.ok ? "loaded" : "failed",
        { revision: r.revision, ...(r.error ? { error: clip(r.error) } : {}) },
      );
    },
    configReloaded(what, error, details = {}) {
      void security.lifecycle(
        error === undefined ? "config_reloaded" : "config_reload_failed",
        error === undefined ? "reloaded" : "failed",
        { what, ...details, ...(error === undefined ? {} : { error: clip(String(error)) }) },
      );
    },
    async checkpoint() {
      await checkpointer?.flush();
    },
    async close() {
      await security.close();
      // Give exporters a moment to deliver the tail; what is left resumes from the position file.
      const { seq } = await store.auditHead();
      await Promise.race([
        Promise.all(exporters.map((e) => e.until(seq))),
        new Promise((r) => setTimeout(r, 2000).unref()),
      ]);
      await checkpointer?.close();
      await Promise.all(exporters.map((e) => e.close()));
    },
  };
}

/** The details of the last record of an operation (a scan; used once at start). */
async function lastDetails(
  store: TaskStore,
  operation: string,
): Promise<Record<string, unknown> | undefined> {
  let afterSeq = 0;
  let last: AuditRecord | undefined;
  for (;;) {
    const page = await store.listAudit({ afterSeq, operation, limit: 1000 });
    if (page.length > 0) last = page[page.length - 1];
    if (page.length < 1000) return last?.details;
    afterSeq = last?.seq ?? afterSeq;
  }
}
