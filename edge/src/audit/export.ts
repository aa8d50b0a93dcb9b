import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { writeTempFile } from "@mcp-gateway/common/fs-atomic";
import type { Logger } from "pino";
import type { AuditRecord } from "../store/types.js";

/** Where exported records go. `deliver` resolves only once the batch is stored by the receiver. */
export interface AuditExportSink {
  /** For logs: "file:<path>", "stdout", "otlp:<url>". */
  name: string;
  deliver(records: readonly AuditRecord[]): Promise<void>;
}

/** JSON lines appended to a file, fsync'ed before the batch counts as delivered. */
export function fileExportSink(path: string): AuditExportSink {
  return {
    name: `file:${path}`,
    async deliver(records) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const handle = await open(path, "a", 0o600);
      try {
        await handle.write(records.map((r) => `${JSON.stringify(r)}\n`).join(""));
        await handle.sync();
      } finally {
        await handle.close();
      }
    },
  };
}

/** JSON lines to a stream (stdout for `audit export --follow` or a log shipper). */
export function streamExportSink(out: NodeJS.WritableStream = process.stdout): AuditExportSink {
  return {
    name: "stdout",
    async deliver(records) {
      const text = records.map((r) => `${JSON.stringify(r)}\n`).join("");
      if (!out.write(text)) await new Promise((r) => out.once("drain", r));
    },
  };
}

/** Options for {@link otlpExportSink}. */
export interface OtlpExportOptions {
  /** OTLP/HTTP base URL (e.g. http://collector:4318); `/v1/logs` is appended. */
  endpoint: string;
  headers?: Record<string, string>;
  /** resource service.name (default mcp-edge). */
  serviceName?: string;
  /** resource service.instance.id. */
  instanceId?: string;
  /** Per-request timeout, ms (default 10 000). */
  timeoutMs?: number;
}

type OtlpValue = { stringValue: string } | { intValue: string };
const attr = (key: string, value: string | number): { key: string; value: OtlpValue } => ({
  key,
  value: typeof value === "number" ? { intValue: String(value) } : { stringValue: value },
});

/**
 * OpenTelemetry logs over OTLP/HTTP (JSON encoding): one log record per audit
 * record, the whole record as JSON in the body, seq/operation/decision/
 * principal/hash as attributes; denials at WARN. A non-2xx answer fails the batch.
 */
export function otlpExportSink(options: OtlpExportOptions): AuditExportSink {
  const url = `${options.endpoint.replace(/\/+$/, "")}/v1/logs`;
  const resource = {
    attributes: [
      attr("service.name", options.serviceName ?? "mcp-edge"),
      ...(options.instanceId ? [attr("service.instance.id", options.instanceId)] : []),
    ],
  };
  return {
    name: `otlp:${url}`,
    async deliver(records) {
      const now = `${BigInt(Date.now()) * 1_000_000n}`;
      const logRecords = records.map((r) => ({
        timeUnixNano: `${BigInt(r.time) * 1_000_000n}`,
        observedTimeUnixNano: now,
        severityNumber: r.decision === "deny" ? 13 : 9,
        severityText: r.decision === "deny" ? "WARN" : "INFO",
        body: { stringValue: JSON.stringify(r) },
        attributes: [
          attr("audit.seq", r.seq),
          attr("audit.operation", r.operation),
          attr("audit.decision", r.decision),
          attr("audit.outcome", r.outcome),
          attr("audit.hash", r.hash),
          attr("enduser.id", r.principal?.sub ?? ""),
        ],
        ...(/^[0-9a-f]{32}$/.test(r.traceId) ? { traceId: r.traceId } : {}),
      }));
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...options.headers },
        body: JSON.stringify({
          resourceLogs: [
            { resource, scopeLogs: [{ scope: { name: "mcp-gateway.audit" }, logRecords }] },
          ],
        }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`OTLP collector answered ${res.status}`);
    },
  };
}

