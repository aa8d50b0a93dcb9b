/**
 * End-to-end hot-path benchmark (issue 13): the real gateway (edge and runner as
 * separate processes, mTLS between them, SQLite store, default policy) against bare
 * bubblewrap measured in the same run.
 *
 *   1. Sequential: a sandboxed `echo hi` from ExecuteCommand to the EXIT message of
 *      StreamTaskOutput over Connect (HTTP/1.1 JSON), native gRPC (@grpc/grpc-js, h2c)
 *      and gRPC-Web, round-robin with bare `bwrap --unshare-all … /bin/echo hi`, so
 *      load hits all alike, each run 40 ms after the previous one ended (a task's
 *      aftermath is not the next one's cost). ExecuteCommand alone is timed too, and the tasks' own
 *      timelines (created → started, execution) are read back from GetTaskStatus.
 *   2. Open-loop rate ladder: echo tasks offered at fixed rates (latency from the
 *      scheduled start, so a slow gateway is not hidden by a slow generator), rotating
 *      principals in many tenants, so the per-principal rate limit and the task quotas
 *      are not what is measured. Edge and runner CPU per task from /proc (the runner's
 *      includes its spawner's, ADR 0023; the sandboxes' own processes are excluded).
 *   3. GetTaskStatus load: a raw-socket HTTP/1.1 generator (pre-built requests, N
 *      keep-alive connections, closed loop), rotating 256 principals.
 *
 *   node --import tsx test/bench/e2e.bench.ts            (npm run bench:e2e)
 *   BENCH_SEQ=100 BENCH_RATES=25,50,100,150 BENCH_STEP_S=5 BENCH_STATUS_S=10 …
 *   BENCH_CPU_PROF=/tmp/prof …   (edge and runner write .cpuprofile files there on exit)
 *   BENCH_EDGE_CONFIG=edge.json … (an edge configuration file, e.g. {"rpcPath": "fetch"})
 *   BENCH_TIMELINE=1 …  (the edge and runner export their trace spans to the benchmark, which
 *                        prints where a sequential task's time goes, step by step: timeline.ts;
 *                        recording spans costs CPU, so pair it with BENCH_RATES= BENCH_STATUS_S=0)
 *
 * Targets (issue 13): sequential p50 ≤ bare bwrap + 5 ms on every protocol; ≥ 150
 * tasks/s with p99 ≤ 100 ms; edge+runner CPU ≤ 2 ms per task; GetTaskStatus ≥ 5,000
 * RPS with p99 ≤ 10 ms.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { loadavg } from "node:os";
import { join } from "node:path";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type * as grpc from "@grpc/grpc-js";
import {
  ExecuteCommandRequestSchema,
  type ExecuteCommandResponse,
  GetTaskStatusRequestSchema,
  McpService,
  OutputKind,
  StreamTaskOutputRequestSchema,
  type StreamTaskOutputResponse,
} from "@mcp-gateway/proto/mcp";
import { DEV_AUDIENCE, DEV_ISSUER, mintDevToken } from "../../edge/src/auth/dev-keys.js";
import { createGrpcJsClient, serverStream, unary } from "../integration/grpc-js-client.js";
import { startGateway } from "../integration/harness.js";
import { startSpanSink } from "../integration/otlp-sink.js";
import { spawnerPids } from "./spawners.js";
import { type TimelineRun, timelineTable } from "./timeline.js";

const SEQ = Number(process.env.BENCH_SEQ ?? 100);
const WARMUP = 10;
const RATES = (process.env.BENCH_RATES ?? "25,50,100,150,200")
  .split(",")
  .filter(Boolean)
  .map(Number);
const STEP_S = Number(process.env.BENCH_STEP_S ?? 5);
const STATUS_S = Number(process.env.BENCH_STATUS_S ?? 10);
const STATUS_CONNS = Number(process.env.BENCH_STATUS_CONNS ?? 32);
const PRINCIPALS = 256;
const TENANTS = 64;
const TICK_MS = 10; // USER_HZ

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "—");
const load = () => loadavg()[0]?.toFixed(2) ?? "?";

/** utime+stime of a process (not its waited-for children), ms. */
function cpuMs(pid: number, which: "all" | "sys" = "all"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((which === "all" ? Number(fields[11]) : 0) + Number(fields[12])) * TICK_MS;
}

/**
 * The runner's CPU, ms: its own and its spawner's (the helper that forks the launchers for it,
 * ADR 0023), so that work is not hidden in a child; the sandboxes themselves are excluded.
 */
