/**
 * Entry point of the bundled edge (dist/edge.mjs): `node dist/edge.mjs [edge flags…]` is
 * `mcp-gateway edge [edge flags…]` without the command dispatch.
 */
import { runMain } from "../main.js";

await runMain(["edge", ...process.argv.slice(2)]);
