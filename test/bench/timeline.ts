/**
 * Where a sequential task's time goes, from the gateway's own trace spans (issue 13): a small
 * OTLP/HTTP JSON receiver on loopback that the edge and runner export to, and a table of each
 * step's start and end relative to the client's call, p50 over the runs.
 *
 *   const sink = await startSpanSink();   // before the gateway starts:
 *   process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = sink.endpoint;
 *   …                                      // runs, each recorded as a TimelineRun
 *   await sink.settle(taskIds);            // the exporters batch: wait for the spans
 *   for (const line of timelineTable(sink.spans, runs)) console.log(line);
 *
 * Recording and exporting spans costs the gateway some CPU: a run with the sink measures a
 * little slower than one without.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** One span as received. Times are epoch milliseconds. */
export interface SinkSpan {
  service: string;
  name: string;
  traceId: string;
  start: number;
  end: number;
  attributes: Record<string, unknown>;
}

/** One sequential gateway run of the benchmark. */
export interface TimelineRun {
  taskId: string;
  /** Epoch ms at which the client started ExecuteCommand. */
  at: number;
  /** ms until the client had ExecuteCommand's answer. */
  exec: number;
  /** ms until the client had the EXIT message. */
  total: number;
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

/** Receives OTLP/HTTP JSON trace exports on 127.0.0.1 (an ephemeral port). */
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

const p50 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? Number.NaN;
};

/**
 * Markdown lines: every step of the runs' traces (ExecuteCommand's, which the runner's spans
 * join, and the StreamTaskOutput call that followed it), with the client's own two moments,
 * ordered by when they start.
 */
export function timelineTable(spans: readonly SinkSpan[], runs: readonly TimelineRun[]): string[] {
  const byTrace = new Map<string, SinkSpan[]>();
  for (const s of spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
  const streams = spans
    .filter((s) => s.name.endsWith("/StreamTaskOutput"))
    .sort((a, b) => a.start - b.start);
  const steps = new Map<string, { starts: number[]; ends: number[]; durations: number[] }>();
  const add = (step: string, start: number, end: number) => {
    const e = steps.get(step) ?? { starts: [], ends: [], durations: [] };
    e.starts.push(start);
    e.ends.push(end);
    e.durations.push(end - start);
    steps.set(step, e);
  };
  let matched = 0;
  for (const run of runs) {
    const own = spans.find((s) => s.attributes["mcp.task_id"] === run.taskId);
    const trace = own ? byTrace.get(own.traceId) : undefined;
    if (!trace) continue;
    matched++;
    for (const s of trace) add(`${s.service} ${s.name}`, s.start - run.at, s.end - run.at);
    // The client's StreamTaskOutput: the first one after its ExecuteCommand (runs are sequential).
    const stream = streams.find(
      (s) => s.start >= run.at + run.exec - 1 && s.start <= run.at + run.total,
    );
    if (stream) {
      for (const s of byTrace.get(stream.traceId) ?? []) {
        if (s !== stream) add(`${s.service} ${s.name} (stream)`, s.start - run.at, s.end - run.at);
      }
      add(`${stream.service} ${stream.name}`, stream.start - run.at, stream.end - run.at);
    }
    add("client: ExecuteCommand answered", run.exec, run.exec);
    add("client: EXIT received", run.total, run.total);
  }
  const rows = [...steps.entries()]
    .map(([step, e]) => ({
      step,
      n: e.starts.length,
      start: p50(e.starts),
      end: p50(e.ends),
      duration: p50(e.durations),
    }))
    .sort((a, b) => a.start - b.start || a.end - b.end);
  const f = (x: number) => x.toFixed(2);
  return [
    `${matched} of ${runs.length} runs found in the spans; ms after the client started ExecuteCommand, p50 of each column separately`,
    "",
    "| step | runs | starts | ends | p50 duration |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${r.step} | ${r.n} | ${r.duration === 0 ? "" : f(r.start)} | ${f(r.end)} | ${r.duration === 0 ? "" : f(r.duration)} |`,
    ),
  ];
}
