import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureDevPki } from "@mcp-gateway/common/tls";
import { ensureAuditKeys } from "@mcp-gateway/edge/store";
import { type Proc, startProc } from "./harness.js";
import {
  eventually,
  grpcTools,
  healthProbe,
  PROBE_SERVING,
  PROBE_UNHEALTHY,
} from "./helpers/grpc-tools.js";
import { createTestDatabase, type TestDatabase } from "./helpers/postgres.js";

/**
 * grpc.health.v1.Health in active-passive HA, checked with grpc-health-probe:
 * the active edge is SERVING, a standby waiting for the active lease is
 * NOT_SERVING (as /health/ready says), and it turns SERVING once it takes
 * over. Real processes on PostgreSQL, one runner.
 */
let db: TestDatabase;
let base: string;
let pki: Awaited<ReturnType<typeof ensureDevPki>>;
let auditKeyFile: string;
let runnerUrl: string;
const procs: Proc[] = [];

function configFile(name: string, config: Record<string, unknown>): string {
  const path = join(base, `${name}.json`);
  writeFileSync(path, JSON.stringify(config));
  return path;
}

async function startStandbyEdge(id: string): Promise<{ proc: Proc; url: string; addr: string }> {
  const leaf = pki.edges[id];
  assert.ok(leaf);
  const config = configFile(id, {
    id,
    port: 0,
    dataDir: join(base, id),
    databaseUrl: db.url,
    auditKeyFile,
    runnerTls: { caPath: pki.caCertPath, ...leaf },
    runners: [{ id: "runner-1", url: runnerUrl }],
    standby: true,
    drainTimeoutMs: 1000,
  });
  const { proc, match } = await startProc(
    ["edge", "--config", config],
    /edge listening on (http:\/\/127\.0\.0\.1:(\d+))/,
  );
  procs.push(proc);
  return { proc, url: match[1] as string, addr: `localhost:${match[2]}` };
}

before(async () => {
  await grpcTools();
  db = await createTestDatabase("grpc_health_standby");
  base = mkdtempSync(join(tmpdir(), "mcp-grpc-standby-"));
  // The sandbox user (not root) must be able to traverse to the runner's workspaces.
  chmodSync(base, 0o711);
  pki = await ensureDevPki({
    dir: join(base, "pki"),
    edgeIds: ["edge-a", "edge-b"],
    runnerIds: ["runner-1"],
  });
  auditKeyFile = join(base, "audit.key");
  await ensureAuditKeys(auditKeyFile);
  const leaf = pki.runners["runner-1"];
  assert.ok(leaf);
  const { proc, match } = await startProc(
    [
      "runner",
      "--config",
      configFile("runner-1", {
        id: "runner-1",
        port: 0,
        dataDir: join(base, "runner-1"),
        tls: { caPath: pki.caCertPath, ...leaf },
        allowedEdges: ["edge-a", "edge-b"],
        drainTimeoutMs: 1000,
      }),
    ],
    /listening on (https\S+)/,
  );
  procs.push(proc);
  runnerUrl = match[1] as string;
});

after(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  await db?.drop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe("grpc-health-probe against active and standby edges", () => {
  it("active SERVING, standby NOT_SERVING (like /health/ready), SERVING after it takes over", async () => {
    const active = await startStandbyEdge("edge-a");
    const probeActive = await eventually("active SERVING", async () => {
      const p = await healthProbe(active.addr);
      return p.code === PROBE_SERVING ? p : undefined;
    });
    assert.match(probeActive.stdout + probeActive.stderr, /status: SERVING/);

    const standby = await startStandbyEdge("edge-b");
    for (const service of [undefined, "mcp.McpService"]) {
      const p = await healthProbe(standby.addr, service);
      assert.equal(p.code, PROBE_UNHEALTHY, `${service ?? "(server)"}: ${p.stdout}${p.stderr}`);
      assert.match(p.stdout + p.stderr, /NOT_SERVING/);
    }
    const ready = await fetch(`${standby.url}/health/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(((await ready.json()) as { problems: string[] }).problems, ["standby"]);

    // The active goes away (releasing its lease): the standby takes over and turns SERVING.
    await active.proc.stop();
    await eventually(
      "standby SERVING after takeover",
      async () => ((await healthProbe(standby.addr)).code === PROBE_SERVING ? true : undefined),
      15_000,
    );
    assert.equal((await fetch(`${standby.url}/health/ready`)).status, 200);
  });
});
