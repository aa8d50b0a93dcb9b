import assert from "node:assert/strict";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createLogger } from "@mcp-gateway/common/logger";
import { createTracing } from "@mcp-gateway/common/tracing";
import { TaskStatus } from "@mcp-gateway/proto/mcp";
import type { TaskEvent } from "@mcp-gateway/proto/runner/v1";
import { createSandbox, DEFAULT_SANDBOX_LIMITS, type SandboxSpec } from "./sandbox/index.js";
import { createTaskManager } from "./task-manager.js";

const logger = createLogger({ name: "test", level: "silent" });
const tracer = createTracing({ serviceName: "test", instanceId: "t", logger }).tracer;
let ws: string;

before(async () => {
  ws = await mkdtemp(join(tmpdir(), "mcp-tm-"));
  await chmod(ws, 0o755);
  if (process.getuid?.() === 0) await chown(ws, 65534, 65534);
});
after(async () => {
  await rm(ws, { recursive: true, force: true });
});

const spec = (command: string, args: string[]): SandboxSpec => ({
  command,
  args,
  env: {},
  cwd: "",
  workspaceDir: ws,
  network: "none",
  timeoutMs: 10_000,
  limits: DEFAULT_SANDBOX_LIMITS,
});

async function events(tm: ReturnType<typeof createTaskManager>, id: string): Promise<TaskEvent[]> {
  const out: TaskEvent[] = [];
  for await (const e of tm.events(id, 0n, new AbortController().signal)) out.push(e);
  return out;
}

describe("runner task manager", () => {
  it("a Cancel that arrives before its Execute makes that Execute end as cancelled, unstarted", async () => {
    const tm = createTaskManager({
      sandbox: createSandbox({}),
      logger,
      maxConcurrent: 4,
      retentionMs: 60_000,
      maxRetainedBytes: 64 * 1024 * 1024,
      tracer,
    });
    const id = "task-00000000-0000-4000-8000-000000000001";
    assert.equal(tm.cancel(id), false);
    await tm.start(id, spec("sh", ["-c", "echo must-not-run"]));
    const evs = await events(tm, id);
    assert.equal(evs.length, 1);
    const last = evs[0]?.event;
    assert.equal(last?.case, "exited");
    assert.equal(last?.case === "exited" ? last.value.status : undefined, TaskStatus.CANCELLED);
    assert.ok(!evs.some((e) => e.event.case === "output"));
  });

  it("a released task's process is not kept (no per-task growth until retentionMs)", async () => {
    const real = createSandbox({});
    const spawned: WeakRef<object>[] = [];
    const tm = createTaskManager({
      sandbox: {
        ...real,
        spawn: async (s, h) => {
          const p = await real.spawn(s, h);
          spawned.push(new WeakRef(p));
          return p;
        },
      },
      logger,
      maxConcurrent: 4,
      retentionMs: 15 * 60_000,
      maxRetainedBytes: 64 * 1024 * 1024,
      tracer,
    });
    for (let i = 0; i < 3; i++) {
      const id = `task-00000000-0000-4000-8000-00000000010${i}`;
      await tm.start(id, spec("true", []));
      await events(tm, id);
      assert.equal(tm.release(id), true);
    }
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    for (let i = 0; i < 5 && spawned.some((r) => r.deref() !== undefined); i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    assert.equal(spawned.length, 3);
    // Before the fix the 15-minute expiry timer held each entry and its process.
    assert.deepEqual(
      spawned.map((r) => r.deref() === undefined),
      [true, true, true],
    );
    await real.close();
  });

  it("never starts a task again once its record expired", async () => {
    const tm = createTaskManager({
      sandbox: createSandbox({}),
      logger,
      maxConcurrent: 4,
      retentionMs: 50,
      maxRetainedBytes: 64 * 1024 * 1024,
      tracer,
    });
    const id = "task-00000000-0000-4000-8000-000000000002";
    await tm.start(id, spec("true", []));
    await events(tm, id);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(tm.has(id), false, "the record expired");
    assert.equal(tm.seen(id), true);
    await assert.rejects(tm.start(id, spec("true", [])), /already ran on this runner/);
  });

  it("retained events are bounded in bytes: a task that does not fit is refused, release frees room", async () => {
    const MiB = 1024 * 1024;
    const limits = { ...DEFAULT_SANDBOX_LIMITS, maxOutputBytes: 2 * MiB };
    const tm = createTaskManager({
      sandbox: createSandbox({}),
      logger,
      maxConcurrent: 8,
      retentionMs: 60_000,
      // room for one running task's reservation (2 × 2 MiB + margin), not two
      maxRetainedBytes: 6 * MiB,
      tracer,
    });
    const a = "task-00000000-0000-4000-8000-000000000003";
    const b = "task-00000000-0000-4000-8000-000000000004";
    const c = "task-00000000-0000-4000-8000-000000000005";
    await tm.start(a, { ...spec("sh", ["-c", "head -c 3000000 /dev/zero"]), limits });
    assert.ok(tm.retainedBytes() >= 4 * MiB, "a running task reserves its output caps");
    await assert.rejects(
      tm.start(b, { ...spec("true", []), limits }),
      (e: unknown) =>
        (e as { code?: string }).code === "resource_exhausted" &&
        /runner output budget is in use/.test((e as Error).message),
    );
    const evs = await events(tm, a);
    const out = evs.reduce(
      (n, e) => n + (e.event.case === "output" ? e.event.value.data.length : 0),
      0,
    );
    assert.equal(out, 2 * MiB, "stdout capped at maxOutputBytes");
    // finished: it holds what it produced (2 MiB + overhead), still too much for another reservation
    assert.ok(tm.retainedBytes() > 2 * MiB && tm.retainedBytes() < 3 * MiB);
    await assert.rejects(tm.start(b, { ...spec("true", []), limits }), /budget/);
    assert.equal(tm.release(a), true);
    assert.equal(tm.retainedBytes(), 0);
    assert.equal(tm.has(a), false);
    assert.equal(tm.seen(a), true);
    await tm.start(c, { ...spec("true", []), limits });
    await events(tm, c);
    assert.equal(tm.release("task-00000000-0000-4000-8000-00000000ffff"), false);
  });
});
