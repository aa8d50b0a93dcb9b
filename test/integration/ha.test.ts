import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureDevPki } from "@mcp-gateway/common/tls";
import { ensureDevSigningKey } from "@mcp-gateway/edge/dev-keys";
import { defaultAuditKeyPath, ensureAuditKeys } from "@mcp-gateway/edge/store";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { connectJson, type Proc, runCli, startProc, waitForTask } from "./harness.js";
import { type PrivateCluster, startPrivateCluster } from "./helpers/postgres.js";

/**
 * Two edges + two runners (+ standby edges) on one PostgreSQL, all real
 * processes. Runners register themselves with both edges over mTLS.
 */
let pg: PrivateCluster;
let base: string;
let token: string;
const procs: Proc[] = [];
let pki: Awaited<ReturnType<typeof ensureDevPki>>;
let jwksPath: string;
let auditKeyPath: string;

function configFile(name: string, config: Record<string, unknown>): string {
  const path = join(base, `${name}.json`);
  writeFileSync(path, JSON.stringify(config));
  return path;
}

async function startEdge(
  id: string,
  extra: Record<string, unknown> = {},
  waitFor = /edge listening on (http\S+) \(internal (https\S+)\)/,
) {
  const leaf = pki.edges[id];
  assert.ok(leaf);
  const config = configFile(id, {
    id,
    port: 0,
    internalPort: 0,
    dataDir: join(base, id),
    databaseUrl: pg.url,
    runnerTls: { caPath: pki.caCertPath, ...leaf },
    auth: { jwksFile: jwksPath },
    // One chain in one database: every edge signs with the same audit key.
    auditKeyFile: auditKeyPath,
    drainTimeoutMs: 1000,
    ...extra,
  });
  const { proc, match } = await startProc(["edge", "--config", config], waitFor);
  procs.push(proc);
  return { proc, url: match[1] as string, internal: match[2] as string };
}

async function startRunner(id: string, edges: string[]) {
  const leaf = pki.runners[id];
  assert.ok(leaf);
  const config = configFile(id, {
    id,
    port: 0,
    dataDir: join(base, id),
    tls: { caPath: pki.caCertPath, ...leaf },
    allowedEdges: ["edge-a", "edge-b", "edge-c", "edge-d"],
    edges,
    drainTimeoutMs: 1000,
  });
  const { proc } = await startProc(["runner", "--config", config], /listening on (https\S+)/);
  procs.push(proc);
  return proc;
}

async function exec(url: string, command: string, args: string[], workspace = "") {
  const r = await connectJson(
    url,
    "ExecuteCommand",
    { command, args, timeout: 60, workspace },
    token,
  );
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return String(r.body.taskId);
}

async function status(url: string, taskId: string) {
  const r = await connectJson(url, "GetTaskStatus", { taskId }, token);
  return r.body.task as Record<string, unknown>;
}

async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined>,
): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return { value, ms: Date.now() - started };
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let edgeA: Awaited<ReturnType<typeof startEdge>>;
let edgeB: Awaited<ReturnType<typeof startEdge>>;
let runner1: Proc;
let runner2: Proc;

before(async () => {
  pg = await startPrivateCluster("ha");
  base = mkdtempSync(join(tmpdir(), "mcp-ha-"));
  chmodSync(base, 0o711);
  pki = await ensureDevPki({
    dir: join(base, "pki"),
    edgeIds: ["edge-a", "edge-b", "edge-c", "edge-d"],
    runnerIds: ["runner-1", "runner-2"],
  });
  jwksPath = (await ensureDevSigningKey(join(base, "auth"))).jwksPath;
  // Where `audit verify` looks by default for MCP_GATEWAY_DATA_DIR=base.
  auditKeyPath = defaultAuditKeyPath(base);
  await ensureAuditKeys(auditKeyPath);
  const t = await runCli(["token", "--sub", "hana", "--roles", "developer", "--ttl", "1h"], {
    MCP_GATEWAY_DATA_DIR: base,
  });
  token = t.stdout.trim();
  edgeA = await startEdge("edge-a");
  edgeB = await startEdge("edge-b");
  runner1 = await startRunner("runner-1", [edgeA.internal, edgeB.internal]);
  runner2 = await startRunner("runner-2", [edgeA.internal, edgeB.internal]);
  // Both edges see both runners.
  await until("runners registered", 10_000, async () => {
    const ready = await fetch(`${edgeB.url}/health/ready`);
    return ready.status === 200 ? true : undefined;
  });
});