/** Reads the last delivered seq from a position file (0 when absent). */
export async function readExportPosition(path: string): Promise<number> {
  const text = await readFile(path, "utf8").catch(() => "");
  if (text === "") return 0;
  const seq = (JSON.parse(text) as { seq?: unknown }).seq;
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) {
    throw new Error(`export position file ${path} is damaged: ${text.slice(0, 100)}`);
  }
  return seq as number;
}

async function writeExportPosition(path: string, seq: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = await writeTempFile(path, `${JSON.stringify({ seq })}\n`, 0o600);
  await rename(tmp, path);
}

/** Options for {@link createAuditExporter}. */
export interface AuditExporterOptions {
  /** Records with seq > afterSeq in chain order, at most limit (store.listAudit). */
  list: (afterSeq: number, limit: number) => Promise<AuditRecord[]>;
  sink: AuditExportSink;
  /** Resume position: last delivered seq, rewritten atomically after each delivered batch. */
  positionFile?: string;
  /** Start after this seq when there is no position file (default 0: the whole chain). */
  startAfter?: number;
  /** Records per batch (default 500). */
  batchSize?: number;
  /** How often to look for new records without a wake-up, ms (default 1000). */
  pollMs?: number;
  /** First retry delay after a failed delivery, ms; doubles up to 30 s (default 500). */
  retryMs?: number;
  logger: Logger;
}

/** A running exporter. */
export interface AuditExporter {
  /** Last delivered seq. */
  position(): number;
  /** Looks for new records now (called after each local append). */
  wake(): void;
  /** Resolves once every record up to `seq` was delivered (tests, shutdown). */
  until(seq: number): Promise<void>;
  /** Stops after the batch in flight; the position file stays at the last delivered batch. */
  close(): Promise<void>;
}

/**
 * Streams audit records to a sink as they are appended, at least once: a
 * batch counts as delivered only when the sink resolved, and only then is the
 * position written; a failed batch is retried with backoff, and after a
 * restart delivery resumes after the stored position (a batch delivered but
 * not yet recorded is delivered again — consumers dedupe by seq).
 *
 * @example
 * const exporter = await createAuditExporter({ list: (a, n) => store.listAudit({ afterSeq: a, limit: n }), sink: fileExportSink("audit.jsonl"), positionFile: "audit.pos", logger });
 */
export async function createAuditExporter(options: AuditExporterOptions): Promise<AuditExporter> {
  const { logger, sink } = options;
  const batchSize = options.batchSize ?? 500;
  let delivered = options.positionFile ? await readExportPosition(options.positionFile) : 0;
  if (delivered === 0) delivered = options.startAfter ?? 0;
  let closed = false;
  let wakeUp: (() => void) | undefined;
  const waiters: { seq: number; resolve: () => void }[] = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  async function loop(): Promise<void> {
    let retry = options.retryMs ?? 500;
    while (!closed) {
      let batch: AuditRecord[];
      try {
        batch = await options.list(delivered, batchSize);
      } catch (err) {
        logger.warn({ err: String(err), sink: sink.name }, "audit export: cannot read the store");
        await sleep(retry);
        continue;
      }
      if (batch.length === 0) {
        await sleep(options.pollMs ?? 1000);
        continue;
      }
      try {
        await sink.deliver(batch);
      } catch (err) {
        logger.warn(
          { err: String(err), sink: sink.name, from: batch[0]?.seq, retryMs: retry },
          "audit export: delivery failed; retrying",
        );
        await sleep(retry);
        retry = Math.min(retry * 2, 30_000);
        continue;
      }
      retry = options.retryMs ?? 500;
      delivered = batch[batch.length - 1]?.seq ?? delivered;
      if (options.positionFile) await writeExportPosition(options.positionFile, delivered);
      for (const w of waiters.splice(0)) {
        if (w.seq <= delivered) w.resolve();
        else waiters.push(w);
      }
    }
  }
  const running = loop().catch((err: unknown) =>
    logger.error({ err: String(err), sink: sink.name }, "audit export stopped"),
  );

  return {
    position: () => delivered,
    wake: () => wakeUp?.(),
    until(seq) {
      if (seq <= delivered) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ seq, resolve }));
    },
    async close() {
      closed = true;
      wakeUp?.();
      await running;
    },
  };
}
