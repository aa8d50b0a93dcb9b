/**
 * Soak benchmark: a real edge and runner (separate processes, mTLS, cgroups on) under a steady
 * mix of tasks for a configurable time, some printing the maximum output the policy allows.
 * Samples edge RSS, runner RSS and the store's size over time, and checks they are flat after
 * warm-up and within the configured budgets (output retention, retained runner events).
 *
 *   node --import tsx test/bench/soak.bench.ts [SECONDS] [CONCURRENCY]   (npm run bench:soak)
 *   SOAK_SECONDS=1800 npm run bench:soak                                  (the 30-minute run)
 *
 * Before and after the mix it probes the same things on the same processes — sequential
 * `echo hi` latency (submit → exit streamed, p50/p99 of PROBE_TASKS after a warm-up) and the
 * echo throughput of 8 concurrent clients for PROBE_SECONDS — and prints the ratios (issue 13's
 * "no decay": within 10 % of the fresh process).
 *
 * Not part of `npm test`: it takes minutes and its figures go to docs/PERFORMANCE.md.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { OutputKind, TaskStatus } from "@mcp-gateway/proto/mcp";
import { createMcpClient } from "../../client/src/client.js";
import { startGateway } from "../integration/harness.js";

const SECONDS = Number(process.argv[2] ?? process.env.SOAK_SECONDS ?? 180);
const CONCURRENCY = Number(process.argv[3] ?? process.env.SOAK_CONCURRENCY ?? 4);
const SAMPLE_MS = Math.max(5_000, Math.min(60_000, (SECONDS * 1000) / 24));
const MiB = 1024 * 1024;
/** The store's task output budget for the run (small, so retention has to work within it). */
const STORE_OUTPUT_BUDGET = 64 * MiB;
/** Runner's retained-event budget. */
const RUNNER_EVENT_BUDGET = 128 * MiB;

/**
 * The task mix: [weight, label, shell script, memory_bytes (0 = the policy's cap)].
 * 20 MB printed is past the developer's max_output_bytes (10 MiB): truncated at the cap.
 * "oom" fills /dev/shm past a 32 MiB memory limit: the kernel OOM-kills it.
 */
const MIX: [number, string, string, number][] = [
  [70, "small", "echo hello; ls / > /dev/null", 0],
  [20, "medium", "head -c 200000 /dev/urandom | base64", 0],
  [6, "max-output", "head -c 20000000 /dev/zero | tr '\\0' x", 0],
  [4, "oom", "head -c 200000000 /dev/zero > /dev/shm/fill", 32 * MiB],
];
const TOTAL_WEIGHT = MIX.reduce((n, [w]) => n + w, 0);

function pick(): [string, string, number] {
  let r = Math.random() * TOTAL_WEIGHT;
  for (const [w, label, script, memory] of MIX) {
    r -= w;
    if (r < 0) return [label, script, memory];
  }
  return ["small", "true", 0];
}

const PROBE_TASKS = Number(process.env.SOAK_PROBE_TASKS ?? 80);
const PROBE_SECONDS = Number(process.env.SOAK_PROBE_SECONDS ?? 10);

interface Probe {
  p50: number;
  p99: number;
  perSecond: number;
  /** Medians from the task's own record: created → started, started → finished. */
  toStart: number;
  running: number;
}

/** Runs one `echo hi` to its end (submit → exit streamed); resolves to its milliseconds. */
async function echoOnce(client: ReturnType<typeof createMcpClient>): Promise<number> {
  return (await echoTimed(client)).ms;
}

const millis = (t: { seconds: bigint; nanos: number } | undefined) =>
  t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : Number.NaN;

