import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  checkRunnerIdentity,
  type DevPki,
  type DevPkiLeaf,
  ensureDevPki,
  loadTlsMaterial,
  runnerIdentity,
} from "@mcp-gateway/common/tls";
import { type Proc, runnerClient, startProc } from "./harness.js";

/**
 * A runner with `allowedMonitors`: a monitoring client's certificate
 * (spiffe://mcp-gateway/monitor/<id>) reads /metrics and /health, and nothing
 * else; edges keep full access; other monitors are refused in the handshake.
 */
let dir: string;
let runner: Proc;
let url: string;
let pki: DevPki;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mcp-monitor-"));
  chmodSync(dir, 0o711);
  const config = join(dir, "runner.json");
  writeFileSync(
    config,
    JSON.stringify({
      id: "runner-m",
      port: 0,
      dataDir: dir,
      allowedEdges: ["edge-m"],
      allowedMonitors: ["prometheus"],
    }),
  );
  const started = await startProc(["runner", "--config", config], /listening on (https\S+)/);
  runner = started.proc;
  url = started.match[1] as string;
  // The runner's dev PKI issued the monitor's certificate; "intruder" is a monitor of the same
  // CA that the runner does not list.
  pki = await ensureDevPki({
    dir: join(dir, "pki"),
    edgeIds: ["edge-m"],
    runnerIds: ["runner-m"],
    monitorIds: ["prometheus", "intruder"],
  });
});
after(async () => {
  await runner?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** GETs or POSTs `path` on the runner over h2 with a client certificate. */
function request(
  leaf: DevPkiLeaf,
  method: string,
  path: string,
): Promise<{ status: number; body: string } | { error: string }> {
  const tls = loadTlsMaterial({ caPath: pki.caCertPath, ...leaf });
  return new Promise((resolve) => {
    const session = http2.connect(url, {
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      checkServerIdentity: checkRunnerIdentity(runnerIdentity("runner-m")),
    });
    session.on("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    const req = session.request({
      ":method": method,
      ":path": path,
      "content-type": "application/grpc",
    });
    let status = 0;
    let body = "";
    req.on("response", (h) => {
      status = Number(h[":status"]);
    });
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      session.close();
      resolve({ status, body });
    });
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

describe("runner monitoring identity", () => {
  it("lets an allowed monitor read /metrics and /health", async () => {
    const monitor = pki.monitors.prometheus as DevPkiLeaf;
    const metrics = await request(monitor, "GET", "/metrics");
    assert.ok("status" in metrics, JSON.stringify(metrics));
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^# HELP mcp_/m);
    const health = await request(monitor, "GET", "/health");
    assert.ok("status" in health && health.status === 200, JSON.stringify(health));
  });

  it("refuses the monitor every RPC (403 → permission denied)", async () => {
    const monitor = pki.monitors.prometheus as DevPkiLeaf;
    const raw = await request(monitor, "POST", "/mcp.runner.v1.RunnerService/Info");
    assert.ok("status" in raw, JSON.stringify(raw));
    assert.equal(raw.status, 403);
    const client = runnerClient(url, { caPath: pki.caCertPath, ...monitor }, "runner-m");
    await assert.rejects(client.cancel({ taskId: "task-x" }), (err: unknown) => {
      assert.equal(ConnectError.from(err).code, Code.PermissionDenied);
      return true;
    });
  });

  it("keeps full access for the edge and refuses a monitor it does not list", async () => {
    const edge = pki.edges["edge-m"] as DevPkiLeaf;
    const client = runnerClient(url, { caPath: pki.caCertPath, ...edge }, "runner-m");
    const info = await client.info({});
    assert.equal(info.runnerId, "runner-m");
    const metrics = await request(edge, "GET", "/metrics");
    assert.ok("status" in metrics && metrics.status === 200, JSON.stringify(metrics));

    const intruder = await request(pki.monitors.intruder as DevPkiLeaf, "GET", "/metrics");
    assert.ok(!("status" in intruder) || intruder.status === 0, JSON.stringify(intruder));
  });
});
