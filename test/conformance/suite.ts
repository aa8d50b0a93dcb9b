/**
 * Shared pieces of the MCP conformance runs: where the suite and its Node 22
 * live, a loopback proxy that adds a bearer token (the suite's client sends
 * none, and the gateway cannot turn authentication off), and a runner that
 * returns the per-scenario results.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../integration/harness.js";

const TOOLS = join(ROOT, ".tools", "conformance", "node_modules");
const NODE22 = join(TOOLS, ".bin", "node");
const SUITE = join(TOOLS, "@modelcontextprotocol", "conformance", "dist", "index.js");

/** Fails loudly when scripts/install-conformance.sh has not run. */
export function requireSuite(): void {
  if (!existsSync(NODE22) || !existsSync(SUITE)) {
    process.stderr.write("conformance suite missing: run bash scripts/install-conformance.sh\n");
    process.exit(1);
  }
}

/** A loopback proxy to `target` that adds `Authorization: Bearer <token>` and passes the rest. */
export function tokenProxy(target: URL, token: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${token}` };
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on("error", () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Result of one suite run: exit code, output, and per scenario whether it passed. */
export interface SuiteRun {
  code: number;
  output: string;
  passed: Map<string, boolean>;
}

/**
 * Runs `conformance server --url <url> [...args]` on Node 22 in a scratch
 * directory (the suite writes results/ into its working directory), echoing
 * its output, and parses the summary lines ("✓ name: 1 passed, 0 failed").
 */
export async function runSuite(url: string, args: string[] = []): Promise<SuiteRun> {
  const cwd = mkdtempSync(join(tmpdir(), "mcp-conformance-"));
  let output = "";
  const code = await new Promise<number>((resolve) => {
    const child = spawn(NODE22, [SUITE, "server", "--url", url, ...args], {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const echo = (d: Buffer) => {
      output += d.toString();
      process.stdout.write(d);
    };
    child.stdout.on("data", echo);
    child.stderr.on("data", echo);
    child.on("close", (c) => resolve(c ?? 1));
  });
  rmSync(cwd, { recursive: true, force: true });
  const passed = new Map<string, boolean>();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes in the suite's output
  const plain = output.replace(/\u001b\[[0-9;]*m/g, "");
  for (const m of plain.matchAll(/^([✓✗]) ([\w-]+): (\d+) passed, (\d+) failed/gm)) {
    passed.set(m[2] as string, m[1] === "✓" && m[4] === "0");
  }
  return { code, output, passed };
}
