/**
 * The edge without the command dispatch: `mcp-gateway edge [edge flags…]`. The release build
 * bundles it into one CommonJS file (dist/edge-main.cjs) that ./edge-start.ts runs with V8's
 * code cache; hence no top-level await here.
 */
import { runMain } from "../main.js";

void runMain(["edge", ...process.argv.slice(2)]);
