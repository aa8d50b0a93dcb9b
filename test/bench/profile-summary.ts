/**
 * Summarizes V8 CPU profiles (`.cpuprofile`, as `BENCH_CPU_PROF=dir npm run bench:e2e` writes
 * for the edge and the runner): for each file, its busy time split by what the time was spent
 * in (self time, grouped by module), and the functions with the most self time.
 *
 *   node --import tsx test/bench/profile-summary.ts DIR_OR_FILE... [--top N]
 *
 * "Busy" excludes V8's `(idle)`; `(program)` is native code outside JS (libuv, system calls
 * made by Node itself) and `(garbage collector)` is GC.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** What a frame belongs to, from its script URL (first match wins). */
const GROUPS: [string, RegExp][] = [
  ["SQLite (better-sqlite3 and the store)", /better-sqlite3|\/store\/(sqlite|postgres)/],
  ["audit sealing (JCS, HMAC)", /\/audit\/|canonical/],
  ["policy (OPA wasm)", /\/policy\/|opa-wasm|wasm:\/\//],
  ["Connect (@connectrpc)", /@connectrpc\//],
  ["protobuf (@bufbuild)", /@bufbuild\//],
  ["gRPC link (lean-grpc) and HTTP/2", /lean-grpc|node:internal\/http2|node:http2/],
  ["Node HTTP/1.1", /node:_http|node:http$|node:internal\/http/],
  ["TLS and crypto", /node:_tls|node:tls|node:internal\/tls|node:internal\/crypto|node:crypto/],
  ["net and streams", /node:net|node:internal\/streams|node:stream|node:internal\/webstreams/],
  ["tracing (@opentelemetry)", /@opentelemetry\//],
  ["logging (pino)", /pino|sonic-boom/],
  ["Hono", /hono/],
  ["JWT (jose)", /jose/],
  ["zod", /zod/],
  [
    "async machinery (promises, timers, hooks)",
    /node:internal\/(process\/task_queues|timers|async_hooks|async_local_storage)|node:async_hooks|node:timers/,
  ],
  [
    "child processes and pipes",
    /node:internal\/child_process|node:child_process|node:internal\/stream_base/,
  ],
  ["fs", /node:fs|node:internal\/fs/],
  [
    "AbortController, DOMException, EventTarget",
    /node:internal\/(abort_controller|event_target|per_context\/domexception)/,
  ],
  ["EventEmitter", /node:events/],
  ["undici (fetch)", /undici/],
  ["module loading (start-up)", /node:internal\/(modules|source_map|bootstrap)/],
  ["edge code (other)", /\/edge\/src\//],
  ["runner code (other)", /\/runner\/src\//],
  ["common code (other)", /\/common\/src\//],
  ["other Node internals", /^node:/],
];

function groupOf(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (url === "") {
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(program)") return "native (program)";
    if (functionName === "(idle)") return "(idle)";
    return `native: ${functionName || "(anonymous)"}`;
  }
  for (const [name, re] of GROUPS) if (re.test(url)) return name;
  return "other JS";
}

function summarize(file: string, top: number): string[] {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // timeDeltas[i] is the time between sample i-1 and sample i: charged to sample i.
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + Math.max(0, p.timeDeltas[i] ?? 0));
  }
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const g = groupOf(node);
    if (g === "(idle)") continue;
    busy += us;
    groups.set(g, (groups.get(g) ?? 0) + us);
    const { functionName, url, lineNumber } = node.callFrame;
    // (Lines of TypeScript sources are tsx's output lines, not the source's: left out.)
    const where = url
      .replace(/^.*node_modules\//, "")
      .replace(/^file:\/\/.*?\/(edge|runner|common|test)\//, "$1/");
    const line = url.endsWith(".ts") ? "" : `:${lineNumber + 1}`;
    const key = `${functionName || "(anonymous)"} ${url ? `${where}${line}` : ""}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  // Native functions below half a percent each, as one line.
  for (const [g, us] of [...groups]) {
    if (g.startsWith("native: ") && us < busy / 200) {
      groups.delete(g);
      const other = "native: others (each < 0.5 %)";
      groups.set(other, (groups.get(other) ?? 0) + us);
    }
  }
  const wall = (p.endTime - p.startTime) / 1e6;
  const pct = (us: number) => `${((100 * us) / Math.max(1, busy)).toFixed(1)} %`;
  const lines = [
    `### ${basename(file)}: ${(busy / 1e6).toFixed(2)} s busy of ${wall.toFixed(1)} s`,
    "",
    "| spent in | share of busy time |",
    "| --- | ---: |",
    ...[...groups.entries()].sort((a, b) => b[1] - a[1]).map(([g, us]) => `| ${g} | ${pct(us)} |`),
    "",
    `| top ${top} functions by self time | share |`,
    "| --- | ---: |",
    ...[...functions.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([f, us]) => `| \`${f.trim()}\` | ${pct(us)} |`),
    "",
  ];
  return lines;
}

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args[topAt + 1]) : 15;
const paths = args.filter((_, i) => i !== topAt && i !== topAt + 1);
if (paths.length === 0) {
  console.error("usage: profile-summary.ts DIR_OR_FILE... [--top N]");
  process.exit(2);
}
for (const path of paths) {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith(".cpuprofile"))
        .map((f) => join(path, f))
    : [path];
  for (const file of files) for (const line of summarize(file, top)) console.log(line);
}
