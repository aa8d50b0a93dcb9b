import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createSqliteStore } from "../store/sqlite.js";
import type { TaskRecord } from "../store/types.js";
import { createReadBounds, readOutputTail } from "./read-bounds.js";

const alice = { sub: "alice", roles: ["developer"], tenant: "acme", scopes: [] };
const bob = { sub: "bob", roles: ["developer"], tenant: "acme", scopes: [] };
const exhausted = (err: unknown) =>
  err instanceof ConnectError && err.code === Code.ResourceExhausted;

function task(id: string): TaskRecord {
  return {
    id,
    state: "completed",
    command: "yes",
    args: [],
    env: {},
    cwd: "",
    workspace: "default",
    timeoutMs: 1000,
    network: "none",
    limits: {
      memoryBytes: 0,
      maxProcesses: 0,
      maxFileSizeBytes: 0,
      maxOpenFiles: 0,
      cpuSeconds: 0,
      maxOutputBytes: 0,
    },
    metadata: {},
    principal: alice,
    policyRevision: "r",
    traceId: "t",
    runnerId: "",
    createdAt: 0,
    startedAt: null,
    finishedAt: null,
    statusMessage: "",
    result: null,
  };
}

describe("GetTaskStatus output tail (issue 21, finding 5)", () => {
  it("returns the last bytes of each stream of a 10 MiB task, reading from the end only", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    await store.createTask(task("t1"));
    const chunk = new Uint8Array(64 * 1024);
    for (let i = 0; i < 160; i++) {
      chunk.fill(48 + (i % 10));
      await store.appendOutput("t1", "stdout", chunk, i, i + 1);
      if (i % 40 === 0) await store.appendOutput("t1", "stderr", Buffer.from(`err ${i}\n`), i);
    }
    let read = 0;
    const counting = {
      readOutput: async (id: string, after: number, limit: number) => {
        const chunks = await store.readOutput(id, after, limit);
        for (const c of chunks) read += c.data.byteLength;
        return chunks;
      },
    };
    const tail = await readOutputTail(counting, "t1", 100_000, true);
    assert.equal(tail.stdout.byteLength, 100_000);
    assert.equal(tail.stdout.at(-1), 48 + (159 % 10), "the very last byte is the last one stored");
    assert.equal(tail.stdoutCut, true);
    assert.ok(read < 2 * 1024 * 1024, `read ${read} bytes, far less than the 10 MiB stored`);
    // Finished tasks: the end is remembered, a second read only reads the tail's windows.
    read = 0;
    await readOutputTail(counting, "t1", 100_000, true);
    assert.ok(read <= 16 * 64 * 1024, `second read ${read} bytes`);
    // Small outputs come back whole and not cut.
    await store.createTask(task("t2"));
    await store.appendOutput("t2", "stdout", Buffer.from("hello\n"), 0, 1);
    await store.appendOutput("t2", "stderr", Buffer.from("oops\n"), 0, 2);
    const small = await readOutputTail(store, "t2", 100_000);
    assert.equal(Buffer.from(small.stdout).toString(), "hello\n");
    assert.equal(Buffer.from(small.stderr).toString(), "oops\n");
    assert.equal(small.stdoutCut || small.stderrCut, false);
    await store.createTask(task("t3"));
    const none = await readOutputTail(store, "t3", 100);
    assert.equal(none.stdout.byteLength + none.stderr.byteLength, 0);
    await store.close();
  });
});

describe("read bounds: byte budget and followers (issue 21, finding 5)", () => {
  it("a principal past its byte budget is refused with retry-after; others are not; it refills", () => {
    let t = 0;
    const b = createReadBounds({
      issuer: "i",
      bytesPerSecond: 1000,
      burstBytes: 10_000,
      followersPerTask: 2,
      followersPerPrincipal: 3,
      now: () => t,
    });
    b.check(alice);
    b.spend(alice, 630_000); // one large response is allowed, then paid for
    assert.throws(() => b.check(alice), exhausted);
    try {
      b.check(alice);
    } catch (err) {
      assert.ok(Number((err as ConnectError).metadata.get("retry-after")) >= 600);
    }
    b.check(bob);
    t += 700_000;
    b.check(alice);
  });

  it("bounds followers per task and per principal, and releases them", () => {
    const b = createReadBounds({
      issuer: "i",
      bytesPerSecond: 1000,
      burstBytes: 10_000,
      followersPerTask: 2,
      followersPerPrincipal: 3,
    });
    const r1 = b.follow(alice, "t1");
    b.follow(bob, "t1");
    assert.throws(() => b.follow(alice, "t1"), /t1 already has 2 followers/);
    b.follow(alice, "t2");
    b.follow(alice, "t3");
    assert.throws(() => b.follow(alice, "t4"), /alice already follows 3/);
    r1();
    r1(); // idempotent
    b.follow(alice, "t1");
    assert.throws(() => b.follow(alice, "t5"), exhausted);
  });
});
