/**
 * Per-task cgroups: memory (anonymous, memfd, tmpfs, /dev/shm, the whole tree) and pids,
 * enforced by the kernel — cgroup v2 in production, the v1 memory and pids controllers on
 * hybrid hosts like CI. Every attack asserts the kernel's answer and that the runner's task
 * cgroup gave the memory back.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import {
  bash,
  hostPidsWithMarker,
  install,
  makeWorkspace,
  marker,
  run,
  sandbox,
} from "./helpers.js";

const MiB = 1024 * 1024;
let layers: string[] = [];
let cgroupDetail = "";

/** Memory currently charged to all tasks of this test's sandbox (the runner's parent cgroup). */
function tasksMemoryCharge(): number {
  const v1 = /^cgroup v1 (\S+memory\S*)/.exec(cgroupDetail);
  const v2 = /^cgroup v2 at (\S+)/.exec(cgroupDetail);
  if (v1?.[1]) return Number(readFileSync(join(v1[1], "memory.usage_in_bytes"), "utf8"));
  if (v2?.[1]) return Number(readFileSync(join(v2[1], "memory.current"), "utf8"));
  throw new Error(`no task cgroup: ${cgroupDetail}`);
}

before(async () => {
  const r = await sandbox.readiness();
  assert.equal(r.problem, "");
  layers = r.limitLayers;
  cgroupDetail = r.cgroup;
  // CI runs on a host with cgroup v1 memory+pids (or a delegated v2): the layer must be active.
  assert.ok(
    layers.some((l) => /^cgroup-v[12]-memory$/.test(l)) &&
      layers.some((l) => /^cgroup-v[12]-pids$/.test(l)),
    `per-task memory and pids cgroups must be active here: ${JSON.stringify(layers)} (${r.cgroup})`,
  );
});

/** The runner answers OOM as such and gives everything back. */
function assertOom(r: Awaited<ReturnType<typeof run>>, limit: number): void {
  assert.equal(r.result.status, "failed", r.result.message);
  assert.equal(r.result.oomKilled, true);
  assert.equal(r.result.signal, "SIGKILL");
  assert.match(r.result.message, /^out of memory: the task reached its memory limit of \d+ bytes/);
  assert.ok(r.result.usage.memoryPeakBytes > limit / 2, `peak ${r.result.usage.memoryPeakBytes}`);
  assert.ok(
    r.result.usage.memoryPeakBytes <= limit,
    `peak ${r.result.usage.memoryPeakBytes} above the limit ${limit}`,
  );
  // host memory returns: nothing is charged to the tasks' cgroup any more
  assert.ok(tasksMemoryCharge() < 16 * MiB, `still charged: ${tasksMemoryCharge()}`);
}

describe("memory beyond memory_bytes", () => {
  it("memfd pages (not in RLIMIT_AS) are charged: the task is OOM-killed at the limit", async () => {
    const ws = makeWorkspace();
    const hog = install("memhog", ws);
    const r = await run(hog, ["memfd", "2048"], {
      workspaceDir: ws,
      limits: { memoryBytes: 128 * MiB },
      timeoutMs: 20_000,
    });
    assert.doesNotMatch(r.stdout, /done/);
    assertOom(r, 128 * MiB);
  });

  for (const dir of ["/tmp", "/dev/shm"]) {
    it(`tmpfs ${dir} larger than memory_bytes: writes stop at the memory limit`, async () => {
      const r = await bash(
        `dd if=/dev/zero of=${dir}/fill bs=1M count=1024 2>/dev/null; ls -l ${dir}/fill; sleep 20`,
        { limits: { memoryBytes: 96 * MiB, tmpBytes: 1024 * MiB }, timeoutMs: 20_000 },
      );
      assertOom(r, 96 * MiB);
    });
  }

  it("64 processes, each under RLIMIT_AS, together far above memory_bytes", async () => {
    const ws = makeWorkspace();
    const hog = install("memhog", ws);
    const r = await run(hog, ["fork", "64", "24"], {
      workspaceDir: ws,
      limits: { memoryBytes: 256 * MiB, maxProcesses: 128 },
      timeoutMs: 20_000,
    });
    assertOom(r, 256 * MiB);
  });

  it("setsid'd, double-forked children are counted in the same cgroup", async () => {
    const ws = makeWorkspace();
    const hog = install("memhog", ws);
    const m = marker("setsid-hog");
    const r = await run("bash", ["-c", `exec -a ${m} /workspace/memhog setsid 16 32`], {
      workspaceDir: ws,
      limits: { memoryBytes: 192 * MiB },
      timeoutMs: 20_000,
    });
    assert.ok(hog.length > 0);
    assertOom(r, 192 * MiB);
    assert.deepEqual(hostPidsWithMarker(m), []);
  });

  it("the runner keeps serving other tasks while one is OOM-killed", async () => {
    const ws = makeWorkspace();
    const hog = install("memhog", ws);
    const attack = run(hog, ["memfd", "4096"], {
      workspaceDir: ws,
      limits: { memoryBytes: 128 * MiB },
      timeoutMs: 20_000,
    });
    const others = await Promise.all(
      [1, 2, 3].map((i) => bash(`head -c 1000000 /dev/zero | wc -c; echo task ${i}`)),
    );
    for (const [i, o] of others.entries()) {
      assert.equal(o.result.status, "completed");
      assert.equal(o.stdout, `1000000\ntask ${i + 1}\n`);
      assert.equal(o.result.oomKilled, false);
    }
    assertOom(await attack, 128 * MiB);
  });

  it("under the limit nothing happens, and the peak is reported", async () => {
    const ws = makeWorkspace();
    const hog = install("memhog", ws);
    const r = await run(
      "bash",
      ["-c", "timeout -s KILL 1 /workspace/memhog memfd 48; echo rc=$?"],
      { workspaceDir: ws, limits: { memoryBytes: 128 * MiB }, timeoutMs: 20_000 },
    );
    assert.ok(hog.length > 0);
    assert.equal(r.stdout, "memfd done 48\nrc=137\n");
    assert.equal(r.result.status, "completed");
    assert.equal(r.result.oomKilled, false);
    assert.ok(r.result.usage.memoryPeakBytes >= 48 * MiB, `${r.result.usage.memoryPeakBytes}`);
  });
});

describe("processes", () => {
  it("a fork bomb is stopped by pids.max (the kernel refuses forks in the task's cgroup)", async () => {
    const m = marker("cg-forkbomb");
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, hostPidsWithMarker(m).length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const r = await run(
      "bash",
      ["-c", `exec -a ${m} bash -c 'bomb() { bomb | bomb & }; bomb; sleep 60'`],
      { limits: { maxProcesses: 30 }, timeoutMs: 3000 },
    );
    sampling = false;
    await sampler;
    assert.equal(r.result.status, "timed_out");
    assert.ok(r.result.usage.pidsLimitHits > 0, "pids.max should have refused forks");
    assert.ok(peak <= 30, `peak of ${peak} processes exceeds maxProcesses`);
    assert.deepEqual(hostPidsWithMarker(m), []);
  });

  it("background jobs beyond pids.max are refused", async () => {
    const r = await bash("for i in $(seq 40); do sleep 5 & done 2>/dev/null; jobs -p | wc -l", {
      limits: { maxProcesses: 12 },
      timeoutMs: 10_000,
    });
    const started = Number(r.stdout.trim());
    assert.ok(started <= 10, `${started} background processes with maxProcesses 12`);
    assert.ok(r.result.usage.pidsLimitHits > 0);
  });
});
