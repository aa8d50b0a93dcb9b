import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createLauncherPool, type PreparedLauncher } from "./launcher-pool.js";

// The pool's own bookkeeping, with `sleep` processes standing in for launchers (the real
// launcher, its cgroup placement and the attack suite run through it in sandbox.test.ts and
// test/attacks: the pool is on by default).

type Prep = { generation: number };

function fakeStart(started: PreparedLauncher<Prep>[], ready = true) {
  return async (p: Prep): Promise<PreparedLauncher<Prep>> => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const m: PreparedLauncher<Prep> = {
      p,
      child,
      cg: null,
      placed: Promise.resolve(ready),
      ...(ready ? { ready: true } : {}),
      leftover: () => "",
      detach() {},
      dispose() {
        child.kill("SIGKILL");
      },
    };
    started.push(m);
    return m;
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

const same = (a: Prep, b: Prep) => a.generation === b.generation;

/** A pool of `sleep` stand-ins; `started` collects every member it started. */
function poolOf(max: number, idleMs = 60_000) {
  const started: PreparedLauncher<Prep>[] = [];
  const pool = createLauncherPool<Prep>({
    max,
    idleMs,
    start: fakeStart(started),
    compatible: same,
  });
  return { pool, started };
}

describe("launcher pool", () => {
  it("starts empty, prepares one after the first miss, hands each member out once", async () => {
    const { pool } = poolOf(1);
    const p = { generation: 1 };
    assert.equal(pool.take(p), undefined, "nothing is prepared before the first task");
    await until(() => pool.size() >= 1, "a prepared member");
    const a = pool.take(p);
    assert.ok(a);
    assert.equal(pool.take(p), undefined, "a taken member is gone from the pool");
    pool.refill();
    await until(() => pool.size() >= 1, "a replacement");
    const b = pool.take(p);
    assert.ok(b);
    assert.notEqual(a, b, "never the same launcher twice");
    assert.notEqual(a.child.pid, b.child.pid);
    a.dispose();
    b.dispose();
    await pool.close();
  });

  it("grows by one per miss up to its maximum and never beyond", async () => {
    const { pool, started } = poolOf(2);
    const p = { generation: 1 };
    for (let i = 0; i < 5; i++) pool.take(p);
    assert.equal(pool.target(), 2);
    await until(() => pool.size() === 2, "two members");
    await sleep(50);
    assert.equal(pool.size(), 2, "bounded by max");
    await pool.close();
    for (const m of started) {
      assert.ok(m.child.exitCode !== null || m.child.signalCode !== null, "closed members exit");
    }
  });

  it("shrinks back after a quiet period and disposes the surplus", async () => {
    const { pool, started } = poolOf(3, 100);
    const p = { generation: 1 };
    for (let i = 0; i < 4; i++) pool.take(p);
    await until(() => pool.size() === 3, "three members");
    await until(() => pool.target() === 1 && pool.size() === 1, "shrunk to one");
    await until(
      () => started.filter((m) => m.child.signalCode !== null).length >= 2,
      "the surplus stopped",
    );
    await pool.close();
  });

  it("drops members of an older preparation instead of handing them out", async () => {
    const { pool, started } = poolOf(2);
    pool.take({ generation: 1 });
    await until(() => pool.size() === 2, "members");
    const old = [...started];
    assert.equal(pool.take({ generation: 2 }), undefined);
    await until(() => old.every((m) => m.child.signalCode !== null), "the old members stopped");
    await until(() => pool.size() >= 1, "a member of the new preparation");
    assert.equal(pool.take({ generation: 2 })?.p.generation, 2);
    await pool.close();
    for (const m of started) m.dispose();
  });

  it("max 0 turns it off: nothing is ever started", async () => {
    const { pool, started } = poolOf(0);
    assert.equal(pool.take({ generation: 1 }), undefined);
    await sleep(50);
    assert.equal(started.length, 0);
    await pool.close();
  });

  it("a member that failed to start is not retried at once (no spawn loop)", async () => {
    let calls = 0;
    const pool = createLauncherPool<Prep>({
      max: 2,
      idleMs: 60_000,
      start: async () => {
        calls++;
        return null;
      },
      compatible: same,
    });
    pool.take({ generation: 1 });
    await sleep(100);
    assert.equal(calls, 1);
    assert.equal(pool.size(), 0);
    await pool.close();
  });
  it("keeps members of another kind, and makes room for a task's kind when full (ADR 0028)", async () => {
    type Shape = { generation: number; net: string };
    const started: PreparedLauncher<Shape>[] = [];
    const pool = createLauncherPool<Shape>({
      max: 2,
      idleMs: 60_000,
      start: fakeStart(started as unknown as PreparedLauncher<Prep>[]) as unknown as (
        p: Shape,
      ) => Promise<PreparedLauncher<Shape>>,
      compatible: (a, b) => a.generation === b.generation,
      matches: (a, b) => a.net === b.net,
    });
    const none = { generation: 1, net: "none" };
    const host = { generation: 1, net: "host" };
    pool.take(none);
    pool.take(none);
    await until(() => pool.size() === 2, "two members for network none");
    // A task of the other kind finds none; the oldest of the full pool makes room, the other
    // stays for the next task of its kind.
    assert.equal(pool.take(host), undefined);
    await until(() => started.filter((m) => m.p.net === "host").length === 1, "a host member");
    await until(() => pool.size() === 2, "a full pool again");
    await until(() => started[0]?.child.signalCode === "SIGKILL", "the oldest member stopped");
    const h = pool.take(host);
    assert.equal(h?.p.net, "host");
    const n = pool.take(none);
    assert.equal(n?.p.net, "none");
    h?.dispose();
    n?.dispose();
    await pool.close();
  });

  it("a member that ends before it is ready counts as a failed start: the next one waits", async () => {
    const started: PreparedLauncher<Prep>[] = [];
    const pool = createLauncherPool<Prep>({
      max: 1,
      idleMs: 60_000,
      start: fakeStart(started, false),
      compatible: same,
    });
    const p = { generation: 1 };
    pool.take(p);
    await until(() => started.length === 1, "a first member");
    const first = started[0] as PreparedLauncher<Prep>;
    first.dispose(); // (its bwrap failed, say)
    pool.discard(first);
    await sleep(300);
    assert.equal(started.length, 1, "no member restarted at once");
    await pool.close();
  });
});