after(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  await pg?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe("active-active: any edge answers for any task", () => {
  it("a task accepted by edge A is visible, streamable and cancellable through edge B", async () => {
    const quick = await exec(edgeA.url, "sh", ["-c", "echo from-a"]);
    const done = await waitForTask(edgeB.url, token, quick);
    assert.equal((done.result as Record<string, unknown>).stdout, "from-a\n");

    const slow = await exec(edgeA.url, "sh", ["-c", "echo begun; sleep 30"]);
    await until("running", 10_000, async () =>
      (await status(edgeB.url, slow)).status === "TASK_STATUS_RUNNING" ? true : undefined,
    );
    const cancel = await connectJson(edgeB.url, "CancelTask", { taskId: slow }, token);
    assert.equal(cancel.body.status, "TASK_STATUS_CANCELLED", JSON.stringify(cancel.body));
    const res = await fetch(`${edgeB.url}/mcp.McpService/StreamTaskOutput`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${token}` },
      body: framed({ taskId: slow }),
    });
    const frames = await readFrames(res);
    const out = frames
      .filter((f) => f.kind === "OUTPUT_KIND_STDOUT")
      .map((f) => Buffer.from(String(f.data), "base64").toString());
    assert.deepEqual(out, ["begun\n"]);
    assert.equal(frames.at(-1)?.kind, "OUTPUT_KIND_EXIT");
    assert.equal(frames.at(-1)?.status, "TASK_STATUS_CANCELLED");
  });
});

describe("MCP with no stickiness", () => {
  it("one MCP client's requests, sent alternately to edge A and edge B, all succeed", async () => {
    const edges = [new URL(edgeA.url), new URL(edgeB.url)];
    const hit = [0, 0];
    let n = 0;
    const client = new Client({ name: "ha-mcp", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${edgeA.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
        // Round-robin like a load balancer without affinity.
        fetch: (input, init) => {
          const i = n++ % 2;
          hit[i] = (hit[i] ?? 0) + 1;
          const url = new URL(String(input instanceof Request ? input.url : input));
          url.host = edges[i]?.host ?? url.host;
          return fetch(url, init);
        },
      }),
    );
    try {
      const tools = await client.listTools();
      assert.ok(tools.tools.some((t) => t.name === "run_command"));
      for (const word of ["one", "two", "three"]) {
        const r = await client.callTool({
          name: "run_command",
          arguments: { command: "echo", args: [word] },
        });
        assert.equal((r.structuredContent as { stdout?: string }).stdout, `${word}\n`);
      }
      const started = await client.callTool({
        name: "start_command",
        arguments: { command: "echo", args: ["detached"] },
      });
      const taskId = String((started.structuredContent as { task_id?: string }).task_id);
      const done = await until("detached task done", 10_000, async () => {
        const t = await client.callTool({ name: "get_task", arguments: { task_id: taskId } });
        const s = t.structuredContent as { status?: string };
        return s.status === "completed" ? s : undefined;
      });
      assert.equal(done.value.status, "completed");
    } finally {
      await client.close();
    }
    assert.ok((hit[0] ?? 0) >= 3 && (hit[1] ?? 0) >= 3, `both edges answered: ${hit.join("/")}`);
  });
});

describe("runner failure", () => {
  it("kill -9 of a runner mid-task: FAILED 'runner lost' within 5 s, new tasks go to the other runner", async () => {
    const taskId = await exec(edgeA.url, "sh", ["-c", "echo working; sleep 60"], "victim");
    const running = await until("running", 10_000, async () => {
      const t = await status(edgeA.url, taskId);
      return t.status === "TASK_STATUS_RUNNING" ? t : undefined;
    });
    const victim = running.value.runnerId === "runner-1" ? runner1 : runner2;
    const survivor = running.value.runnerId === "runner-1" ? "runner-2" : "runner-1";
    await victim.stop("SIGKILL");
    const failed = await until("runner lost", 5_000, async () => {
      const t = await status(edgeB.url, taskId);
      return t.status === "TASK_STATUS_FAILED" ? t : undefined;
    });
    assert.match(String(failed.value.statusMessage), /runner lost/);
    // Transport details (addresses, errno, TLS) stay in the edge's log.
    assert.doesNotMatch(String(failed.value.statusMessage), /\d+\.\d+\.\d+\.\d+|ECONN|https?:/);
    process.stderr.write(`# runner kill -9 → FAILED "runner lost" after ${failed.ms} ms\n`);
    // The same workspace now lands on the surviving runner.
    const next = await exec(edgeB.url, "echo", ["after"], "victim");
    const t = await waitForTask(edgeB.url, token, next);
    assert.equal(t.status, "TASK_STATUS_COMPLETED");
    assert.equal(t.runnerId, survivor);
  });
});

describe("edge failure", () => {
  it("kill -9 of edge A under load: every accepted task is still found, finished and audited", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 8; i++)
      ids.push(await exec(edgeA.url, "sh", ["-c", `sleep 0.$((${i} % 5 + 3)); echo task-${i}`]));
    await edgeA.proc.stop("SIGKILL");
    const killedAt = Date.now();
    for (const [i, id] of ids.entries()) {
      const t = await waitForTask(edgeB.url, token, id, 30_000);
      assert.equal(t.status, "TASK_STATUS_COMPLETED", JSON.stringify(t));
      assert.equal(
        (t.result as Record<string, unknown>).stdout,
        `task-${i}\n`,
        "output neither lost nor duplicated",
      );
    }
    process.stderr.write(
      `# edge kill -9 → all ${ids.length} tasks finished via edge B after ${Date.now() - killedAt} ms\n`,
    );
    const exported = await runCli(["audit", "export"], {
      DATABASE_URL: pg.url,
      MCP_GATEWAY_DATA_DIR: base,
    });
    const finished = exported.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { operation: string; taskId: string })
      .filter((r) => r.operation === "task_finished");
    for (const id of ids)
      assert.equal(
        finished.filter((r) => r.taskId === id).length,
        1,
        `one outcome record for ${id}`,
      );
    const verify = await runCli(["audit", "verify"], {
      DATABASE_URL: pg.url,
      MCP_GATEWAY_DATA_DIR: base,
    });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it("PostgreSQL restart: the edge recovers without a restart", async () => {
    await pg.restart();
    const { value: id, ms } = await until("accepting again", 20_000, async () => {
      const r = await connectJson(
        edgeB.url,
        "ExecuteCommand",
        { command: "echo", args: ["after-restart"] },
        token,
      );
      return r.status === 200 ? String(r.body.taskId) : undefined;
    });
    process.stderr.write(`# PostgreSQL restart → edge accepting again after ${ms} ms\n`);
    const t = await waitForTask(edgeB.url, token, id, 20_000);
    assert.equal(t.status, "TASK_STATUS_COMPLETED");
  });
});

describe("active-passive", () => {
  it("a standby takes over within 3 s of the active's death, with no double execution", async () => {
    const c = await startEdge("edge-c", { standby: true });
    const d = await startEdge("edge-d", { standby: true });
    const readiness = async (url: string) => (await fetch(`${url}/health/ready`)).status;
    const { value: active } = await until("one active", 10_000, async () => {
      const [rc, rd] = await Promise.all([readiness(c.url), readiness(d.url)]);
      if (rc === 200 && rd === 503) return c;
      if (rd === 200 && rc === 503) return d;
      return undefined;
    });
    const standby = active === c ? d : c;
    const refused = await connectJson(standby.url, "ExecuteCommand", { command: "true" }, token);
    assert.equal(refused.status, 503, "a standby serves nothing");
    // A task that is running when the active dies must run exactly once.
    const taskId = await exec(active.url, "sh", ["-c", "echo once >> ran.txt; sleep 2"], "ap");
    await until("running", 10_000, async () =>
      (await status(active.url, taskId)).status === "TASK_STATUS_RUNNING" ? true : undefined,
    );
    await active.proc.stop("SIGKILL");
    const takeover = await until("standby active", 3_000, async () =>
      (await readiness(standby.url)) === 200 ? true : undefined,
    );
    process.stderr.write(`# active-passive takeover after ${takeover.ms} ms\n`);
    const t = await waitForTask(standby.url, token, taskId, 20_000);
    assert.equal(t.status, "TASK_STATUS_COMPLETED", JSON.stringify(t));
    const file = await connectJson(
      standby.url,
      "ReadFile",
      { path: "ran.txt", workspace: "ap" },
      token,
    );
    assert.equal(Buffer.from(String(file.body.content), "base64").toString(), "once\n");
  });
});

describe("graceful shutdown (SIGTERM)", () => {
  it("a runner drains its running task, deregisters at once and exits 0", async () => {
    const alive = [runner1, runner2].find(
      (p) => p.child.exitCode === null && p.child.signalCode === null,
    );
    assert.ok(alive, "one runner is still up");
    const taskId = await exec(edgeB.url, "sh", ["-c", "sleep 1; echo drained"], "drain");
    await until("running", 10_000, async () =>
      (await status(edgeB.url, taskId)).status === "TASK_STATUS_RUNNING" ? true : undefined,
    );
    alive.child.kill("SIGTERM");
    const t = await waitForTask(edgeB.url, token, taskId, 15_000);
    assert.equal(t.status, "TASK_STATUS_COMPLETED", JSON.stringify(t));
    assert.equal((t.result as Record<string, unknown>).stdout, "drained\n");
    assert.equal(await alive.exited(), 0, "the runner exits cleanly");
    // Deregistered: the edge stops offering it before any heartbeat timeout could.
    const gone = await until("runner deregistered", 2_500, async () => {
      const r = await fetch(`${edgeB.url}/health/ready`);
      const body = (await r.json()) as { problems: string[] };
      return r.status === 503 && body.problems.includes("no runner available") ? true : undefined;
    });
    process.stderr.write(`# runner SIGTERM → out of the edge's pool after ${gone.ms} ms\n`);
  });

  it("an edge goes unready, refuses new calls and exits 0", async () => {
    edgeB.proc.child.kill("SIGTERM");
    assert.equal(await edgeB.proc.exited(), 0, "the edge exits cleanly");
  });
});

/** One Connect streaming request frame. */
function framed(msg: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(msg));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Reads Connect streaming response frames (JSON), dropping the end-of-stream frame. */
async function readFrames(res: Response): Promise<Array<Record<string, unknown>>> {
  const buf = Buffer.from(await res.arrayBuffer());
  const out: Array<Record<string, unknown>> = [];
  for (let i = 0; i < buf.length; ) {
    const flags = buf[i] ?? 0;
    const len = buf.readUInt32BE(i + 1);
    const data = buf.subarray(i + 5, i + 5 + len);
    i += 5 + len;
    if ((flags & 0x02) === 0) out.push(JSON.parse(data.toString()) as Record<string, unknown>);
  }
  return out;
}
