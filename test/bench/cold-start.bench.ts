/**
 * Cold start benchmark of the release build (dist/release/mcp-gateway-<version>-linux-<arch>/,
 * made by `npm run build`), with baselines measured in the same run, round-robin so machine load
 * hits every case alike:
 *
 *   - `node -e 0`: the floor, Node's own start-up;
 *   - CLI `--help` from the release (node dist/mcp-gateway.mjs --help), and from the sources
 *     through tsx (cli/bin/mcp-gateway.js, development) for comparison;
 *   - edge ready: from exec of `node dist/edge.cjs` until GET /health/ready answers 200, with the
 *     embedded SQLite store (its data directory already initialised, as on a restart or a
 *     scale-from-zero start) and a runner already listening (the edge probes it before ready).
 *     The same without the V8 code cache (MCP_GATEWAY_CODE_CACHE=off; ADR 0021) and from the
 *     sources through tsx, for comparison.
 *
 * Targets (issue 17): edge ready ≤ 300 ms, CLI --help ≤ 150 ms. Printed, not asserted.
 *
 *   npm run bench:cold-start            (BENCH_RUNS=20 for more samples)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { arch, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..", "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
).version;
const RELEASE = join(ROOT, "dist", "release", `mcp-gateway-${VERSION}-linux-${arch()}`);
const TSX_CLI = join(ROOT, "cli", "bin", "mcp-gateway.js");
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

/** One measurement: wall-clock ms, and CPU ms (user + system) the process used. */
interface Sample {
  wall: number;
  cpu: number;
}

/**
 * Wall-clock ms from spawn until the process exits (code 0 required), and its CPU time
 * (GNU time's user + system, 10 ms resolution): CPU time hardly depends on the machine's load,
 * wall time does.
 */
function timeExit(args: string[]): Promise<Sample> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn("/usr/bin/time", ["-f", "cpu %U %S", process.execPath, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => {
      const wall = performance.now() - t0;
      const m = err.match(/cpu ([\d.]+) ([\d.]+)\s*$/);
      if (code === 0 && m) resolvePromise({ wall, cpu: (Number(m[1]) + Number(m[2])) * 1000 });
      else reject(new Error(`${args.join(" ")} exited ${code}: ${err}`));
    });
  });
}

/** CPU ms (user + system) a running process has used so far, from /proc/<pid>/stat. */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5); fields[] starts at field 3.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Starts a long-running process; resolves once its stderr matches `ready`. */
function startUntil(
  args: string[],
  ready: RegExp,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      const m = err.match(ready);
      if (m) resolvePromise({ child, match: m });
    });
    child.on("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}:\n${err}`)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** Milliseconds from spawn of an edge until /health/ready answers 200, and its CPU ms by then. */
async function timeEdgeReady(
  args: string[],
  env: NodeJS.ProcessEnv,
  runnerUrl: string,
): Promise<Sample> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      ...args,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--runner",
      `runner-local=${runnerUrl}`,
    ],
    { env, stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`edge exited ${child.exitCode}:\n${err}`);
      if (performance.now() - t0 > 30_000) throw new Error(`edge not ready in 30 s:\n${err}`);
      const ok = await fetch(`http://127.0.0.1:${port}/health/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return { wall: performance.now() - t0, cpu: cpuOf(child.pid as number) };
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    await stop(child);
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  if (!existsSync(join(RELEASE, "dist", "edge.cjs"))) {
    throw new Error(`${RELEASE} is missing: run npm run build first`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "mcp-coldstart-"));
  chmodSync(dataDir, 0o711);
  const env = { ...process.env, MCP_GATEWAY_DATA_DIR: dataDir, MCP_GATEWAY_LOG_LEVEL: "warn" };
  const runner = await startUntil(
    [join(RELEASE, "dist", "runner.mjs"), "--port", "0", "--id", "runner-local"],
    /listening on (https:\/\/\S+)/,
    env,
  );
  const runnerUrl = runner.match[1] as string;
  const releaseEdge = [join(RELEASE, "dist", "edge.cjs")];
  const tsxEdge = [TSX_CLI, "edge"];
  const cases: Array<{ name: string; run: () => Promise<Sample>; target?: number }> = [
    { name: "node -e 0 (baseline)", run: () => timeExit(["-e", "0"]) },
    {
      name: "CLI --help (release)",
      run: () => timeExit([join(RELEASE, "dist", "mcp-gateway.mjs"), "--help"]),
      target: 150,
    },
    { name: "CLI --help (tsx, dev)", run: () => timeExit([TSX_CLI, "--help"]) },
    {
      name: "edge ready, SQLite (release)",
      run: () => timeEdgeReady(releaseEdge, env, runnerUrl),
      target: 300,
    },
    {
      name: "edge ready, SQLite (release, code cache off)",
      run: () => timeEdgeReady(releaseEdge, { ...env, MCP_GATEWAY_CODE_CACHE: "off" }, runnerUrl),
    },
    { name: "edge ready, SQLite (tsx, dev)", run: () => timeEdgeReady(tsxEdge, env, runnerUrl) },
  ];
  const samples = cases.map(() => [] as Sample[]);
  try {
    // One warm-up round: the first edge start creates the data directory's keys and store.
    for (const c of cases) await c.run();
    const before = loadavg()[0]?.toFixed(2);
    for (let i = 0; i < RUNS; i++) {
      for (const [k, c] of cases.entries()) samples[k]?.push(await c.run());
    }
    const after = loadavg()[0]?.toFixed(2);
    const stat = (k: number, key: keyof Sample, q: number) =>
      quantile(
        (samples[k] ?? []).map((x) => x[key]).sort((a, b) => a - b),
        q,
      );
    const baseWall = stat(0, "wall", 0.5);
    const baseCpu = stat(0, "cpu", 0.5);
    console.log(`cold start, ${RUNS} runs per case, load average ${before} → ${after}`);
    console.log(`node ${process.version}, ${arch()}, release ${RELEASE.replace(`${ROOT}/`, "")}`);
    console.log(
      "| case | wall p50 ms | wall p99 ms | wall p50 − node -e 0 | CPU p50 ms | CPU p50 − node -e 0 | target (wall) |",
    );
    console.log("|---|---:|---:|---:|---:|---:|---|");
    for (const [k, c] of cases.entries()) {
      const p50 = stat(k, "wall", 0.5);
      const verdict =
        c.target === undefined ? "" : `≤ ${c.target} ms: ${p50 <= c.target ? "met" : "missed"}`;
      console.log(
        `| ${c.name} | ${p50.toFixed(0)} | ${stat(k, "wall", 0.99).toFixed(0)} | +${(p50 - baseWall).toFixed(0)} | ${stat(k, "cpu", 0.5).toFixed(0)} | +${(stat(k, "cpu", 0.5) - baseCpu).toFixed(0)} | ${verdict} |`,
      );
    }
  } finally {
    await stop(runner.child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
