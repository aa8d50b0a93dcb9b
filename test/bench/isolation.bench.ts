/**
 * Cost of the resource-isolation layers, measured in the same run (round-robin, so machine load
 * hits both variants alike):
 *   1. per task: a sandboxed `true` with per-task cgroups (create, place, read, remove) vs
 *      without (cgroups: "off");
 *   2. per workspace: creating a quota'd workspace (sparse image, mkfs.ext4, loop mount) vs a
 *      plain directory, and what a task in it costs afterwards (nothing: it is a mount).
 *
 *   node --import tsx test/bench/isolation.bench.ts [ITERATIONS]   (npm run bench:isolation)
 *
 * Needs root (cgroups, loop mounts), like CI.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  createSandbox,
  DEFAULT_SANDBOX_LIMITS,
  type Sandbox,
} from "../../runner/src/sandbox/index.js";
import { createWorkspaceFs, createWorkspaceQuota } from "../../runner/src/workspace/index.js";

const ITERATIONS = Number(process.argv[2] ?? 100);
const WARMUP = 10;

function stats(samples: number[]): { p50: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
  return { p50: at(50), p99: at(99), mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) };
}

async function runTrue(sandbox: Sandbox, ws: string): Promise<number> {
  const t0 = performance.now();
  const p = await sandbox.spawn(
    {
      command: "true",
      args: [],
      env: {},
      cwd: "",
      workspaceDir: ws,
      network: "none",
      timeoutMs: 10_000,
      limits: DEFAULT_SANDBOX_LIMITS,
    },
    { onOutput: () => undefined },
  );
  const r = await p.result;
  if (r.status !== "completed" || r.exitCode !== 0) throw new Error(`task failed: ${r.message}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (cgroups, loop mounts)");
  const base = mkdtempSync(join(tmpdir(), "mcpg-isolation-bench-"));
  chmodSync(base, 0o711);
  const ws = join(base, "ws");
  mkdirSync(ws, { mode: 0o700 });
  chownSync(ws, 65534, 65534);
  const load0 = loadavg()[0] ?? 0;

  // 1. per task
  const withCg = createSandbox({});
  const withoutCg = createSandbox({ cgroups: "off" });
  const layers = (await withCg.readiness()).limitLayers;
  if (!layers.some((l) => l.endsWith("-memory"))) throw new Error(`no cgroups: ${layers}`);
  await withoutCg.readiness();
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    const a = await runTrue(withCg, ws);
    const b = await runTrue(withoutCg, ws);
    if (i >= WARMUP) {
      on.push(a);
      off.push(b);
    }
  }
  await withCg.close();

  // 2. per workspace
  const quotaRoot = join(base, "q");
  const plainRoot = join(base, "p");
  const quota = createWorkspaceQuota({
    mode: "loop-image",
    bytes: 1024 * 1024 * 1024,
    inodes: 100_000,
    imageDir: join(base, "images"),
    uid: 65534,
    gid: 65534,
  });
  const qfs = createWorkspaceFs({ root: quotaRoot, maxReadBytes: 1, maxWriteBytes: 1, quota });
  const pfs = createWorkspaceFs({ root: plainRoot, maxReadBytes: 1, maxWriteBytes: 1 });
  const createQ: number[] = [];
  const createP: number[] = [];
  const taskQ: number[] = [];
  const n = Math.min(30, ITERATIONS);
  for (let i = 0; i < n; i++) {
    let t0 = performance.now();
    const qdir = await qfs.ensure(`w${i}`);
    createQ.push(performance.now() - t0);
    t0 = performance.now();
    await pfs.ensure(`w${i}`);
    createP.push(performance.now() - t0);
    taskQ.push(await runTrue(withoutCg, qdir));
  }
  const again: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await qfs.ensure(`w${i}`);
    again.push(performance.now() - t0);
  }
  await quota.detachAll();
  const remount: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await qfs.ensure(`w${i}`);
    remount.push(performance.now() - t0);
  }
  await quota.detachAll();
  const { execFileSync } = await import("node:child_process");
  const diskKiB = Number(
    execFileSync("du", ["-sk", join(base, "images")])
      .toString()
      .split("\t")[0],
  );
  rmSync(base, { recursive: true, force: true });
  const load1 = loadavg()[0] ?? 0;

  const row = (name: string, s: number[]) => {
    const x = stats(s);
    console.log(
      `${name.padEnd(44)} p50 ${x.p50.toFixed(1).padStart(7)} ms  p99 ${x.p99.toFixed(1).padStart(7)} ms  mean ${x.mean.toFixed(1).padStart(7)} ms`,
    );
  };
  console.log(
    `isolation bench: ${ITERATIONS} tasks per variant, ${n} workspaces; load average ${load0.toFixed(2)} → ${load1.toFixed(2)}; layers ${layers.join(",")}`,
  );
  row("task `true`, cgroups off", off);
  row("task `true`, per-task cgroups", on);
  console.log(
    `  → per-task cgroups add ${(stats(on).p50 - stats(off).p50).toFixed(1)} ms at p50 (×${(stats(on).p50 / stats(off).p50).toFixed(2)})`,
  );
  row("workspace create, plain directory", createP);
  row("workspace create, 1 GiB/100k-inode image", createQ);
  row("workspace ensure, already mounted", again);
  row("workspace ensure, mount after restart", remount);
  row("task `true` in a quota'd workspace", taskQ);
  console.log(`disk used by ${n} fresh 1 GiB images (sparse): ${(diskKiB / 1024).toFixed(1)} MiB`);
}

await main();
