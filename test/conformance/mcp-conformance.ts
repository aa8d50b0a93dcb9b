/**
 * Runs @modelcontextprotocol/conformance in server mode against the gateway's
 * /mcp endpoint (real edge + runner), with the committed baseline of expected
 * failures (test/conformance/expected-failures.yml, one reason per scenario),
 * through a loopback proxy that adds a developer's token (see suite.ts).
 *
 * Usage: node --import tsx test/conformance/mcp-conformance.ts [--scenario name]
 * Exits non-zero when a scenario fails that the baseline does not list, or a
 * listed one passes (the baseline must be kept exact).
 */
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { ROOT, startGateway } from "../integration/harness.js";
import { requireSuite, runSuite, tokenProxy } from "./suite.js";

requireSuite();
const gw = await startGateway();
let code = 1;
try {
  const token = await gw.token("conformance", ["developer"]);
  const proxy = await tokenProxy(new URL(gw.url), token);
  const port = (proxy.address() as AddressInfo).port;
  const baseline = join(ROOT, "test", "conformance", "expected-failures.yml");
  ({ code } = await runSuite(`http://127.0.0.1:${port}/mcp`, [
    "--expected-failures",
    baseline,
    ...process.argv.slice(2),
  ]));
  proxy.close();
} finally {
  await gw.stop();
}
process.exit(code);
