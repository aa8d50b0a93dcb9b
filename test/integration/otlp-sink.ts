/**
 * Trace spans as the gateway's processes export them, received in the test or benchmark process
 * (test/integration/tracing.test.ts, test/bench/timeline.ts).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** One span as received. Times are epoch milliseconds. */
export interface SinkSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  /** "" for a trace's root span. */
  parentSpanId: string;
  /** Trace ids of the span's links. */
  links: string[];
  start: number;
  end: number;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpBody {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: OtlpValue }[] };
    scopeSpans?: {
      spans?: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        links?: { traceId: string }[];
        name: string;
        startTimeUnixNano: string;
        endTimeUnixNano: string;
        attributes?: { key: string; value: OtlpValue }[];
      }[];
    }[];
  }[];
}

const otlpValue = (v: OtlpValue): unknown =>
  v.stringValue ??
  v.boolValue ??
  v.doubleValue ??
  (v.intValue === undefined ? undefined : Number(v.intValue));
const ms = (nanos: string) => Number(BigInt(nanos) / 1000n) / 1000;

/**
 * A real OTLP/HTTP receiver on 127.0.0.1 (an ephemeral port) for what the edge's and runner's
 * exporters send (JSON encoding); point OTEL_EXPORTER_OTLP_TRACES_ENDPOINT at `endpoint`.
 */
export async function startSpanSink(): Promise<{
  endpoint: string;
  spans: SinkSpan[];
  /**
   * Resolves once every task id has its runner's `task.run` and its edge's `task.dispatch` span,
   * plus a second for the other spans of the edge's batches (or after `timeoutMs`).
   */
  settle(taskIds: readonly string[], timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}> {
  const spans: SinkSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as OtlpBody;
        for (const rs of body.resourceSpans ?? []) {
          const service = String(
            otlpValue(
              rs.resource?.attributes?.find((a) => a.key === "service.name")?.value ?? {},
            ) ?? "",
          );
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const attributes: Record<string, unknown> = {};
              for (const a of s.attributes ?? []) attributes[a.key] = otlpValue(a.value);
              spans.push({
                service,
                name: s.name,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? "",
                links: (s.links ?? []).map((l) => l.traceId),
                start: ms(s.startTimeUnixNano),
                end: ms(s.endTimeUnixNano),
                attributes,
              });
            }
          }
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch {
        // Only the JSON encoding is understood: say so, so that a misconfiguration shows.
        res.writeHead(400, { "content-type": "text/plain" }).end("OTLP/HTTP JSON expected");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    async settle(taskIds, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const seen = (name: string) =>
          new Set(spans.filter((s) => s.name === name).map((s) => s.attributes["mcp.task_id"]));
        const ran = seen("task.run");
        const dispatched = seen("task.dispatch");
        if (taskIds.every((id) => ran.has(id) && dispatched.has(id))) {
          await new Promise((r) => setTimeout(r, 1000));
          return;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
