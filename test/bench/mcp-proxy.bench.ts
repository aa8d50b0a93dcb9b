/**
 * MCP proxy overhead benchmark: `tools/call echo` on @modelcontextprotocol/server-everything
 * (Streamable HTTP, a remote upstream on loopback)
 *   1. directly, with the SDK client;
 *   2. through a bare Node HTTP forwarder (kept-alive, piped; no auth, policy, audit): the
 *      cost of one more HTTP hop on this machine, the floor of any proxy;
 *   3. through the gateway's /mcp as `everything__echo` (authenticated, pinned definition
 *      checked, decided by policy on the arguments, audited before and after, then forwarded);
 * round-robin in one run after a warm-up. Prints p50/p99 and the difference.
 *
 *   node --import tsx test/bench/mcp-proxy.bench.ts [ITERATIONS]   (npm run bench:mcp-proxy)
 *
 * Target (issue 14): the gateway adds ≤ 2 ms p50 for a remote upstream.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startGateway } from "../integration/harness.js";
import { freePort, startEverything } from "../integration/helpers/everything.js";

const ITERATIONS = Number(process.argv[2] ?? 300);
const WARMUP = 30;

/** User + system CPU time of a process so far, ms (from /proc, 10 ms ticks). */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/**
 * The floor of any proxy on this machine: a bare Node HTTP forwarder (kept-alive sockets, the
 * request and answer piped through; no authentication, policy, audit or MCP parsing).
 */
async function startForwarder(target: URL): Promise<http.Server> {
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers, host: target.host };
    const up = http.request(target, { method: req.method, headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.setNoDelay(true);
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  server.on("connection", (socket) => socket.setNoDelay(true));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

const port = await freePort();
const everything = await startEverything(port);
const forwarder = await startForwarder(new URL(`http://127.0.0.1:${port}/mcp`));
const dir = mkdtempSync(join(tmpdir(), "mcp-proxy-bench-"));
const config = join(dir, "edge.json");
writeFileSync(
  config,
  JSON.stringify({
    // The benchmark measures the proxy path, not the per-principal rate limit.
    rateLimit: { ratePerSecond: 100_000, burst: 100_000 },
    mcp: { upstreams: [{ name: "everything", kind: "http", url: `http://127.0.0.1:${port}/mcp` }] },
  }),
);
const gw = await startGateway({
  edgeArgs: ["--config", config],
  ...(process.env.BENCH_CPU_PROF
    ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] }
    : {}),
});
try {
  const token = await gw.token("bench-proxy", ["developer"]);
  const direct = new Client({ name: "bench-direct", version: "1" });
  await direct.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
  const forwarded = new Client({ name: "bench-forwarded", version: "1" });
  await forwarded.connect(
    new StreamableHTTPClientTransport(
      new URL(`http://127.0.0.1:${(forwarder.address() as AddressInfo).port}/mcp`),
    ),
  );
  const proxied = new Client({ name: "bench-proxied", version: "1" });
  await proxied.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  await proxied.listTools();
  const variants = [
    {
      name: "direct: server-everything echo",
      run: () => direct.callTool({ name: "echo", arguments: { message: "hi" } }),
      samples: [] as number[],
    },
    {
      name: "through a bare Node HTTP forwarder (the floor of any proxy here)",
      run: () => forwarded.callTool({ name: "echo", arguments: { message: "hi" } }),
      samples: [] as number[],
    },
    {
      name: "through the gateway: everything__echo",
      run: () => proxied.callTool({ name: "everything__echo", arguments: { message: "hi" } }),
      samples: [] as number[],
    },
  ];
  for (let i = 0; i < WARMUP; i++) for (const v of variants) await v.run();
  const load = loadavg()[0]?.toFixed(2);
  const edgeCpu0 = cpuMs(gw.edge.child.pid);
  for (let i = 0; i < ITERATIONS; i++) {
    for (const v of variants) {
      const t0 = performance.now();
      const r = await v.run();
      v.samples.push(performance.now() - t0);
      if (r.isError) throw new Error(`${v.name}: ${JSON.stringify(r.content)}`);
    }
  }
  // The edge's CPU per proxied call (the direct calls do not reach it), less noisy than wall
  // time on a shared machine; it includes the edge's idle work (~15 ms/s: runner probes, GC).
  const edgeCpu = (cpuMs(gw.edge.child.pid) - edgeCpu0) / ITERATIONS;
  await direct.close();
  await forwarded.close();
  await proxied.close();
  const rows = variants.map((v) => {
    const s = [...v.samples].sort((a, b) => a - b);
    return { name: v.name, p50: pct(s, 50), p99: pct(s, 99) };
  });
  console.log(`\nMCP proxy overhead, tools/call echo, ${ITERATIONS} each, load avg ${load}\n`);
  console.log("| path | p50 ms | p99 ms |");
  console.log("| --- | --- | --- |");
  for (const r of rows) console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
  const [base, floor, gwRow] = rows;
  if (base && floor && gwRow) {
    const d = gwRow.p50 - base.p50;
    console.log(
      `\nadded by the gateway p50: +${d.toFixed(2)} ms (ratio ${(gwRow.p50 / base.p50).toFixed(2)}×); target ≤ +2 ms: ${d <= 2 ? "met" : "NOT met"}`,
    );
    console.log(
      `added by a bare forwarder p50: +${(floor.p50 - base.p50).toFixed(2)} ms; the gateway's own work (gateway − forwarder): +${(gwRow.p50 - floor.p50).toFixed(2)} ms`,
    );
    console.log(`edge CPU per proxied call: ${edgeCpu.toFixed(2)} ms (user + system)`);
  }
} finally {
  everything.kill("SIGKILL");
  forwarder.closeAllConnections();
  forwarder.close();
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
}
