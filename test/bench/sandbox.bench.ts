/**
 * Sandbox overhead benchmark: latency and CPU per task of `/bin/true` run
 *   1. bare:       spawn("/bin/true")
 *   2. bare bwrap: bwrap --unshare-all ... /bin/true (same uid as the sandbox)
 *   3. sandbox:    createSandbox().spawn(...) — launcher + bwrap + seccomp + sandbox-init, in
 *                  a prepared sandbox when one is ready (ADR 0028)
 *   4. the same with preparedNamespaces: false (prepared launchers only, ADR 0020)
 * measured in the same run, round-robin (so machine load hits all three alike), after a
 * warm-up. Child CPU comes from /proc/self/stat cutime+cstime (10 ms ticks, summed).
 *
 *   node --import tsx test/bench/sandbox.bench.ts [ITERATIONS]   (npm run bench:sandbox)
 */
import { spawn } from "node:child_process";
import { chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSandbox, DEFAULT_SANDBOX_LIMITS } from "../../runner/src/sandbox/index.js";
import { spawnerPids } from "./spawners.js";

const ITERATIONS = Number(process.argv[2] ?? 200);
const WARMUP = 20;
const isRoot = process.getuid?.() === 0;
const asSandboxUid = isRoot ? { uid: 65534, gid: 65534 } : {};
const TICK_MS = 10; // USER_HZ = 100 on Linux

/** utime+stime and cutime+cstime (ms) of a process, from /proc/PID/stat. */
function statCpuMs(pid: number | "self"): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17
  return {
    own: (Number(fields[11]) + Number(fields[12])) * TICK_MS,
    children: (Number(fields[13]) + Number(fields[14])) * TICK_MS,
  };
}

/**
 * CPU (ms) of this process's waited-for children, plus the sandbox spawner's own and its
 * waited-for children's (the launchers are the spawner's children, ADR 0023).
 */
function childrenCpuMs(): number {
  let total = statCpuMs("self").children;
  for (const spawner of spawnerPids("self")) {
    try {
      const cpu = statCpuMs(spawner);
      total += cpu.own + cpu.children;
    } catch {
      // ended meanwhile
    }
  }
  return total;
}

