import assert from "node:assert/strict";
import { fdatasync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { verifyAuditChain } from "../audit/chain.js";
import { sampleAuditEntry, sampleTask } from "./contract.js";
import { createSqliteStore } from "./sqlite.js";
import type { AuditRecord } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "mcp-group-commit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("sqlite store: group commit (issue 13)", () => {
  it("commits with synchronous=NORMAL and makes every write durable by a WAL sync", async () => {
    const path = join(dir, "a.db");
    const store = createSqliteStore({ path });
    // Each awaited write waits for its own sync: none may resolve before one that started after it.
    for (let i = 0; i < 5; i++) await store.createTask(sampleTask(`task-${i}`));
    assert.deepEqual(store.writeStats(), { commits: 5, syncs: 5 });
    await store.close();
    const db = new Database(path, { readonly: true });
    assert.deepEqual(db.prepare("SELECT count(*) AS n FROM tasks").get(), { n: 5 });
    db.close();
  });

  it("writes issued together share one sync after the one already running", async () => {
    const store = createSqliteStore({ path: join(dir, "b.db") });
    // 40 writes in one tick: the first starts a sync, the others cannot trust it (it may have
    // started before their commit) and share the next one: 2 syncs. The 20 audit appends are
    // one transaction at the end of the tick: 21 commits.
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 === 0
          ? store.createTask(sampleTask(`task-${i}`))
          : store.appendAudit(sampleAuditEntry({ taskId: `task-${i}` })),
      ),
    );
    assert.deepEqual(store.writeStats(), { commits: 21, syncs: 2 });
    // A write while a sync runs joins the next one; the next after that starts its own.
    const first = store.updateTask("task-0", { state: "running" });
    const second = store.updateTask("task-2", { state: "running" });
    await Promise.all([first, second]);
    assert.deepEqual(store.writeStats(), { commits: 23, syncs: 4 });
    assert.equal((await store.getTask("task-2"))?.state, "running");
    await store.close();
  });

  it("audit appends of one tick are one transaction, chained in call order; a bad one fails alone", async () => {
    const store = createSqliteStore({ path: join(dir, "d.db") });
    await store.appendAudit(sampleAuditEntry({ taskId: "before" }));
    const before = store.writeStats().commits;
    const results = await Promise.allSettled([
      store.appendAudit(sampleAuditEntry({ taskId: "a" })),
      // NaN has no canonical JSON form: this entry cannot be sealed.
      store.appendAudit(sampleAuditEntry({ taskId: "bad", details: { n: Number.NaN } })),
      store.appendAudit(sampleAuditEntry({ taskId: "b" })),
    ]);
    assert.equal(store.writeStats().commits, before + 1);
    const [a, bad, b] = results;
    assert.equal(a?.status, "fulfilled");
    assert.equal(bad?.status, "rejected");
    assert.match(String((bad as PromiseRejectedResult).reason), /canonicalJson/);
    assert.equal(b?.status, "fulfilled");
    const ra = (a as PromiseFulfilledResult<AuditRecord>).value;
    const rb = (b as PromiseFulfilledResult<AuditRecord>).value;
    assert.deepEqual([ra.seq, rb.seq], [2, 3]);
    assert.equal(rb.prevHash, ra.hash);
    const rows = [...store.rawAudit()];
    assert.deepEqual(
      rows.map((r) => r.seq),
      [1, 2, 3],
    );
    // After close, an append fails with the store's error instead of hanging.
    await store.close();
    await assert.rejects(store.appendAudit(sampleAuditEntry({ taskId: "late" })));
  });

  it("a write that may be replayed does not wait; the next durable write syncs it too", async () => {
    const store = createSqliteStore({ path: join(dir, "c.db") });
    await store.createTask(sampleTask("task-r"));
    const replayed = { durable: false } as const;
    await store.updateTask("task-r", { state: "running" }, {}, replayed);
    await store.appendOutput("task-r", "stdout", new TextEncoder().encode("x"), 1, 1, replayed);
    assert.deepEqual(store.writeStats(), { commits: 3, syncs: 1 });
    // Visible at once, before any sync.
    assert.equal((await store.getTask("task-r"))?.state, "running");
    assert.equal((await store.readOutput("task-r", 0, 10)).length, 1);
    await store.updateTask("task-r", { state: "completed", finishedAt: 2 });
    assert.deepEqual(store.writeStats(), { commits: 4, syncs: 2 });
    await store.close();
  });

  it("an audit record appended not durable is synced by the write that follows it", async () => {
    const store = createSqliteStore({ path: join(dir, "e.db") });
    const record = await store.appendAudit(sampleAuditEntry({ taskId: "task-d" }), {
      durable: false,
    });
    // Committed and chained at once, no sync of its own.
    assert.deepEqual(store.writeStats(), { commits: 1, syncs: 0 });
    assert.equal((await store.listAudit({ limit: 10 })).at(-1)?.hash, record.hash);
    let durable = false;
    const waited = store.whenDurable().then(() => {
      durable = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(durable, false, "whenDurable resolved before any sync");
    await store.createTask(sampleTask("task-d"));
    await waited;
    assert.deepEqual(store.writeStats(), { commits: 2, syncs: 1 }, "whenDurable synced itself");
    // In a batch with a durable append, the batch syncs once (the other entry resolves at commit).
    const [a, b] = await Promise.all([
      store.appendAudit(sampleAuditEntry({ taskId: "a" }), { durable: false }),
      store.appendAudit(sampleAuditEntry({ taskId: "b" })),
    ]);
    assert.equal(b.seq, a.seq + 1);
    assert.deepEqual(store.writeStats(), { commits: 3, syncs: 2 });
    // A commit nothing synced yet, and a caller waiting for it: close syncs once more.
    await store.appendAudit(sampleAuditEntry({ taskId: "c" }), { durable: false });
    const last = store.whenDurable();
    await store.close();
    await last;
    assert.deepEqual(store.writeStats(), { commits: 4, syncs: 3 });
  });

  it("after a failed sync of the WAL, no write is acknowledged durable again", async () => {
    let calls = 0;
    const store = createSqliteStore({
      path: join(dir, "f.db"),
      // The disk loses a write-back once (EIO), then syncs fine: what Linux reports.
      syncWal: (fd, callback) => {
        calls++;
        if (calls === 2) {
          callback(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
        } else fdatasync(fd, callback);
      },
    });
    await store.createTask(sampleTask("task-f1"));
    const waiting = store.whenDurable();
    await assert.rejects(
      store.createTask(sampleTask("task-f2")),
      /could not be synced to disk \(EIO\)/,
    );
    await assert.rejects(waiting, /could not be synced/);
    // The next sync would succeed, but the lost pages stay lost: refused, not acknowledged.
    await assert.rejects(store.createTask(sampleTask("task-f3")), /no write is acknowledged/);
    await assert.rejects(
      store.appendAudit(sampleAuditEntry({ taskId: "f" })),
      /could not be synced/,
    );
    await assert.rejects(store.whenDurable(), /could not be synced/);
    await assert.rejects(store.ping(), /restart the edge/);
    assert.equal(calls, 2);
    await store.close();
  });

  it("a finish wakes its followers at commit and resolves after the sync; a failed one fails alone", async () => {
    let release: (() => void) | undefined;
    let held = false;
    const store = createSqliteStore({
      path: join(dir, "g.db"),
      syncWal: (fd, callback) => {
        if (!held) return fdatasync(fd, callback);
        release = () => fdatasync(fd, callback);
      },
    });
    await store.createTask(sampleTask("task-g", { state: "running" }));
    await store.createTask(sampleTask("task-bad", { state: "running" }));
    held = true;
    let woken = false;
    let settled = false;
    const finished = store
      .finishTask(
        "task-g",
        { state: "completed", finishedAt: 5 },
        {},
        (t) => sampleAuditEntry({ operation: "task_finished", taskId: t.id }),
        () => {
          woken = true;
        },
      )
      .finally(() => {
        settled = true;
      });
    for (let i = 0; !woken; i++) {
      assert.ok(i < 10_000, "the finish's committed hook never ran");
      await new Promise((r) => setImmediate(r));
    }
    assert.equal((await store.getTask("task-g"))?.state, "completed", "visible at commit");
    assert.equal(settled, false, "not resolved before the sync");
    const [bad, other] = await Promise.allSettled([
      // A finish whose write fails (the task's doc cannot be serialized), next to an append.
      store.finishTask("task-bad", { finishedAt: 1n as never }, {}, () => sampleAuditEntry()),
      store.appendAudit(sampleAuditEntry({ taskId: "other" }), { durable: false }),
    ]);
    assert.equal(bad.status, "rejected");
    assert.match(String((bad as PromiseRejectedResult).reason), /BigInt/);
    assert.equal(other.status, "fulfilled", "the batch's other append is not failed with it");
    assert.equal((await store.getTask("task-bad"))?.state, "running");
    for (let i = 0; !release; i++) {
      assert.ok(i < 10_000, "no sync started");
      await new Promise((r) => setImmediate(r));
    }
    held = false;
    release();
    const done = await finished;
    assert.equal(done.record?.taskId, "task-g");
    await store.close();
  });

  for (const raise of ["ABORT", "ROLLBACK"] as const) {
    it(`a finish whose record SQLite refuses with RAISE(${raise}) amid other appends`, async () => {
      const path = join(dir, `raise-${raise}.db`);
      const store = createSqliteStore({ path });
      await store.appendAudit(sampleAuditEntry({ taskId: "first" }));
      await store.createTask(sampleTask("task-x", { state: "running" }));
      const db = new Database(path);
      db.exec(`CREATE TRIGGER refuse_outcome BEFORE INSERT ON audit WHEN NEW.operation = 'task_finished'
               BEGIN SELECT RAISE(${raise}, 'outcome refused'); END`);
      db.close();
      const [a, x, b] = await Promise.allSettled([
        store.appendAudit(sampleAuditEntry({ taskId: "a" })),
        store.finishTask("task-x", { state: "completed" }, {}, (t) =>
          sampleAuditEntry({ operation: "task_finished", taskId: t.id }),
        ),
        store.appendAudit(sampleAuditEntry({ taskId: "b" })),
      ]);
      assert.equal(x.status, "rejected");
      assert.equal((await store.getTask("task-x"))?.state, "running", "the outcome is not stored");
      const rows = [...store.rawAudit()];
      if (raise === "ABORT") {
        // The savepoint undoes the finish alone; the batch's other appends land.
        assert.deepEqual([a.status, b.status], ["fulfilled", "fulfilled"]);
        assert.equal(rows.length, 3);
      } else {
        // SQLite rolled back the whole transaction: every append of the batch fails with it,
        // none is written outside it.
        assert.deepEqual([a.status, b.status], ["rejected", "rejected"]);
        assert.equal(rows.length, 1);
      }
      assert.equal(verifyAuditChain(rows).ok, true);
      // The store goes on working.
      assert.equal(
        (await store.appendAudit(sampleAuditEntry({ taskId: "after" }))).seq,
        rows.length + 1,
      );
      await store.close();
    });
  }

  it("has nothing to sync in memory", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    await store.createTask(sampleTask("task-m"));
    assert.deepEqual(store.writeStats(), { commits: 1, syncs: 0 });
    await store.close();
  });
});
