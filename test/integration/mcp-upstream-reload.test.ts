import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { type Gateway, ROOT, runCli, startGateway } from "./harness.js";
import { freePort, startEverything } from "./helpers/everything.js";

/**
 * The upstream list changes without a restart: the edge's configuration file is edited and the
 * edge gets SIGHUP. An invalid file changes nothing; both outcomes are in the audit trail.
 */
let gw: Gateway;
let everything: ChildProcess;
/** A second server, for a changed address. */
let second: ChildProcess | undefined;
let url = "";
let config = "";
let dev = "";

function writeConfig(upstreams: unknown[]): void {
  writeFileSync(config, JSON.stringify({ mcp: { upstreams } }));
}

before(async () => {
  const port = await freePort();
  everything = await startEverything(port);
  url = `http://127.0.0.1:${port}/mcp`;
  const dir = join(ROOT, "node_modules", ".cache");
  mkdirSync(dir, { recursive: true });
  config = join(dir, `mcp-upstream-reload-${process.pid}.json`);
  writeConfig([{ name: "alpha", kind: "http", url }]);
  gw = await startGateway({ edgeArgs: ["--config", config] });
  dev = await gw.token("reload-dev", ["developer"]);
});

after(async () => {
  everything?.kill("SIGKILL");
  second?.kill("SIGKILL");
  await gw?.stop();
});

async function toolNames(): Promise<string[]> {
  const client = new Client({ name: "reload-it", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${dev}` } },
    }),
  );
  try {
    return (await client.listTools()).tools.map((t) => t.name);
  } finally {
    await client.close();
  }
}

async function call(name: string): Promise<CallToolResult> {
  const client = new Client({ name: "reload-it", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${dev}` } },
    }),
  );
  try {
    return (await client.callTool({ name, arguments: { message: "hi" } })) as CallToolResult;
  } finally {
    await client.close();
  }
}

/** Sends SIGHUP and waits for the edge to log the outcome (the n-th reload line). */
async function hangup(n: number): Promise<void> {
  gw.edge.child.kill("SIGHUP");
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = gw.edge
      .stdout()
      .split("\n")
      .filter((l) => /mcp upstreams (not )?reloaded/.test(l));
    if (lines.length >= n) return;
    if (Date.now() > deadline) throw new Error(`no reload line after SIGHUP:\n${gw.edge.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("reloading the upstream list (SIGHUP)", () => {
  it("applies an edited list: new servers offered, removed ones gone, no restart", async () => {
    const before = await toolNames();
    assert.ok(before.includes("alpha__echo"), before.join(" "));
    assert.match(JSON.stringify((await call("alpha__echo")).content), /Echo: hi/);

    writeConfig([{ name: "beta", kind: "http", url }]);
    await hangup(1);
    const after = await toolNames();
    assert.ok(after.includes("beta__echo"), after.join(" "));
    assert.ok(!after.some((n) => n.startsWith("alpha__")), after.join(" "));
    assert.match(JSON.stringify((await call("beta__echo")).content), /Echo: hi/);
    await assert.rejects(
      call("alpha__echo"),
      (e: Error & { code?: number }) =>
        e.code === -32602 && /no upstream MCP server named "alpha"/.test(e.message),
    );
    assert.equal(gw.edge.child.exitCode, null, "the edge kept running");
  });

  it("a changed server is reached at its new address; the old one can go away", async () => {
    const port2 = await freePort();
    second = await startEverything(port2);
    writeConfig([{ name: "beta", kind: "http", url: `http://127.0.0.1:${port2}/mcp` }]);
    await hangup(2);
    assert.match(
      gw.edge
        .stdout()
        .split("\n")
        .filter((l) => l.includes("mcp upstreams reloaded"))
        .at(-1) ?? "",
      /"changed":\["beta"\]/,
    );
    everything.kill("SIGKILL"); // the first server is gone: only the new address can answer
    assert.match(JSON.stringify((await call("beta__echo")).content), /Echo: hi/);
  });

  it("an invalid file changes nothing and says why", async () => {
    writeConfig([{ name: "gamma", kind: "http", url: "ftp://127.0.0.1/mcp" }]);
    await hangup(3);
    const names = await toolNames();
    assert.ok(names.includes("beta__echo"), names.join(" "));
    assert.ok(!names.some((n) => n.startsWith("gamma__")));
    const line = gw.edge
      .stdout()
      .split("\n")
      .find((l) => l.includes("mcp upstreams not reloaded"));
    assert.match(line ?? "", /upstream url must be http/);
    // Valid, but its credential is not in the edge's environment: refused now, not at its
    // first call.
    writeConfig([
      { name: "gamma", kind: "http", url, credential: { fromEnv: "MCPG_RELOAD_TEST_UNSET" } },
    ]);
    await hangup(4);
    assert.ok(!(await toolNames()).some((n) => n.startsWith("gamma__")));
    assert.match(gw.edge.stdout(), /MCPG_RELOAD_TEST_UNSET is not set in the edge's environment/);
    assert.equal(gw.edge.child.exitCode, null);
  });

  it("records both reloads in the audit trail (security events, no tenant: the operator's export)", async () => {
    const r = await runCli(["audit", "export"], { MCP_GATEWAY_DATA_DIR: gw.dataDir });
    assert.equal(r.code, 0, r.stderr);
    const reloads = r.stdout
      .split("\n")
      .filter((l) => l.includes('"what":"mcp.upstreams"'))
      .map(
        (l) =>
          JSON.parse(l) as {
            operation: string;
            details: {
              error?: string;
              added?: string[];
              removed?: string[];
              changed?: string[];
              targets?: Record<string, string>;
            };
          },
      );
    assert.deepEqual(
      reloads.map((e) => e.operation),
      [
        "security.config_reloaded",
        "security.config_reloaded",
        "security.config_reload_failed",
        "security.config_reload_failed",
      ],
    );
    // What changed and where the new servers are reached, for whoever reads the trail later.
    assert.deepEqual(reloads[0]?.details.added, ["beta"]);
    assert.deepEqual(reloads[0]?.details.removed, ["alpha"]);
    assert.deepEqual(reloads[0]?.details.targets, { beta: url });
    assert.deepEqual(reloads[1]?.details.changed, ["beta"]);
    assert.match(reloads[2]?.details.error ?? "", /upstream url must be http/);
  });
});
