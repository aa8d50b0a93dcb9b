#!/usr/bin/env node
// Entry point of the mcp-gateway CLI. The sources are TypeScript run through
// tsx's loader (see docs/adr/0002-typescript-at-runtime.md).
import { register } from "tsx/esm/api";

register();
const { runMain } = await import("../src/main.ts");
await runMain(process.argv.slice(2));
