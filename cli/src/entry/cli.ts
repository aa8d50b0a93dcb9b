/**
 * Entry point of the bundled `mcp-gateway` command (dist/mcp-gateway.mjs, built by
 * scripts/build/bundle.ts). Development runs cli/bin/mcp-gateway.js through tsx instead.
 */
import { runMain } from "../main.js";

await runMain(process.argv.slice(2));