function runnerCpuMs(pid: number): number {
  let total = cpuMs(pid);
  for (const spawner of spawnerPids(pid)) {
    try {
      total += cpuMs(spawner);
    } catch {
      // ended meanwhile
    }
  }
  return total;
}

const BWRAP = [
  "--unshare-all",
  "--die-with-parent",
  "--ro-bind",
  "/usr",
  "/usr",
  "--symlink",
  "usr/bin",
  "/bin",
  "--symlink",
  "usr/lib",
  "/lib",
  "--symlink",
  "usr/lib64",
  "/lib64",
  "--proc",
  "/proc",
  "--dev",
  "/dev",
  "/bin/echo",
  "hi",
];

/** Bare bwrap running `echo hi` as the sandbox's unprivileged uid, until its output ends. */
function bareBwrap(): Promise<void> {
  return new Promise((resolve, reject) => {
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const child = spawn("/usr/bin/bwrap", BWRAP, { stdio: ["ignore", "pipe", "pipe"], ...asUser });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 && out === "hi\n" ? resolve() : reject(new Error(`bwrap: ${code} ${out}`)),
    );
  });
}

const bearer =
  (token: () => string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${token()}`);
    return next(req);
  };

/** ExecuteCommand + StreamTaskOutput to EXIT through a Connect-ES client; returns [execMs, totalMs, taskId]. */
async function viaClient(
  c: Client<typeof McpService>,
): Promise<{ exec: number; total: number; taskId: string; at: number }> {
  const t0 = performance.now();
  const { taskId } = await c.executeCommand({ command: "echo", args: ["hi"] });
  const exec = performance.now() - t0;
  let out = "";
  let exit = "";
  for await (const m of c.streamTaskOutput({ taskId })) {
    if (m.kind === OutputKind.STDOUT) out += Buffer.from(m.data).toString();
    if (m.kind !== OutputKind.STDOUT) exit += `${m.message} `;
    if (m.kind === OutputKind.EXIT) break;
  }
  if (out !== "hi\n") throw new Error(`unexpected output ${JSON.stringify(out)} (${exit})`);
  return { exec, total: performance.now() - t0, taskId, at: performance.timeOrigin + t0 };
}

/** The same over @grpc/grpc-js. */
async function viaGrpcJs(
  c: grpc.Client,
  token: string,
): Promise<{ exec: number; total: number; taskId: string; at: number }> {
  const t0 = performance.now();
  const res = (await unary(
    c,
    "executeCommand",
    ExecuteCommandRequestSchema,
    { command: "echo", args: ["hi"] },
    token,
  )) as unknown as ExecuteCommandResponse;
  const exec = performance.now() - t0;
  const chunks = (await serverStream(
    c,
    "streamTaskOutput",
    StreamTaskOutputRequestSchema,
    { taskId: res.taskId },
    token,
  )) as unknown as StreamTaskOutputResponse[];
  const out = chunks
    .filter((m) => m.kind === OutputKind.STDOUT)
    .map((m) => Buffer.from(m.data).toString())
    .join("");
  if (out !== "hi\n") throw new Error(`grpc-js: unexpected output ${JSON.stringify(out)}`);
  return {
    exec,
    total: performance.now() - t0,
    taskId: res.taskId,
    at: performance.timeOrigin + t0,
  };
}

/**
 * Closed-loop HTTP/1.1 load over raw sockets: each connection sends the next
 * pre-built request when the previous response is complete. Returns counts and
 * latencies (ms).
 */
async function rawLoad(
  url: string,
  requests: Buffer[],
  conns: number,
  seconds: number,
): Promise<{ ok: number; errors: Map<number | string, number>; lat: number[]; elapsedS: number }> {
  const u = new URL(url);
  const lat: number[] = [];
  const errors = new Map<number | string, number>();
  const count = (k: number | string) => errors.set(k, (errors.get(k) ?? 0) + 1);
  let ok = 0;
  let next = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  /** One keep-alive connection until the end; a connection the edge closes or resets is
   * counted ("closed" / the error code) and replaced, so the load never hangs on it. */
  const connection = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const s = net.connect(Number(u.port), u.hostname);
      s.setNoDelay(true);
      // A request the edge never answers is counted and its connection replaced.
      s.setTimeout(10_000, () => finish("timeout"));
      let buf: Buffer<ArrayBufferLike> = Buffer.alloc(0);
      let t0 = 0;
      let done = false;
      const finish = (reason?: string) => {
        if (done) return;
        done = true;
        s.destroy();
        if (reason === undefined || performance.now() >= end) {
          resolve();
          return;
        }
        count(reason);
        setTimeout(() => void connection().then(resolve), 50);
      };
      const send = () => {
        if (performance.now() >= end) {
          finish();
          return;
        }
        t0 = performance.now();
        s.write(requests[next++ % requests.length] as Buffer);
      };
      s.on("connect", send);
      s.on("error", (err: NodeJS.ErrnoException) => finish(err.code ?? "error"));
      s.on("close", () => finish("closed"));
      s.on("data", (d: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        for (;;) {
          const he = buf.indexOf("\r\n\r\n");
          if (he < 0) return;
          const head = buf.subarray(0, he).toString("latin1");
          const m = /content-length:\s*(\d+)/i.exec(head);
          const len = m ? Number(m[1]) : 0;
          if (buf.length < he + 4 + len) return;
          const status = Number(head.slice(9, 12));
          buf = buf.subarray(he + 4 + len);
          lat.push(performance.now() - t0);
          if (status === 200) ok++;
          else count(status);
          send();
        }
      });
    });
  await Promise.all(Array.from({ length: conns }, connection));
  return { ok, errors, lat, elapsedS: (performance.now() - start) / 1000 };
}

const cpuProf = process.env.BENCH_CPU_PROF;
// BENCH_EDGE_CONFIG=file.json: an edge configuration file (e.g. {"rpcPath": "fetch"} to compare).
const edgeConfig = process.env.BENCH_EDGE_CONFIG;
// BENCH_TIMELINE=1: the gateway's processes export their spans here (they read the variable).
// (An edge configuration file naming its own otlpEndpoint takes precedence.)
const sink = process.env.BENCH_TIMELINE === "1" ? await startSpanSink() : undefined;
if (sink) process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = sink.endpoint;
const gw = await startGateway({
  nodeArgs: cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${cpuProf}`] : [],
  ...(edgeConfig ? { edgeArgs: ["--config", edgeConfig] } : {}),
});
try {
  const edgePid = gw.edge.child.pid as number;
  const runnerPid = gw.runner.child.pid as number;
  const auth = join(gw.dataDir, "auth");
  const mint = (sub: string, tenant: string) =>
    mintDevToken(auth, {
      sub,
      tenant,
      roles: ["developer"],
      ttlSeconds: 3600,
      issuer: DEV_ISSUER,
      audience: DEV_AUDIENCE,
    });
  const tokens: string[] = [];
  for (let i = 0; i < PRINCIPALS; i++) tokens.push(await mint(`bench-${i}`, `t${i % TENANTS}`));
  const seqToken = tokens[0] as string;

  const connect = createClient(
    McpService,
    createConnectTransport({
      baseUrl: gw.url,
      httpVersion: "1.1",
      interceptors: [bearer(() => seqToken)],
    }),
  );
  const grpcWeb = createClient(
    McpService,
    createGrpcWebTransport({
      baseUrl: gw.url,
      httpVersion: "1.1",
      interceptors: [bearer(() => seqToken)],
    }),
  );
  const grpcJs = createGrpcJsClient(new URL(gw.url).host);

  // 1. Sequential, round-robin.
  type Row = { name: string; total: number[]; exec: number[]; ids: string[]; runs: TimelineRun[] };
  const row = (name: string): Row => ({ name, total: [], exec: [], ids: [], runs: [] });
  const rows: Row[] = [
    row("bare bwrap --unshare-all … /bin/echo hi"),
    row("Connect (HTTP/1.1 JSON)"),
    row("gRPC (@grpc/grpc-js, h2c)"),
    row("gRPC-Web (HTTP/1.1)"),
  ];
  const runs: (() => Promise<{ exec: number; total: number; taskId: string; at: number }>)[] = [
    async () => {
      const t0 = performance.now();
      await bareBwrap();
      return { exec: Number.NaN, total: performance.now() - t0, taskId: "", at: Number.NaN };
    },
    () => viaClient(connect),
    () => viaGrpcJs(grpcJs, seqToken),
    () => viaClient(grpcWeb),
  ];
  // Each run is followed by the same pause, so no path starts while the previous task's
  // aftermath (its outcome's audit record, Release, the runner's cgroup removal and the refill
  // of its prepared launcher) still runs — without it, the path after the bare bwrap run had the
  // quietest machine and the two after it paid for their predecessor (ExecuteCommand p50 5.6 ms
  // over Connect, 9.2 and 8.8 ms over gRPC and gRPC-Web in the same run). It also keeps the
  // sequential client under its principal's rate limit (50 calls/s; 2 calls per gateway task).
  const SETTLE_MS = 40;
  const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));
  for (let i = 0; i < WARMUP; i++) {
    for (const r of runs) {
      await r();
      await settle();
    }
  }
  const loadSeq0 = load();
  for (let i = 0; i < SEQ; i++) {
    for (const [k, r] of runs.entries()) {
      const x = await r();
      const row = rows[k] as Row;
      row.total.push(x.total);
      if (Number.isFinite(x.exec)) row.exec.push(x.exec);
      if (x.taskId) {
        row.ids.push(x.taskId);
        row.runs.push({ taskId: x.taskId, at: x.at, exec: x.exec, total: x.total });
      }
      await settle();
    }
  }
  const loadSeq1 = load();
  const bare = [...(rows[0] as Row).total].sort((a, b) => a - b);
  const bareP50 = pct(bare, 50);
  console.log(
    `\n## Sequential sandboxed echo, ${SEQ} each (+${WARMUP} warm-up), round-robin, ${SETTLE_MS} ms apart, load avg ${loadSeq0} → ${loadSeq1}\n`,
  );
  console.log(
    "| path | p50 ms | p99 ms | min ms | p50 / bare bwrap | p50 − bare ms | ExecuteCommand p50 ms | created→started p50 ms | execution p50 ms |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const row of rows) {
    const t = [...row.total].sort((a, b) => a - b);
    const e = [...row.exec].sort((a, b) => a - b);
    const started: number[] = [];
    const execution: number[] = [];
    for (const id of row.ids.slice(-30)) {
      const { task } = await connect.getTaskStatus({ taskId: id });
      if (task?.createdAt && task.startedAt && task.finishedAt) {
        started.push(Number(timestampMs(task.startedAt) - timestampMs(task.createdAt)));
      }
      if (task?.result) execution.push(Number(task.result.executionTimeMs));
    }
    started.sort((a, b) => a - b);
    execution.sort((a, b) => a - b);
    console.log(
      `| ${row.name} | ${f(pct(t, 50))} | ${f(pct(t, 99))} | ${f(t[0] ?? Number.NaN)} | ${(pct(t, 50) / bareP50).toFixed(2)}× | ${row === rows[0] ? "—" : `+${f(pct(t, 50) - bareP50)}`} | ${e.length ? f(pct(e, 50)) : "—"} | ${started.length ? f(pct(started, 50)) : "—"} | ${execution.length ? f(pct(execution, 50)) : "—"} |`,
    );
  }
  if (sink) {
    const gateway = rows.slice(1);
    await sink.settle(gateway.flatMap((r) => r.ids));
    for (const r of gateway) {
      console.log(`\n## Where the time goes: ${r.name} (BENCH_TIMELINE, the gateway's spans)\n`);
      for (const line of timelineTable(sink.spans, r.runs)) console.log(line);
    }
  }
  // Unary round trips without a sandbox (GetTaskStatus of an own task): the protocol and
  // pipeline alone; a 40 ms mode here is Nagle meeting delayed ACKs.
  const probeId = (rows[1] as Row).ids[0] as string;
  const unaryRuns: [string, () => Promise<unknown>][] = [
    ["Connect", () => connect.getTaskStatus({ taskId: probeId })],
    [
      "gRPC",
      () =>
        unary(grpcJs, "getTaskStatus", GetTaskStatusRequestSchema, { taskId: probeId }, seqToken),
    ],
    ["gRPC-Web", () => grpcWeb.getTaskStatus({ taskId: probeId })],
  ];
  const unaryLat = unaryRuns.map(() => [] as number[]);
  for (let i = 0; i < SEQ; i++) {
    for (const [k, [, run]] of unaryRuns.entries()) {
      const t0 = performance.now();
      await run();
      unaryLat[k]?.push(performance.now() - t0);
    }
    // Three calls of one principal per round: stay under its rate limit (50/s).
    await new Promise((r) => setTimeout(r, 70));
  }
  console.log(
    `\n## Sequential GetTaskStatus (unary, no sandbox), ${SEQ} each, load avg ${load()}\n`,
  );
  console.log("| protocol | p50 ms | p99 ms | calls ≥ 38 ms |");
  console.log("| --- | --- | --- | --- |");
  for (const [k, [name]] of unaryRuns.entries()) {
    const t = [...(unaryLat[k] ?? [])].sort((a, b) => a - b);
    console.log(
      `| ${name} | ${pct(t, 50).toFixed(2)} | ${pct(t, 99).toFixed(2)} | ${t.filter((x) => x >= 38).length} |`,
    );
  }
  grpcJs.close();

  // 2. Open-loop rate ladder over Connect, rotating principals.
  let rr = 0;
  const ladder = createClient(
    McpService,
    createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }),
  );
  // Bounded: a call the edge never answers fails the step (counted) instead of hanging the run.
  const as = (who: number) => ({
    headers: { authorization: `Bearer ${tokens[who]}` },
    timeoutMs: 60_000,
  });
  /** One task id per principal, for the GetTaskStatus load. */
  const ownTask = new Map<number, string>();
  console.log(
    `\n## Open-loop echo tasks (Connect, ${PRINCIPALS} principals in ${TENANTS} tenants), ${STEP_S} s per step\n`,
  );
  console.log(
    "| offered/s | completed/s | p50 ms | p99 ms | errors | edge CPU ms/task | runner CPU ms/task | load avg |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const rate of RATES) {
    const n = Math.round(rate * STEP_S);
    const lat: number[] = [];
    let errors = 0;
    let firstError = "";
    const e0 = cpuMs(edgePid);
    const r0 = runnerCpuMs(runnerPid);
    const start = performance.now();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const who = rr++ % PRINCIPALS;
      pending.push(
        (async () => {
          const { taskId } = await ladder.executeCommand(
            { command: "echo", args: ["hi"] },
            as(who),
          );
          ownTask.set(who, taskId);
          for await (const m of ladder.streamTaskOutput({ taskId }, as(who))) {
            if (m.kind === OutputKind.EXIT) break;
          }
          lat.push(performance.now() - due);
        })().catch((err: unknown) => {
          errors++;
          firstError ||= String((err as Error).message ?? err);
        }),
      );
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - start) / 1000;
    const done = lat.length;
    const edgeCpu = (cpuMs(edgePid) - e0) / Math.max(1, done);
    const runnerCpu = (runnerCpuMs(runnerPid) - r0) / Math.max(1, done);
    lat.sort((a, b) => a - b);
    console.log(
      `| ${rate} | ${(done / elapsed).toFixed(1)} | ${f(pct(lat, 50))} | ${f(pct(lat, 99))} | ${errors}${firstError ? ` (${firstError.slice(0, 60)})` : ""} | ${edgeCpu.toFixed(2)} | ${runnerCpu.toFixed(2)} | ${load()} |`,
    );
    if (pct(lat, 99) > 5000) {
      console.log(`(ladder stopped: p99 above 5 s at ${rate}/s)`);
      break;
    }
  }

  // 3. GetTaskStatus load, raw sockets, rotating principals over their own tasks.
  for (let i = 0; i < PRINCIPALS && STATUS_S > 0; i++) {
    if (ownTask.has(i)) continue;
    ownTask.set(i, (await ladder.executeCommand({ command: "true" }, as(i))).taskId);
  }
  const host = new URL(gw.url).host;
  const requests = [...ownTask.entries()].map(([i, taskId]) => {
    const body = JSON.stringify({ taskId });
    return Buffer.from(
      `POST /mcp.McpService/GetTaskStatus HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\nauthorization: Bearer ${tokens[i]}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  if (STATUS_S > 0) {
    await rawLoad(gw.url, requests, STATUS_CONNS, 1); // warm-up
    const e0 = cpuMs(edgePid);
    const s0 = cpuMs(edgePid, "sys");
    const loadS0 = load();
    const st = await rawLoad(gw.url, requests, STATUS_CONNS, STATUS_S);
    const edgeCpuPerReq = ((cpuMs(edgePid) - e0) * 1000) / Math.max(1, st.ok);
    const edgeSysPerReq = ((cpuMs(edgePid, "sys") - s0) * 1000) / Math.max(1, st.ok);
    st.lat.sort((a, b) => a - b);
    console.log(
      `\n## GetTaskStatus, ${STATUS_CONNS} connections, ${requests.length} principals, ${STATUS_S} s, load avg ${loadS0} → ${load()}\n`,
    );
    console.log("| RPS (200 OK) | p50 ms | p99 ms | non-200 | edge CPU µs/request |");
    console.log("| --- | --- | --- | --- | --- |");
    console.log(
      `| ${(st.ok / st.elapsedS).toFixed(0)} | ${pct(st.lat, 50).toFixed(2)} | ${pct(st.lat, 99).toFixed(2)} | ${[...st.errors].map(([k, v]) => `${k}×${v}`).join(" ") || "0"} | ${edgeCpuPerReq.toFixed(0)} (sys ${edgeSysPerReq.toFixed(0)}) |`,
    );
  }
} finally {
  await gw.stop(); // (its processes flush their last spans to the sink first)
  await sink?.close();
}
