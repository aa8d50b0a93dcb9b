/**
 * Writes the release edge's V8 code cache, dist/edge-main.cjs.v8cache (ADR 0021): starts
 * `node dist/edge.cjs` in a scratch data directory until it is listening, once to create the
 * directory's keys and store and once more with MCP_GATEWAY_WRITE_CODE_CACHE, so the cache holds
 * what a normal start and its first readiness probe compile (not the first start's key
 * generation), then stops it.
 *
 *   node --import tsx scripts/build/code-cache.ts [--dist dist]
 *
 * The cache is valid for the Node binary that ran this (V8 rejects it otherwise, and the edge
 * then compiles from source): the release tarball and the images ship with that Node.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

/** Starts the edge, waits for "edge listening", stops it with SIGTERM; rejects on failure. */
function startOnce(dist: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [join(dist, "edge.cjs"), "--host", "127.0.0.1", "--port", "0"],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    // The plain line on stderr, which carries the URL (the edge installs its signal handlers
    // before it starts, so SIGTERM after this line is a graceful shutdown).
    const listening = /^edge listening on (http:\/\/[^\s(]+)/m;
    let stopping = false;
    const onData = (d: Buffer) => {
      out += d.toString();
      const url = stopping ? undefined : listening.exec(out)?.[1];
      if (url) {
        stopping = true;
        // One readiness probe first, so the cache also holds the request path a first
        // /health/ready runs (not ready here: no runner; the answer does not matter).
        void fetch(`${url}/health/ready`)
          .then((r) => r.arrayBuffer())
          .catch(() => undefined)
          .finally(() => child.kill("SIGTERM"));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (stopping && code === 0) resolvePromise();
      else reject(new Error(`the edge did not start (exit ${code ?? signal}):\n${out}`));
    });
  });
}

/** Writes `<dist>/edge-main.cjs.v8cache`; resolves to its size in bytes. */
export async function writeEdgeCodeCache(dist: string): Promise<number> {
  const cache = join(dist, "edge-main.cjs.v8cache");
  rmSync(cache, { force: true });
  const dataDir = mkdtempSync(join(tmpdir(), "mcp-code-cache-"));
  chmodSync(dataDir, 0o711);
  try {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dataDir,
      MCP_GATEWAY_DATA_DIR: dataDir,
      MCP_GATEWAY_LOG_LEVEL: "info",
    };
    await startOnce(dist, env);
    await startOnce(dist, { ...env, MCP_GATEWAY_WRITE_CODE_CACHE: cache });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (!existsSync(cache)) throw new Error(`${cache} was not written`);
  return statSync(cache).size;
}

if (import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({ options: { dist: { type: "string" } } });
  const dist = resolve(values.dist ?? join(import.meta.dirname, "..", "..", "dist"));
  const size = await writeEdgeCodeCache(dist);
  process.stderr.write(
    `code cache: wrote ${join(dist, "edge-main.cjs.v8cache")} (${size} bytes)\n`,
  );
}