function runOnce(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], ...asSandboxUid });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${command}: ${code} ${err}`)),
    );
  });
}

interface Stats {
  name: string;
  p50: number;
  p99: number;
  mean: number;
  runnerCpuMs: number;
  childCpuMs: number;
}

interface Variant {
  name: string;
  task: () => Promise<void>;
  samples: number[];
  runnerCpuUs: number;
  childCpuMs: number;
}

/**
 * Runs the variants round-robin (one task of each per round), so load changes on the
 * machine affect all of them alike.
 */
async function measure(variants: Variant[]): Promise<Stats[]> {
  for (let i = 0; i < WARMUP; i++) for (const v of variants) await v.task();
  for (let i = 0; i < ITERATIONS; i++) {
    for (const v of variants) {
      const cpu0 = process.cpuUsage();
      const child0 = childrenCpuMs();
      const t0 = process.hrtime.bigint();
      await v.task();
      v.samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const cpu = process.cpuUsage(cpu0);
      v.runnerCpuUs += cpu.user + cpu.system;
      v.childCpuMs += childrenCpuMs() - child0;
    }
  }
  return variants.map((v) => {
    const s = [...v.samples].sort((a, b) => a - b);
    const pick = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
    return {
      name: v.name,
      p50: pick(0.5),
      p99: pick(0.99),
      mean: s.reduce((a, b) => a + b, 0) / s.length,
      runnerCpuMs: v.runnerCpuUs / 1000 / ITERATIONS,
      childCpuMs: v.childCpuMs / ITERATIONS,
    };
  });
}

function variant(name: string, task: () => Promise<void>): Variant {
  return { name, task, samples: [], runnerCpuUs: 0, childCpuMs: 0 };
}

const ws = mkdtempSync(join(tmpdir(), "mcpg-bench-"));
if (isRoot) chownSync(ws, 65534, 65534);
const sandbox = createSandbox({});
const launchersOnly = createSandbox({ preparedNamespaces: false });
await launchersOnly.readiness();
const ready = await sandbox.readiness();
if (!ready.ready) {
  console.error(`sandbox not ready: ${ready.problem}`);
  process.exit(1);
}

const bwrapArgs = [
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
  "/bin/true",
];

let sandboxChildCpu = 0;
/** How each measured task of a sandbox started (SandboxProcess.start). */
const starts = new Map<string, Map<string, number>>();
const sandboxTask = (name: string, sb: typeof sandbox) => async () => {
  const p = await sb.spawn(
    {
      command: "/bin/true",
      args: [],
      env: {},
      cwd: "",
      workspaceDir: ws,
      network: "none",
      timeoutMs: 10_000,
      limits: DEFAULT_SANDBOX_LIMITS,
    },
    { onOutput: () => {} },
  );
  const r = await p.result;
  if (r.status !== "completed" || r.exitCode !== 0)
    throw new Error(`sandbox run failed: ${r.message}`);
  if (sb === sandbox) sandboxChildCpu += r.usage.userCpuMs + r.usage.systemCpuMs;
  const tally = starts.get(name) ?? new Map<string, number>();
  tally.set(p.start ?? "?", (tally.get(p.start ?? "?") ?? 0) + 1);
  starts.set(name, tally);
};
const [bare, bwrap, sandboxed, launchers] = (await measure([
  variant("bare spawn(/bin/true)", () => runOnce("/bin/true", [])),
  variant("bare bwrap --unshare-all", () => runOnce("/usr/bin/bwrap", bwrapArgs)),
  variant("createSandbox /bin/true", sandboxTask("createSandbox /bin/true", sandbox)),
  variant("  launchers only", sandboxTask("  launchers only", launchersOnly)),
])) as [Stats, Stats, Stats, Stats];
await sandbox.close();
await launchersOnly.close();
rmSync(ws, { recursive: true, force: true });

const f = (n: number) => n.toFixed(2).padStart(8);
console.log(
  `sandbox benchmark: ${ITERATIONS} iterations each (+${WARMUP} warm-up), runner uid ${process.getuid?.()}, ${ready.bwrapVersion}`,
);
console.log(
  `${"".padEnd(28)}${"p50 ms".padStart(8)}${"p99 ms".padStart(8)}${"mean ms".padStart(8)}  runner CPU ms/task  child CPU ms/task`,
);
for (const s of [bare, bwrap, sandboxed, launchers]) {
  console.log(
    `${s.name.padEnd(28)}${f(s.p50)}${f(s.p99)}${f(s.mean)}  ${f(s.runnerCpuMs)}            ${f(s.childCpuMs)}`,
  );
}
console.log(
  `sandbox child CPU from getrusage (launcher-reported): ${f(sandboxChildCpu / ITERATIONS)} ms/task`,
);
const signed = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(2)}`;
for (const [name, tally] of starts) {
  console.log(
    `starts of ${name.trim()} (warm-up included): ${[...tally].map(([k, n]) => `${k} ${n}`).join(", ")}`,
  );
}
console.log(
  `ratios (p50): sandbox/bare-bwrap ${(sandboxed.p50 / bwrap.p50).toFixed(2)}x (${signed(sandboxed.p50 - bwrap.p50)} ms), ` +
    `launchers only/bare-bwrap ${(launchers.p50 / bwrap.p50).toFixed(2)}x (${signed(launchers.p50 - bwrap.p50)} ms), ` +
    `sandbox/bare-spawn ${(sandboxed.p50 / bare.p50).toFixed(2)}x, bare-bwrap/bare-spawn ${(bwrap.p50 / bare.p50).toFixed(2)}x`,
);
console.log(
  `target: sandbox p50 <= bare bwrap p50 + 5 ms -> ${sandboxed.p50 - bwrap.p50 <= 5 ? "MET" : "MISSED"}`,
);
// (issue 13: the sandbox's share of a task — what it adds to starting the command at all)
const share = sandboxed.p50 - bare.p50;
console.log(
  `target: the sandbox's share (sandbox p50 - bare spawn p50) <= 3 ms -> ${signed(share)} ms, ${share <= 3 ? "MET" : "MISSED"}`,
);