/** One `echo hi`, with the task's own timeline (read after the probe's timing). */
async function echoTimed(
  client: ReturnType<typeof createMcpClient>,
): Promise<{ ms: number; taskId: string }> {
  const t0 = performance.now();
  const res = await client.executeCommand({ command: "echo", args: ["hi"] });
  for await (const m of client.streamTaskOutput({ taskId: res.taskId })) {
    if (m.kind === OutputKind.EXIT && m.status !== TaskStatus.COMPLETED) {
      throw new Error(`probe task ${res.taskId} ended ${TaskStatus[m.status]}`);
    }
  }
  return { ms: performance.now() - t0, taskId: res.taskId };
}

/** Sequential latency, then the throughput of 8 concurrent clients. */
async function probe(client: ReturnType<typeof createMcpClient>): Promise<Probe> {
  for (let i = 0; i < 10; i++) await echoOnce(client);
  const ms: number[] = [];
  const ids: string[] = [];
  for (let i = 0; i < PROBE_TASKS; i++) {
    const r = await echoTimed(client);
    ms.push(r.ms);
    ids.push(r.taskId);
  }
  ms.sort((a, b) => a - b);
  const toStart: number[] = [];
  const running: number[] = [];
  for (const taskId of ids) {
    const t = (await client.getTaskStatus({ taskId })).task;
    toStart.push(millis(t?.startedAt) - millis(t?.createdAt));
    running.push(millis(t?.finishedAt) - millis(t?.startedAt));
  }
  toStart.sort((a, b) => a - b);
  running.sort((a, b) => a - b);
  let done = 0;
  const until = performance.now() + PROBE_SECONDS * 1000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < until) {
        await echoOnce(client);
        done++;
      }
    }),
  );
  return {
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    perSecond: done / PROBE_SECONDS,
    toStart: percentile(toStart, 50),
    running: percentile(running, 50),
  };
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

