/**
 * Runs @modelcontextprotocol/conformance in server mode against the gateway's
 * /mcp endpoint (real edge + runner), with the committed baseline of expected
 * failures (test/conformance/expected-failures.yml, one reason per scenario).
 *
 * The suite's client sends no credentials, and the gateway has no way to turn
 * authentication off: a loopback proxy adds a developer's bearer token to each
 * request and passes everything else (Origin, Host, bodies, SSE streams)
 * through unchanged.
 *
 * Usage: node --import tsx test/conformance/mcp-conformance.ts [--scenario name]
 * Exits non-zero when a scenario fails that the baseline does not list, or a
 * listed one passes (the baseline must be kept exact).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startGateway } from "../integration/harness.js";

const TOOLS = join(ROOT, ".tools", "conformance", "node_modules");
const NODE22 = join(TOOLS, ".bin", "node");
const SUITE = join(TOOLS, "@modelcontextprotocol", "conformance", "dist", "index.js");
const BASELINE = join(ROOT, "test", "conformance", "expected-failures.yml");

if (!existsSync(NODE22) || !existsSync(SUITE)) {
  process.stderr.write("conformance suite missing: run bash scripts/install-conformance.sh\n");
  process.exit(1);
}

/** A loopback proxy to `target` that adds `Authorization: Bearer <token>`. */
function tokenProxy(target: URL, token: string): Promise<http.Server> {
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

const gw = await startGateway();
let code = 1;
try {
  const token = await gw.token("conformance", ["developer"]);
  const proxy = await tokenProxy(new URL(gw.url), token);
  const port = (proxy.address() as AddressInfo).port;
  const args = [
    SUITE,
    "server",
    "--url",
    `http://127.0.0.1:${port}/mcp`,
    "--expected-failures",
    BASELINE,
    ...process.argv.slice(2),
  ];
  // The suite writes results/ into its working directory: keep them out of the repository.
  const cwd = mkdtempSync(join(tmpdir(), "mcp-conformance-"));
  code = await new Promise<number>((resolve) => {
    const child = spawn(NODE22, args, { stdio: "inherit", cwd });
    child.on("close", (c) => resolve(c ?? 1));
  });
  rmSync(cwd, { recursive: true, force: true });
  proxy.close();
} finally {
  await gw.stop();
}
process.exit(code);
