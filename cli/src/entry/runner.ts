/**
 * Entry point of the bundled runner (dist/runner.mjs): `node dist/runner.mjs [runner flags…]`
 * is `mcp-gateway runner [runner flags…]` without the command dispatch.
 */
import { runMain } from "../main.js";

await runMain(["runner", ...process.argv.slice(2)]);
