import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createCgroupController } from "./cgroup.js";

// The kernel paths are exercised for real by test/attacks/cgroups.test.ts (v1 on CI's hybrid
// host). These tests run the file protocol of each hierarchy against a plain directory tree
// standing in for /sys/fs/cgroup, so the v2 production path is checked on hosts without it.
const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function fakeRoot(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "mcpg-cgroup-fake-"));
  roots.push(root);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

const read = (root: string, path: string) => readFileSync(join(root, path), "utf8");

describe("cgroup v2 (delegated subtree)", () => {
  it("moves the runner to a leaf, enables controllers and writes the task's limits", async () => {
    const root = fakeRoot({
      "cgroup.controllers": "cpu memory pids",
      "svc/cgroup.controllers": "cpu memory pids",
      "svc/cgroup.subtree_control": "",
      "svc/cgroup.procs": "4242\n",
    });
    const cg = await createCgroupController({
      sysRoot: root,
      selfCgroup: "0::/svc\n",
      pid: 77,
      totalMemoryBytes: 1 << 30,
    });
    assert.equal(cg.kind, "v2");
    assert.equal(cg.complete, true);
    assert.deepEqual(cg.layers, ["cgroup-v2-memory", "cgroup-v2-pids", "cgroup-v2-cpu"]);
    assert.equal(read(root, "svc/mcpg-supervisor/cgroup.procs"), "4242");
    assert.equal(read(root, "svc/cgroup.subtree_control"), "+memory +pids +cpu");
    assert.equal(read(root, "svc/mcpg-77/cgroup.subtree_control"), "+memory +pids +cpu");
    assert.equal(read(root, "svc/mcpg-77/memory.max"), String(1 << 30));
    const task = await cg.create("t1", { memoryBytes: 64 << 20, maxProcesses: 11 });
    assert.equal(read(root, "svc/mcpg-77/t1/memory.max"), String(64 << 20));
    assert.equal(read(root, "svc/mcpg-77/t1/pids.max"), "11");
    await task.place(99);
    assert.equal(read(root, "svc/mcpg-77/t1/cgroup.procs"), "99");
    writeFileSync(join(root, "svc/mcpg-77/t1/memory.peak"), "1234\n");
    writeFileSync(join(root, "svc/mcpg-77/t1/memory.events"), "low 0\noom 2\noom_kill 1\n");
    writeFileSync(join(root, "svc/mcpg-77/t1/pids.events"), "max 3\n");
    assert.deepEqual(await task.usage(), { memoryPeakBytes: 1234, oomKills: 1, pidsLimitHits: 3 });
    await assert.rejects(cg.create("../escape", { memoryBytes: 1, maxProcesses: 1 }));
  });

  it("a v2 hierarchy without the memory controller is not used", async () => {
    const root = fakeRoot({
      "cgroup.controllers": "cpu",
      "cgroup.subtree_control": "",
    });
    const cg = await createCgroupController({ sysRoot: root, selfCgroup: "0::/\n", pid: 78 });
    assert.equal(cg.kind, "none");
    assert.match(cg.detail, /lacks the memory and pids controller/);
    await assert.rejects(cg.create("t", { memoryBytes: 1, maxProcesses: 1 }), /no per-task cgroup/);
  });
});

/** A hybrid host's v1 memory and pids hierarchies, the runner (pid) in memory:/job. */
async function v1Host(pid: number) {
  const root = fakeRoot({
    "memory/job/memory.limit_in_bytes": "9223372036854771712",
    "pids/cgroup.procs": "",
  });
  const cg = await createCgroupController({
    sysRoot: root,
    selfCgroup: "8:pids:/\n4:memory:/job\n0::/\n",
    pid,
  });
  return { root, cg };
}

describe("cgroup v1 (hybrid hosts)", () => {
  it("uses the memory and pids controllers below the runner's own cgroups", async () => {
    const { root, cg } = await v1Host(79);
    assert.equal(cg.kind, "v1");
    assert.deepEqual(cg.layers, ["cgroup-v1-memory", "cgroup-v1-pids"]);
    assert.equal(cg.complete, true);
    const task = await cg.create("t2", { memoryBytes: 32 << 20, maxProcesses: 5 });
    assert.equal(read(root, "memory/job/mcpg-79/t2/memory.limit_in_bytes"), String(32 << 20));
    assert.equal(read(root, "memory/job/mcpg-79/t2/memory.swappiness"), "0");
    assert.equal(read(root, "pids/mcpg-79/t2/pids.max"), "5");
    writeFileSync(
      join(root, "memory/job/mcpg-79/t2/memory.oom_control"),
      "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    writeFileSync(join(root, "memory/job/mcpg-79/t2/memory.max_usage_in_bytes"), "555\n");
    assert.deepEqual(await task.usage(), { memoryPeakBytes: 555, oomKills: 2, pidsLimitHits: 0 });
  });

  it("a prepared sandbox's cgroup is created without limits and limited later", async () => {
    const { root, cg } = await v1Host(80);
    const task = await cg.create("t3");
    assert.throws(() => read(root, "memory/job/mcpg-80/t3/memory.limit_in_bytes"), /ENOENT/);
    assert.throws(() => read(root, "pids/mcpg-80/t3/pids.max"), /ENOENT/);
    await task.limit({ memoryBytes: 48 << 20, maxProcesses: 9 });
    assert.equal(read(root, "memory/job/mcpg-80/t3/memory.limit_in_bytes"), String(48 << 20));
    assert.equal(read(root, "pids/mcpg-80/t3/pids.max"), "9");
  });

  it("mode off never creates cgroups", async () => {
    const cg = await createCgroupController({ mode: "off" });
    assert.equal(cg.kind, "none");
    assert.deepEqual(cg.layers, []);
  });
});