function fileMiB(path: string): number {
  try {
    return statSync(path).size / MiB;
  } catch {
    return 0;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function main(): Promise<void> {
  const configPath = join(process.env.TMPDIR ?? "/tmp", `mcp-soak-${process.pid}`);
  writeFileSync(
    `${configPath}-runner.json`,
    JSON.stringify({ maxRetainedOutputBytes: RUNNER_EVENT_BUDGET, maxConcurrentTasks: 16 }),
  );
  writeFileSync(
    `${configPath}-edge.json`,
    JSON.stringify({
      outputRetention: { maxTotalBytes: STORE_OUTPUT_BUDGET, intervalMs: 5_000 },
      rateLimit: { ratePerSecond: 1000, burst: 1000 },
    }),
  );
  const gw = await startGateway({
    runnerArgs: ["--config", `${configPath}-runner.json`],
    edgeArgs: ["--config", `${configPath}-edge.json`],
    env: { MCP_GATEWAY_LOG_LEVEL: "warn" },
  });
  // Valid for the whole run: a token of the default hour expired an hour into a longer soak,
  // and every task after that was refused (unauthenticated).
  const token = await gw.token(
    "soak",
    ["developer"],
    ["--ttl", `${Math.ceil((SECONDS + 600) / 3600)}h`],
  );
  const client = createMcpClient({ baseUrl: gw.url, token });
  const db = join(gw.dataDir, "gateway.db");
  const counts = new Map<string, number>();
  const outcomes = new Map<string, number>();
  const latencies: number[] = [];
  let errors = 0;
  let outputBytes = 0;
  // Set after the fresh probe: the mix runs for SECONDS.
  let started = 0;
  let end = 0;

  async function worker(): Promise<void> {
    while (Date.now() < end) {
      const [label, script, memory] = pick();
      const t0 = performance.now();
      try {
        const res = await client.executeCommand({
          command: "sh",
          args: ["-c", script],
          sandbox: { limits: { memoryBytes: BigInt(memory) } },
        });
        let status = TaskStatus.UNSPECIFIED;
        for await (const m of client.streamTaskOutput({ taskId: res.taskId })) {
          outputBytes += m.data.length;
          if (m.kind === OutputKind.EXIT) status = m.status;
        }
        latencies.push(performance.now() - t0);
        counts.set(label, (counts.get(label) ?? 0) + 1);
        const key = `${label}:${TaskStatus[status]}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      } catch (err) {
        errors++;
        if (errors <= 5) console.error(`task error: ${String(err).slice(0, 200)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  const samples: { t: number; edge: number; runner: number; db: number; tasks: number }[] = [];
  const sample = () =>
    samples.push({
      t: Math.round((Date.now() - started) / 1000),
      edge: rssMiB(gw.edge.child.pid),
      runner: rssMiB(gw.runner.child.pid),
      db: fileMiB(db) + fileMiB(`${db}-wal`),
      tasks: latencies.length,
    });
  let fresh: Probe;
  let soaked: Probe;
  let load0: number;
  let load1: number;
  try {
    fresh = await probe(client);
    started = Date.now();
    end = started + SECONDS * 1000;
    sample();
    const timer = setInterval(sample, SAMPLE_MS);
    load0 = loadavg()[0] ?? 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, () => worker()));
    clearInterval(timer);
    sample();
    load1 = loadavg()[0] ?? 0;
    soaked = await probe(client);
  } finally {
    await gw.stop();
  }

  latencies.sort((a, b) => a - b);
  const fmt = (n: number) => n.toFixed(1).padStart(7);
  console.log(
    `soak: ${SECONDS} s, concurrency ${CONCURRENCY}, ${latencies.length} tasks ` +
      `(${(latencies.length / SECONDS).toFixed(1)}/s), ${errors} errors, ` +
      `${(outputBytes / MiB).toFixed(0)} MiB of output streamed; load average ${load0.toFixed(2)} → ${load1.toFixed(2)}`,
  );
  console.log(`mix: ${[...counts].map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(
    `task latency (submit → exit streamed): p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms`,
  );
  console.log("\n   t(s)  edge RSS MiB  runner RSS MiB  store MiB   tasks");
  for (const s of samples) {
    console.log(
      `${String(s.t).padStart(7)}  ${fmt(s.edge)}       ${fmt(s.runner)}        ${fmt(s.db)}  ${String(s.tasks).padStart(6)}`,
    );
  }
  const ratio = (a: number, b: number) => `×${(a / b).toFixed(2)}`;
  console.log(
    `\nno decay (same processes, fresh → after the soak; target within 10 %):\n` +
      `  sequential echo p50 ${fresh.p50.toFixed(1)} → ${soaked.p50.toFixed(1)} ms (${ratio(soaked.p50, fresh.p50)}), ` +
      `p99 ${fresh.p99.toFixed(1)} → ${soaked.p99.toFixed(1)} ms (${ratio(soaked.p99, fresh.p99)})\n` +
      `  echo throughput, 8 clients: ${fresh.perSecond.toFixed(1)} → ${soaked.perSecond.toFixed(1)} tasks/s ` +
      `(${ratio(soaked.perSecond, fresh.perSecond)})\n` +
      `  task record, medians: created → started ${fresh.toStart.toFixed(1)} → ${soaked.toStart.toFixed(1)} ms, ` +
      `started → finished ${fresh.running.toFixed(1)} → ${soaked.running.toFixed(1)} ms`,
  );
  // Flatness: the last sample against the first one after warm-up (a quarter of the run).
  const warm = samples[Math.max(1, Math.floor(samples.length / 4))] ?? samples[0];
  const last = samples[samples.length - 1];
  if (warm && last) {
    console.log(
      `\nafter warm-up (t=${warm.t} s) → end (t=${last.t} s): edge RSS ×${(last.edge / warm.edge).toFixed(2)}, ` +
        `runner RSS ×${(last.runner / warm.runner).toFixed(2)}, store ×${(last.db / Math.max(warm.db, 0.01)).toFixed(2)} ` +
        `(store output budget ${STORE_OUTPUT_BUDGET / MiB} MiB + records/audit; runner event budget ${RUNNER_EVENT_BUDGET / MiB} MiB)`,
    );
  }
}

await main();
