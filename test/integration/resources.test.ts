/**
 * Resource isolation end to end: a real edge and runner (cgroups and workspace quotas on),
 * called over Connect JSON. The kernel's answers reach clients as such: an OOM-killed task is
 * FAILED with its peak memory, a full workspace is resource_exhausted naming its quota, and the
 * runner's Info and /health/ready list the active layers.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureDevPki } from "@mcp-gateway/common/tls";
import { OutputKind, TaskStatus } from "@mcp-gateway/proto/mcp";
import { createMcpClient } from "../../client/src/client.js";
import {
  connectJson,
  type Gateway,
  runCli,
  runnerClient,
  startGateway,
  waitForTask,
} from "./harness.js";

const MiB = 1024 * 1024;
let gw: Gateway;
let token: string;
/** The runner's limit layers, from its Info (first test). */
let layers: string[] = [];

before(async () => {
  assert.equal(process.getuid?.(), 0, "runs as root in CI (loop mounts, cgroups)");
  const configPath = join(process.env.TMPDIR ?? "/tmp", `mcp-res-${process.pid}.json`);
  writeFileSync(
    configPath,
    JSON.stringify({
      requireCgroups: true,
      // The runner's maximum; the policy's workspace obligation may set less (the restricted
      // example tenant: 20,000 inodes).
      workspaceQuota: { mode: "loop-image", bytes: 32 * MiB, inodes: 50_000 },
      // Room for one task with the developer's 10 MiB output cap (2 × 10 MiB reserved), not two.
      maxRetainedOutputBytes: 24 * MiB,
    }),
  );
  gw = await startGateway({ runnerArgs: ["--config", configPath] });
  token = await gw.token("mia", ["developer"]);
});
after(async () => {
  await gw?.stop();
});

