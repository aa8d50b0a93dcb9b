/**
 * The conformance server scenarios against @modelcontextprotocol/server-everything
 * twice in one run: directly, and as an upstream of the gateway (its tools
 * offered as `everything__<tool>` on /mcp). Every scenario that passes
 * directly must pass through the gateway, except the gaps listed with their
 * reasons in test/conformance/proxy-gaps.yml (the run fails on any other
 * difference, and when a listed gap no longer is one).
 *
 * Usage: node --import tsx test/conformance/proxy-conformance.ts
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startGateway } from "../integration/harness.js";
import { freePort, startEverything } from "../integration/helpers/everything.js";
import { requireSuite, runSuite, tokenProxy } from "./suite.js";

requireSuite();

/** The gaps file: `- scenario # reason` lines. */
function gaps(): Map<string, string> {
  const text = readFileSync(join(ROOT, "test", "conformance", "proxy-gaps.yml"), "utf8");
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^\s*-\s*([\w-]+)\s*#\s*(.+)$/gm))
    out.set(m[1] as string, m[2] as string);
  return out;
}

const port = await freePort();
const everything = await startEverything(port);
const dir = mkdtempSync(join(tmpdir(), "mcp-proxy-conformance-"));
const config = join(dir, "edge.json");
writeFileSync(
  config,
  JSON.stringify({
    // Unprefixed (namespace: false), so the suite finds its fixture tools by their own names.
    mcp: {
      upstreams: [
        {
          name: "everything",
          kind: "http",
          url: `http://127.0.0.1:${port}/mcp`,
          namespace: false,
        },
      ],
    },
  }),
);
let failed = false;
const gw = await startGateway({ edgeArgs: ["--config", config] });
try {
  process.stdout.write("\n=== directly against server-everything ===\n");
  const direct = await runSuite(`http://127.0.0.1:${port}/mcp`);
  const token = await gw.token("conformance", ["developer"]);
  const proxy = await tokenProxy(new URL(gw.url), token);
  const proxied = (proxy.address() as AddressInfo).port;
  process.stdout.write("\n=== through the gateway (server-everything as an upstream) ===\n");
  const through = await runSuite(`http://127.0.0.1:${proxied}/mcp`);
  proxy.close();

  const known = gaps();
  const lost: string[] = [];
  const closed: string[] = [];
  for (const [scenario, ok] of direct.passed) {
    if (!ok) continue;
    const viaGateway = through.passed.get(scenario) === true;
    if (!viaGateway && !known.has(scenario)) lost.push(scenario);
    if (viaGateway && known.has(scenario)) closed.push(scenario);
  }
  for (const scenario of known.keys()) {
    if (direct.passed.get(scenario) !== true)
      closed.push(`${scenario} (no longer passes directly)`);
  }
  const passedDirect = [...direct.passed.values()].filter(Boolean).length;
  const passedThrough = [...through.passed.values()].filter(Boolean).length;
  process.stdout.write(
    `\nproxy conformance: ${passedDirect} scenarios pass directly, ${passedThrough} through the gateway; ${known.size} known gaps (test/conformance/proxy-gaps.yml)\n`,
  );
  if (direct.passed.size === 0 || through.passed.size === 0) {
    process.stdout.write("proxy conformance: the suite reported no scenarios\n");
    failed = true;
  }
  if (lost.length > 0) {
    process.stdout.write(`proxy conformance: the gateway adds failures: ${lost.join(", ")}\n`);
    failed = true;
  }
  if (closed.length > 0) {
    process.stdout.write(
      `proxy conformance: listed gaps that are not gaps (update the file): ${closed.join(", ")}\n`,
    );
    failed = true;
  }
} finally {
  everything.kill("SIGKILL");
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
