/**
 * Entry point of the release edge (dist/edge.cjs): `node dist/edge.cjs [edge flags…]` is
 * `mcp-gateway edge [edge flags…]`. It runs the edge's one-file CommonJS bundle
 * (dist/edge-main.cjs, built from ./edge.ts) through V8's code cache (./code-cache.ts).
 * `MCP_GATEWAY_CODE_CACHE_STATUS=1` prints whether the cache was used, to stderr.
 */
import { join } from "node:path";
import { runWithCodeCache } from "./code-cache.js";

const status = runWithCodeCache(join(__dirname, "edge-main.cjs"));
if (process.env.MCP_GATEWAY_CODE_CACHE_STATUS === "1") {
  process.stderr.write(`code cache: ${status.cache}\n`);
}
