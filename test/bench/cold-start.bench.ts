/**
 * Cold start benchmark of the release build (dist/release/mcp-gateway-<version>-linux-<arch>/,
 * made by `npm run build`), with baselines measured in the same run, round-robin so machine load
 * hits every case alike:
 *
 *   - `node -e 0`: the floor, Node's own start-up;
 *   - CLI `--help` from the release (node dist/mcp-gateway.mjs --help), and from the sources
 *     through tsx (cli/bin/mcp-gateway.js, development) for comparison;
 *   - edge ready: from exec of `node dist/edge.mjs` until GET /health/ready answers 200, with the
 *     embedded SQLite store (its data directory already initialised, as on a restart or a
 *     scale-from-zero start) and a runner already listening (the edge probes it before ready).
 *     The same from the sources through tsx, for comparison.
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

/** Milliseconds from spawn until the process exits (code 0 required). */
function timeExit(args: string[]): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolvePromise(ms);
      else reject(new Error(`${args.join(" ")} exited ${code}: ${err}`));
    });
  });
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

/** Milliseconds from spawn of an edge until /health/ready answers 200. */
async function timeEdgeReady(
  args: string[],
  env: NodeJS.ProcessEnv,
  runnerUrl: string,
): Promise<number> {
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
      if (ok) return performance.now() - t0;
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
  if (!existsSync(join(RELEASE, "dist", "edge.mjs"))) {
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
  const releaseEdge = [join(RELEASE, "dist", "edge.mjs")];
  const tsxEdge = [TSX_CLI, "edge"];
  const cases: Array<{ name: string; run: () => Promise<number>; target?: number }> = [
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
    { name: "edge ready, SQLite (tsx, dev)", run: () => timeEdgeReady(tsxEdge, env, runnerUrl) },
  ];
  const samples = cases.map(() => [] as number[]);
  try {
    // One warm-up round: the first edge start creates the data directory's keys and store.
    for (const c of cases) await c.run();
    const before = loadavg()[0]?.toFixed(2);
    for (let i = 0; i < RUNS; i++) {
      for (const [k, c] of cases.entries()) samples[k]?.push(await c.run());
    }
    const after = loadavg()[0]?.toFixed(2);
    const baseline = quantile(
      [...(samples[0] ?? [])].sort((a, b) => a - b),
      0.5,
    );
    console.log(`cold start, ${RUNS} runs per case, load average ${before} → ${after}`);
    console.log(`node ${process.version}, ${arch()}, release ${RELEASE.replace(`${ROOT}/`, "")}`);
    console.log("| case | p50 ms | p99 ms | p50 − node -e 0 | target |");
    console.log("|---|---:|---:|---:|---|");
    for (const [k, c] of cases.entries()) {
      const s = [...(samples[k] ?? [])].sort((a, b) => a - b);
      const p50 = quantile(s, 0.5);
      const p99 = quantile(s, 0.99);
      const verdict =
        c.target === undefined ? "" : `≤ ${c.target} ms: ${p50 <= c.target ? "met" : "MISSED"}`;
      console.log(
        `| ${c.name} | ${p50.toFixed(0)} | ${p99.toFixed(0)} | +${(p50 - baseline).toFixed(0)} | ${verdict} |`,
      );
    }
  } finally {
    await stop(runner.child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
