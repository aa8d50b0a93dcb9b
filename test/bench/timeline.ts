/**
 * Where a sequential task's time goes, from the gateway's own trace spans (issue 13): a small
 * OTLP/HTTP JSON receiver on loopback that the edge and runner export to (otlp-sink.ts), and a table of each
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
import type { SinkSpan } from "../integration/otlp-sink.js";

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
  for (const s of spans) {
    const trace = byTrace.get(s.traceId);
    if (trace) trace.push(s);
    else byTrace.set(s.traceId, [s]);
  }
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