describe("resource isolation through the public API", () => {
  it("the runner's Info lists the cgroup and quota layers", async () => {
    const pki = await ensureDevPki({
      dir: join(gw.dataDir, "pki"),
      edgeIds: ["edge-local"],
      runnerIds: ["runner-local"],
    });
    const edge = pki.edges["edge-local"];
    assert.ok(edge);
    const info = await runnerClient(
      gw.runnerUrl,
      { caPath: pki.caCertPath, ...edge },
      "runner-local",
    ).info({});
    assert.ok(
      info.limitLayers.some((l) => /^cgroup-v[12]-memory$/.test(l)),
      info.limitLayers.join(),
    );
    assert.ok(info.limitLayers.some((l) => /^cgroup-v[12]-pids$/.test(l)));
    assert.ok(info.limitLayers.includes("workspace-quota"));
    layers = info.limitLayers;
    assert.match(info.cgroup, /^cgroup v[12] /);
    assert.equal(info.workspaceQuota, `loop-image ${32 * MiB} bytes, 50000 inodes`);
  });

  it("a task filling /dev/shm past memory_bytes is FAILED as out of memory, with its peak", async () => {
    const r = await connectJson(
      gw.url,
      "ExecuteCommand",
      {
        command: "sh",
        args: ["-c", "head -c 400000000 /dev/zero > /dev/shm/fill; sleep 10"],
        sandbox: { limits: { memoryBytes: String(64 * MiB) } },
        workspace: "oom",
      },
      token,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const t = await waitForTask(gw.url, token, String(r.body.taskId));
    assert.equal(t.status, "TASK_STATUS_FAILED");
    assert.match(String(t.statusMessage), /^out of memory: the task reached its memory limit/);
    const result = t.result as Record<string, unknown>;
    const usage = result.usage as Record<string, unknown>;
    assert.equal(usage.oomKilled, true);
    assert.ok(Number(usage.memoryPeakBytes) > 32 * MiB, JSON.stringify(usage));
    assert.ok(Number(usage.memoryPeakBytes) <= 64 * MiB, JSON.stringify(usage));
    assert.equal(result.signal, "SIGKILL");
  });

  it("the CLI's --memory and --pids reach the sandbox", async () => {
    const r = await runCli(
      [
        "exec",
        "--url",
        gw.url,
        "--token",
        token,
        "--memory",
        "48M",
        "--pids",
        "20",
        "--",
        "sh",
        "-c",
        "ulimit -v; grep 'Max processes' /proc/self/limits; head -c 300000000 /dev/zero > /dev/shm/fill; sleep 5",
      ],
      { MCP_GATEWAY_DATA_DIR: gw.dataDir },
    );
    // RLIMIT_AS in KiB; RLIMIT_NPROC is one above the 20 asked for (pids.max counts bwrap's
    // monitor too), one more with the Landlock exec supervisor
    assert.ok(layers.length > 0, "runs after the Info test");
    const nproc = 20 + 1 + (layers.some((l) => l.startsWith("landlock")) ? 1 : 0);
    assert.match(r.stdout, new RegExp(`^${48 * 1024}\nMax processes +${nproc} +${nproc} `));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /out of memory/);
  });

  it("a flood of maximum-output tasks: the runner's event budget refuses, the edge queues, nothing is lost", async () => {
    const client = createMcpClient({ baseUrl: gw.url, token });
    const ids = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const r = await client.executeCommand({
          command: "sh",
          args: ["-c", `head -c 12000000 /dev/zero | tr '\\0' ${i}`],
          workspace: "flood",
        });
        return r.taskId;
      }),
    );
    for (const [i, id] of ids.entries()) {
      let stdout = 0;
      let status = TaskStatus.UNSPECIFIED;
      for await (const m of client.streamTaskOutput({ taskId: id })) {
        if (m.kind === OutputKind.STDOUT) stdout += m.data.length;
        if (m.kind === OutputKind.EXIT) status = m.status;
      }
      assert.equal(status, TaskStatus.COMPLETED, `task ${i + 1}`);
      assert.equal(stdout, 10 * MiB, `task ${i + 1}: its whole (capped) output is stored`);
    }
    // the runner did refuse (its budget fits one such task) and the edge queued the others
    assert.match(gw.edge.stdout() + gw.edge.stderr(), /runner did not take the task; requeued/);
    assert.match(gw.edge.stdout() + gw.edge.stderr(), /runner output budget is in use/);
  });

  it("WriteFile past the workspace quota is resource_exhausted naming the quota; ListDirectory shows usage", async () => {
    const fill = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "sh", args: ["-c", "head -c 40000000 /dev/zero > big; true"], workspace: "q" },
      token,
    );
    await waitForTask(gw.url, token, String(fill.body.taskId));
    const w = await connectJson(
      gw.url,
      "WriteFile",
      { workspace: "q", path: "more.txt", content: Buffer.alloc(2 * MiB).toString("base64") },
      token,
    );
    assert.equal(w.status, 429, JSON.stringify(w.body));
    assert.equal(w.body.code, "resource_exhausted");
    assert.match(String(w.body.message), /workspace quota of 32 MiB reached/);
    const list = await connectJson(gw.url, "ListDirectory", { workspace: "q", path: "" }, token);
    const usage = list.body.usage as Record<string, unknown>;
    assert.equal(usage.bytesLimit, String(32 * MiB));
    assert.ok(Number(usage.bytesUsed) > 30 * MiB, JSON.stringify(usage));
    // developers' policy quota (100,000 inodes) is capped by the runner's maximum
    const limit = Number(usage.inodesLimit);
    assert.ok(limit >= 50_000 && limit < 60_000, JSON.stringify(usage));
  });

  it("a workspace is created with the policy's quota: the restricted tenant's is smaller", async () => {
    const rick = await gw.token("rick", ["developer"], ["--tenant", "example-restricted"]);
    const list = await connectJson(gw.url, "ListDirectory", { workspace: "r", path: "" }, rick);
    assert.equal(list.status, 200, JSON.stringify(list.body));
    const usage = list.body.usage as Record<string, unknown>;
    const limit = Number(usage.inodesLimit);
    assert.ok(limit >= 20_000 && limit < 22_000, JSON.stringify(usage));
  });
});
