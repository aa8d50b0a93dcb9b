/**
 * MCP overhead benchmark: a sandboxed `echo hi` end to end, through
 *   1. Connect JSON: ExecuteCommand, then StreamTaskOutput until the exit message
 *      (what an RPC client does: two calls, each authenticated, decided and audited);
 *   2. MCP: one `tools/call run_command` over Streamable HTTP (stateless, JSON response)
 *      with the official SDK client — one call, one decision;
 * against one real gateway (edge + runner, as `npm start` runs it), round-robin so
 * machine load hits both alike, after a warm-up. Prints p50/p99 and the difference.
 *
 *   node --import tsx test/bench/mcp.bench.ts [ITERATIONS]   (npm run bench:mcp)
 *
 * Target (issue 11): MCP adds ≤ 1 ms p50 over the Connect path.
 */
import { loadavg } from "node:os";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { McpService, OutputKind } from "@mcp-gateway/proto/mcp";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startGateway } from "../integration/harness.js";

const ITERATIONS = Number(process.argv[2] ?? 200);
const WARMUP = 20;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const gw = await startGateway({
  // The benchmark is not about the rate limit.
  env: {},
  edgeArgs: [],
});
try {
  // Distinct subjects so neither path meets the per-principal rate limit of the other.
  const rpcToken = await gw.token("bench-rpc", ["developer"]);
  const mcpToken = await gw.token("bench-mcp", ["developer"]);
  const rpc = createClient(
    McpService,
    createConnectTransport({
      baseUrl: gw.url,
      httpVersion: "1.1",
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${rpcToken}`);
          return next(req);
        },
      ],
    }),
  );
  const mcp = new Client({ name: "bench", version: "1.0.0" });
  await mcp.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${mcpToken}` } },
    }),
  );

  const viaConnect = async () => {
    const { taskId } = await rpc.executeCommand({ command: "echo", args: ["hi"] });
    let out = "";
    for await (const m of rpc.streamTaskOutput({ taskId })) {
      if (m.kind === OutputKind.STDOUT) out += Buffer.from(m.data).toString();
      if (m.kind === OutputKind.EXIT) break;
    }
    if (out !== "hi\n") throw new Error(`connect: unexpected output ${JSON.stringify(out)}`);
  };
  const viaMcp = async () => {
    const r = await mcp.callTool({
      name: "run_command",
      arguments: { command: "echo", args: ["hi"] },
    });
    const s = r.structuredContent as { stdout?: string } | undefined;
    if (s?.stdout !== "hi\n") throw new Error(`mcp: unexpected result ${JSON.stringify(r)}`);
  };

  const variants = [
    {
      name: "Connect: ExecuteCommand + StreamTaskOutput",
      run: viaConnect,
      samples: [] as number[],
    },
    { name: "MCP: tools/call run_command", run: viaMcp, samples: [] as number[] },
  ];
  for (let i = 0; i < WARMUP; i++) for (const v of variants) await v.run();
  const load = loadavg()[0]?.toFixed(2);
  // Rate limit (50/s per principal by default): stay under it.
  for (let i = 0; i < ITERATIONS; i++) {
    for (const v of variants) {
      const t0 = performance.now();
      await v.run();
      v.samples.push(performance.now() - t0);
    }
  }
  await mcp.close();

  const rows = variants.map((v) => {
    const s = [...v.samples].sort((a, b) => a - b);
    return { name: v.name, p50: pct(s, 50), p99: pct(s, 99) };
  });
  const [base, door] = rows;
  console.log(
    `\nMCP vs Connect, sandboxed echo end to end, ${ITERATIONS} each, load avg ${load}\n`,
  );
  console.log("| path | p50 ms | p99 ms |");
  console.log("| --- | --- | --- |");
  for (const r of rows) console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
  if (base && door) {
    const d = door.p50 - base.p50;
    console.log(
      `\nMCP − Connect p50: ${d >= 0 ? "+" : ""}${d.toFixed(2)} ms (ratio ${(door.p50 / base.p50).toFixed(2)}×); target ≤ +1 ms: ${d <= 1 ? "met" : "NOT met"}`,
    );
  }
} finally {
  await gw.stop();
}
