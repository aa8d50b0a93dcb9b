import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Gateway, runCli, startGateway } from "./harness.js";

let gw: Gateway;
let env: Record<string, string>;

before(async () => {
  gw = await startGateway();
  env = {
    MCP_GATEWAY_URL: gw.url,
    MCP_GATEWAY_TOKEN: await gw.token("first-run", ["developer"]),
    MCP_GATEWAY_DATA_DIR: gw.dataDir,
  };
});
after(async () => {
  await gw?.stop();
});

describe("first run, as a new user meets it", () => {
  it("a second gateway on a taken port exits non-zero, naming the port and how to choose another", async () => {
    const port = new URL(gw.url).port;
    // `npm start` runs `mcp-gateway dev`: its runner starts first on a free port, then the edge
    // finds the public port taken. The process must exit, not stay alive with its runner.
    const r = await runCli(["dev", "--port", port], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    assert.match(r.stderr, new RegExp(`npm start -- --port ${Number(port) + 1}`));
    assert.doesNotMatch(r.stderr, /^listen EADDRINUSE/m);
  });

  it("a second edge on a taken port says the same for `mcp-gateway edge`", async () => {
    const port = new URL(gw.url).port;
    const r = await runCli(["edge", "--port", port, "--runner", `r=${gw.runnerUrl}`], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /already in use.*mcp-gateway edge --port \d+/);
  });

  it("a config file that is not JSON says so without quoting its text", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mcp-bad-config-"));
    try {
      const file = join(dir, "edge.json");
      // A secret next to the syntax error: V8's own message would quote it.
      writeFileSync(file, '{"databaseUrl": postgres://gw:hunter2@db/gateway}');
      const r = await runCli(["edge", "--config", file], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /is not a JSON object \(Unexpected token 'p'\)/);
      assert.doesNotMatch(r.stderr, /hunter2/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("exec puts its [mcp] lines on their own line after output lacking a final newline", async () => {
    const r = await runCli(
      ["exec", "--timeout", "1", "--", "sh", "-c", "printf partial >&2; sleep 10"],
      env,
    );
    assert.equal(r.code, 124, r.stderr);
    assert.match(r.stderr, /^\[mcp\] task-[0-9a-f-]{36}\n/);
    assert.match(r.stderr, /\npartial\n\[mcp\] task timed_out/);
  });
});
