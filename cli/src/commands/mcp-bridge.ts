import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  InitializeResultSchema,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type JSONRPCMessage,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";
import { parse } from "../args.js";
import { resolveToken } from "./client.js";

const HELP = `mcp-gateway mcp [--url http(s)://edge:8081] [--token t]

Runs a stdio MCP server that forwards every message to the gateway's /mcp
endpoint with your token, for MCP clients that only launch local commands.
The token comes from --token, $MCP_GATEWAY_TOKEN, or (local dev gateway) a
dev token minted from the dev signing key and renewed before it expires.
`;

/** How long a minted dev token is used before a fresh one is minted, ms. */
const DEV_TOKEN_REUSE_MS = 5 * 60 * 1000;

/**
 * `mcp-gateway mcp`: a stdio ↔ Streamable HTTP bridge. Messages pass through
 * unchanged in both directions (progress, cancellation and errors included);
 * the bridge only adds the `Authorization` header. Requests the gateway
 * cannot take (unreachable, 401, 5xx) get a JSON-RPC error back on stdio, so
 * the client never waits for an answer that will not come.
 */
export async function mcpCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { url: { type: "string" }, token: { type: "string" }, help: { type: "boolean", short: "h" } },
    false,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const base = values.url ?? process.env.MCP_GATEWAY_URL ?? "http://127.0.0.1:8081";
  const endpoint = new URL("/mcp", base);
  const fixed = values.token ?? process.env.MCP_GATEWAY_TOKEN;
  let minted: { token: string; at: number } | undefined;
  const token = async (): Promise<string | undefined> => {
    if (fixed) return fixed;
    if (!minted || Date.now() - minted.at > DEV_TOKEN_REUSE_MS) {
      const t = await resolveToken(undefined);
      minted = t ? { token: t, at: Date.now() } : undefined;
    }
    return minted?.token;
  };

  const http = new StreamableHTTPClientTransport(endpoint, {
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      const t = await token();
      if (t) headers.set("authorization", `Bearer ${t}`);
      return fetch(input, { ...init, headers });
    },
  });
  const stdio = new StdioServerTransport();
  const initializing = new Set<RequestId>();

  const fail = (id: RequestId, err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    void stdio.send({
      jsonrpc: "2.0",
      id,
      error: { code: -32603, message: `mcp-gateway bridge: ${message}` },
    });
  };

  stdio.onmessage = (msg: JSONRPCMessage) => {
    if (isJSONRPCRequest(msg) && msg.method === "initialize") initializing.add(msg.id);
    http.send(msg).catch((err: unknown) => {
      process.stderr.write(`mcp-gateway mcp: ${err instanceof Error ? err.message : err}\n`);
      if (isJSONRPCRequest(msg)) fail(msg.id, err);
    });
  };
  http.onmessage = (msg: JSONRPCMessage) => {
    if (isJSONRPCResultResponse(msg) && initializing.delete(msg.id)) {
      const init = InitializeResultSchema.safeParse(msg.result);
      if (init.success) http.setProtocolVersion(init.data.protocolVersion);
    }
    void stdio.send(msg);
  };
  http.onerror = (err) => process.stderr.write(`mcp-gateway mcp: ${err.message}\n`);

  const closed = new Promise<void>((resolve) => {
    stdio.onclose = () => resolve();
    process.stdin.once("end", () => resolve());
  });
  await http.start();
  await stdio.start();
  process.stderr.write(`mcp-gateway mcp: forwarding stdio to ${endpoint.href}\n`);
  await closed;
  await http.close().catch(() => undefined);
  return 0;
}
