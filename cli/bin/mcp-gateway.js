#!/usr/bin/env node
// Entry point of the mcp-gateway CLI. The sources are TypeScript run through
// tsx's loader (see docs/adr/0002-typescript-at-runtime.md).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
process.exitCode = await main(process.argv.slice(2));
