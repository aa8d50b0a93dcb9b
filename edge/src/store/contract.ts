import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { auditIndexColumns, sealAuditRecord, verifyAuditChain } from "../audit/chain.js";
import type { AuditKey } from "../audit/keys.js";
import { createSqliteStore } from "./sqlite.js";
import type {
  AuditEntry,
  FinishResult,
  RawAuditRow,
  TaskRecord,
  TaskState,
  TaskStore,
} from "./types.js";
import { TERMINAL_STATES } from "./types.js";

/** A fresh, empty store opened for one contract test. */
export interface ContractStore {
  /** The store under test. */
  store: TaskStore;
  /** Its stored audit rows in chain order, for verifyAuditChain. */
  rawAudit(): Promise<RawAuditRow[]>;
  /** Makes the database refuse every insert into the audit table until the returned undo runs. */
  refuseAuditInserts(): Promise<() => Promise<void>>;
}

/** How the contract suite gets stores of one implementation. */
export interface StoreContractOptions {
  /** Opens a fresh, empty store; the suite closes it at the end of each test. */
  open(): Promise<ContractStore>;
}

/** A task record with every field set; `over` replaces fields. */
export function sampleTask(id: string, over: Partial<TaskRecord> = {}): TaskRecord {
  return {
    id,
    state: "queued",
    command: "echo",
    args: ["hi", "wörld ✓"],
    env: { LANG: "C.UTF-8" },
    cwd: "sub/dir",
    workspace: "default",
    timeoutMs: 30_000,
    network: "none",
    limits: {
      memoryBytes: 1 << 20,
      maxProcesses: 8,
      maxFileSizeBytes: 4096,
      maxOpenFiles: 32,
      cpuSeconds: 5,
      maxOutputBytes: 65_536,
    },
    metadata: { team: "a", odd: 'quote " back\\slash nul\0 end' },
    principal: { sub: "alice", roles: ["developer"], tenant: "t1", scopes: ["exec"] },
    policyRevision: "r1",
    traceId: "0af7651916cd43dd8448eb211c80319c",
    runnerId: "",
    createdAt: 1_700_000_000_000,
    startedAt: null,
    finishedAt: null,
    statusMessage: "",
    result: null,
    ...over,
  };
}

/** An audit entry; `over` replaces fields. */
export function sampleAuditEntry(over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    time: 1_700_000_000_000,
    traceId: "trace",
    principal: { sub: "alice", roles: [], tenant: "t1", scopes: [] },
    operation: "execute",
    params: { command: "echo", args: ["a"] },
    decision: "allow",
    reasons: [],
    policyRevision: "r1",
    taskId: "",
    runnerId: "",
    outcome: "accepted",
    details: { n: 1 },
    ...over,
  };
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * The behaviour every TaskStore implementation must share, as a node:test suite. Call it from the
 * implementation's own test file (sqlite.test.ts, postgres.test.ts).
 *
 * @example
 * runStoreContract("sqlite", { open: async () => { const s = createSqliteStore({ path }); return { store: s, rawAudit: async () => [...s.rawAudit()], refuseAuditInserts } } });
 */
export function runStoreContract(name: string, options: StoreContractOptions): void {
  const withStore = (fn: (s: ContractStore) => Promise<void>) => async () => {
    const s = await options.open();
    try {
      await fn(s);
    } finally {
      await s.store.close();
    }
  };

  describe(`TaskStore contract: ${name}`, () => {
    it(
      "output retention: old and then oldest finished tasks lose their output; running tasks and audit never",
      withStore(async ({ store, rawAudit }) => {
        const kib = new Uint8Array(1024).fill(0x61);
        const mk = async (id: string, state: TaskState, createdAt: number, chunks: number) => {
          await store.createTask(sampleTask(id, { createdAt }));
          for (let i = 0; i < chunks; i++) {
            await store.appendOutput(id, "stdout", kib, createdAt, i + 1);
          }
          if (state !== "queued") await store.updateTask(id, { state, finishedAt: createdAt + 1 });
        };
        await mk("task-old", "completed", 1_000, 4);
        await mk("task-old-running", "running", 1_100, 4);
        await mk("task-mid", "failed", 5_000, 4);
        await mk("task-new", "completed", 9_000, 4);
        await store.appendAudit(sampleAuditEntry());
        // age: only the finished task created before 2000
        const byAge = await store.pruneOutput({ createdBefore: 2_000, maxTotalBytes: 1 << 30 });
        assert.deepEqual(byAge, { tasks: 1, bytes: 4096, totalBytes: 12 * 1024 });
        assert.deepEqual(await store.readOutput("task-old", 0, 100), []);
        assert.equal((await store.getTask("task-old"))?.outputPruned, true);
        assert.equal((await store.getTask("task-old"))?.state, "completed");
        assert.equal((await store.readOutput("task-old-running", 0, 100)).length, 4);
        // size: oldest finished first, until at most 6 KiB remain; the running task keeps its output
        const bySize = await store.pruneOutput({ createdBefore: 0, maxTotalBytes: 6 * 1024 });
        assert.deepEqual(bySize, { tasks: 2, bytes: 8192, totalBytes: 4096 });
        assert.deepEqual(await store.readOutput("task-new", 0, 100), []);
        assert.equal((await store.readOutput("task-old-running", 0, 100)).length, 4);
        // nothing left to prune: idempotent
        const again = await store.pruneOutput({ createdBefore: 0, maxTotalBytes: 0 });
        assert.deepEqual(again, { tasks: 0, bytes: 0, totalBytes: 4096 });
        assert.equal((await rawAudit()).length, 1);
      }),
    );

    it(
      "round-trips a task exactly and rejects a duplicate id",
      withStore(async ({ store }) => {
        const t = sampleTask("task-a");
        await store.createTask(t);
        assert.deepEqual(await store.getTask("task-a"), t);
        assert.equal(await store.getTask("task-missing"), undefined);
        await assert.rejects(store.createTask(sampleTask("task-a", { command: "other" })));
        assert.equal((await store.getTask("task-a"))?.command, "echo");
      }),
    );

    it(
      "applies patches and never changes a terminal task",
      withStore(async ({ store }) => {
        await store.createTask(sampleTask("task-b"));
        const running = await store.updateTask("task-b", {
          state: "running",
          runnerId: "runner-1",
          startedAt: 10,
        });
        assert.equal(running?.state, "running");
        assert.equal(running?.runnerId, "runner-1");
        assert.equal(running?.command, "echo");
        const result = {
          exitCode: 0,
          signal: "",
          stdoutTruncated: false,
          stderrTruncated: true,
          userCpuMs: 3,
          systemCpuMs: 1,
          maxRssKb: 1024,
          executionTimeMs: 12,
        };
        const done = await store.updateTask("task-b", {
          state: "completed",
          finishedAt: 20,
          result,
        });
        assert.deepEqual(await store.getTask("task-b"), done);
        assert.deepEqual(done?.result, result);
        const after = await store.updateTask("task-b", { state: "running", statusMessage: "late" });
        assert.equal(after?.state, "completed");
        assert.equal(after?.statusMessage, "");
        assert.equal((await store.getTask("task-b"))?.state, "completed");
        assert.equal(await store.updateTask("task-missing", { state: "failed" }), undefined);
      }),
    );

    it(
      "lets exactly one of several concurrent terminal transitions win",
      withStore(async ({ store }) => {
        await store.createTask(sampleTask("task-c", { state: "running" }));
        const finals: TaskState[] = ["completed", "failed", "cancelled", "timed_out"];
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            store.updateTask("task-c", {
              state: finals[i % finals.length] ?? "failed",
              statusMessage: `writer ${i}`,
            }),
          ),
        );
        const stored = await store.getTask("task-c");
        assert.ok(stored && TERMINAL_STATES.has(stored.state));
        for (const r of results) {
          assert.equal(r?.state, stored.state, "every caller sees the one winning terminal state");
          assert.equal(r?.statusMessage, stored.statusMessage);
        }
      }),
    );

    it(
      "finishes a task with its outcome's record in one write: once, only while the condition holds",
      withStore(async ({ store, rawAudit }) => {
        await store.appendAudit(sampleAuditEntry());
        await store.createTask(sampleTask("task-f", { state: "running", runnerId: "runner-1" }));
        const outcome = (t: TaskRecord) =>
          sampleAuditEntry({
            operation: "task_finished",
            decision: "none",
            taskId: t.id,
            runnerId: t.runnerId,
            outcome: t.state,
            details: { message: t.statusMessage },
          });
        const committed: FinishResult[] = [];
        const done = await store.finishTask(
          "task-f",
          { state: "completed", statusMessage: "exit 0", finishedAt: 30 },
          { runnerId: "runner-1" },
          outcome,
          (r) => committed.push(r),
        );
        assert.equal(done.applied, true);
        assert.equal(done.task?.state, "completed");
        assert.deepEqual(await store.getTask("task-f"), done.task);
        assert.equal(done.record?.seq, 2);
        assert.equal(done.record?.operation, "task_finished");
        assert.equal(done.record?.runnerId, "runner-1");
        assert.deepEqual(
          done.record?.details,
          { message: "exit 0" },
          "the entry is built from the patched task",
        );
        assert.deepEqual(committed, [done], "woken once, with the result");
        assert.deepEqual((await store.listAudit({ afterSeq: 1, limit: 10 }))[0], done.record);

        // Already terminal, a condition that does not hold, a missing task: nothing written.
        let built = 0;
        const counted = (t: TaskRecord) => {
          built++;
          return outcome(t);
        };
        const again = await store.finishTask("task-f", { state: "failed" }, {}, counted, (r) =>
          committed.push(r),
        );
        assert.deepEqual(again, { task: done.task, applied: false });
        await store.createTask(sampleTask("task-g", { state: "running", runnerId: "runner-1" }));
        const other = await store.finishTask(
          "task-g",
          { state: "failed" },
          { runnerId: "runner-2" },
          counted,
        );
        assert.equal(other.applied, false);
        assert.equal(other.task?.state, "running");
        assert.deepEqual(await store.finishTask("task-none", { state: "failed" }, {}, counted), {
          task: undefined,
          applied: false,
        });
        assert.equal(built, 0, "no entry is built for a finish that did not apply");
        assert.equal(committed.length, 1);

        // An entry that cannot be built does not stop the task finishing; the result says why.
        const refused = await store.finishTask("task-g", { state: "failed" }, {}, () => {
          throw new Error("no entry");
        });
        assert.equal(refused.applied, true);
        assert.equal(refused.record, undefined);
        assert.equal(refused.auditError?.message, "no entry");
        assert.equal((await store.getTask("task-g"))?.state, "failed");
        // Nor does one that cannot be sealed (NaN has no canonical JSON form).
        await store.createTask(sampleTask("task-s", { state: "running" }));
        const unsealed = await store.finishTask("task-s", { state: "completed" }, {}, (t) =>
          sampleAuditEntry({ taskId: t.id, details: { n: Number.NaN } }),
        );
        assert.equal(unsealed.applied, true);
        assert.equal(unsealed.record, undefined);
        assert.match(String(unsealed.auditError), /canonicalJson/);
        assert.equal((await store.getTask("task-s"))?.state, "completed");

        // A wake-up hook that throws does not turn the stored finish into a failure.
        await store.createTask(sampleTask("task-k", { state: "running" }));
        const hooked = await store.finishTask("task-k", { state: "cancelled" }, {}, outcome, () => {
          throw new Error("hook");
        });
        assert.equal(hooked.applied, true);
        assert.equal(hooked.record?.taskId, "task-k");

        // Concurrent finishes of one task among other appends: one wins, one outcome record.
        await store.createTask(sampleTask("task-h", { state: "running" }));
        const racing = await Promise.all([
          ...Array.from({ length: 6 }, (_, i) =>
            store.finishTask("task-h", { state: i % 2 ? "failed" : "completed" }, {}, outcome),
          ),
          ...Array.from({ length: 4 }, (_, i) => store.appendAudit(sampleAuditEntry({ time: i }))),
        ]);
        const won = racing.filter((r) => "applied" in r && r.applied);
        assert.equal(won.length, 1, "exactly one finish applies");
        const rows = await store.listAudit({ operation: "task_finished", limit: 10 });
        assert.deepEqual(
          rows.map((r) => r.taskId),
          ["task-f", "task-k", "task-h"],
        );
        assert.equal(rows[2]?.outcome, (await store.getTask("task-h"))?.state);
        const verdict = verifyAuditChain(await rawAudit());
        assert.equal(verdict.ok, true, verdict.firstBad?.reason);
        assert.equal(verdict.checked, 8);
      }),
    );

    it(
      "a finish whose record cannot be written stores neither the outcome nor the record",
      withStore(async ({ store, rawAudit, refuseAuditInserts }) => {
        await store.createTask(sampleTask("task-w", { state: "running" }));
        const undo = await refuseAuditInserts();
        let woken = 0;
        await assert.rejects(
          store.finishTask(
            "task-w",
            { state: "completed", finishedAt: 40 },
            {},
            (t) => sampleAuditEntry({ operation: "task_finished", taskId: t.id }),
            () => woken++,
          ),
        );
        assert.equal((await store.getTask("task-w"))?.state, "running", "the outcome rolled back");
        assert.equal(woken, 0, "nobody woken for a write that failed");
        await undo();
        const done = await store.finishTask(
          "task-w",
          { state: "completed", finishedAt: 41 },
          {},
          (t) => sampleAuditEntry({ operation: "task_finished", taskId: t.id }),
        );
        assert.equal(done.applied, true);
        assert.equal(done.record?.seq, 1);
        assert.equal(verifyAuditChain(await rawAudit()).ok, true);
      }),
    );

    it(
      "lists tasks in given states oldest first, up to a limit",
      withStore(async ({ store }) => {
        await store.createTask(sampleTask("t-3", { state: "running", createdAt: 3 }));
        await store.createTask(sampleTask("t-1", { state: "queued", createdAt: 1 }));
        await store.createTask(sampleTask("t-2", { state: "completed", createdAt: 2 }));
        await store.createTask(sampleTask("t-4", { state: "queued", createdAt: 4 }));
        const ids = async (states: TaskState[], limit: number) =>
          (await store.listTasksInStates(states, limit)).map((t) => t.id);
        assert.deepEqual(await ids(["queued", "running"], 10), ["t-1", "t-3", "t-4"]);
        assert.deepEqual(await ids(["queued", "running"], 2), ["t-1", "t-3"]);
        assert.deepEqual(await ids(["completed"], 10), ["t-2"]);
        assert.deepEqual(await ids([], 10), []);
        assert.deepEqual(
          (await store.listTasksInStates(["completed"], 1))[0],
          sampleTask("t-2", { state: "completed", createdAt: 2 }),
        );
      }),
    );

    it(
      "counts a tenant's and a principal's active tasks (the concurrent-task quotas)",
      withStore(async ({ store }) => {
        const owner = (tenant: string, sub: string) => ({ sub, roles: [], tenant, scopes: [] });
        await store.createTask(
          sampleTask("a-1", { state: "queued", principal: owner("t1", "alice") }),
        );
        await store.createTask(
          sampleTask("a-2", { state: "running", principal: owner("t1", "alice") }),
        );
        await store.createTask(
          sampleTask("a-3", { state: "created", principal: owner("t1", "bob") }),
        );
        await store.createTask(
          sampleTask("a-4", { state: "running", principal: owner("t2", "alice") }),
        );
        await store.createTask(
          sampleTask("a-5", { state: "completed", principal: owner("t1", "alice") }),
        );
        assert.deepEqual(await store.countActiveTasks("t1", "alice"), { tenant: 3, principal: 2 });
        assert.deepEqual(await store.countActiveTasks("t1", "carol"), { tenant: 3, principal: 0 });
        assert.deepEqual(await store.countActiveTasks("t2", "alice"), { tenant: 1, principal: 1 });
        assert.deepEqual(await store.countActiveTasks("t3", "alice"), { tenant: 0, principal: 0 });
        // A task leaving the active states stops counting.
        await store.updateTask("a-2", { state: "failed" });
        assert.deepEqual(await store.countActiveTasks("t1", "alice"), { tenant: 2, principal: 1 });
      }),
    );

    it(
      "numbers output per task from 1 and reads after a sequence, bytes intact",
      withStore(async ({ store }) => {
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        assert.equal(await store.appendOutput("task-d", "stdout", bytes("a"), 1), 1);
        assert.equal(await store.appendOutput("task-d", "stderr", all, 2), 2);
        assert.equal(await store.appendOutput("task-e", "stdout", bytes("c"), 3), 1);
        assert.equal(await store.appendOutput("task-d", "event", new Uint8Array(0), 4), 3);
        const rest = await store.readOutput("task-d", 1, 10);
        assert.deepEqual(
          rest.map((c) => [c.taskId, c.seq, c.kind, c.time]),
          [
            ["task-d", 2, "stderr", 2],
            ["task-d", 3, "event", 4],
          ],
        );
        assert.deepEqual([...(rest[0]?.data ?? [])], [...all]);
        assert.equal(rest[1]?.data.length, 0);
        assert.equal((await store.readOutput("task-d", 0, 1)).length, 1);
        assert.deepEqual(await store.readOutput("task-d", 3, 10), []);
        assert.deepEqual(await store.readOutput("task-none", 0, 10), []);
      }),
    );

    it(
      "stores a chunk once per runner event number, even when two followers race",
      withStore(async ({ store }) => {
        assert.equal(await store.appendOutput("task-r", "stdout", bytes("one"), 1, 3), 1);
        assert.equal(await store.appendOutput("task-r", "stdout", bytes("one"), 2, 3), 1);
        assert.equal(await store.appendOutput("task-r", "stderr", bytes("two"), 3, 4), 2);
        // Without a runner event number (edge notices) every call appends.
        assert.equal(await store.appendOutput("task-r", "event", bytes("x"), 4), 3);
        assert.equal(await store.appendOutput("task-r", "event", bytes("x"), 5), 4);
        // The same runner number on another task is another chunk.
        assert.equal(await store.appendOutput("task-s", "stdout", bytes("one"), 6, 3), 1);
        // Two followers appending the same 20 events concurrently.
        const racing = Array.from({ length: 40 }, (_, i) =>
          store.appendOutput("task-t", "stdout", bytes(`event ${i % 20}`), i, 100 + (i % 20)),
        );
        const seqs = await Promise.all(racing);
        for (let i = 0; i < 20; i++) assert.equal(seqs[i], seqs[i + 20], `event ${i}`);
        const read = await store.readOutput("task-t", 0, 100);
        assert.equal(read.length, 20, "one chunk per runner event");
        const texts = read.map((c) => new TextDecoder().decode(c.data)).sort();
        assert.deepEqual(texts, Array.from({ length: 20 }, (_, i) => `event ${i}`).sort());
        const r = await store.readOutput("task-r", 0, 10);
        assert.deepEqual(
          r.map((c) => [c.seq, new TextDecoder().decode(c.data)]),
          [
            [1, "one"],
            [2, "two"],
            [3, "x"],
            [4, "x"],
          ],
        );
      }),
    );

    it(
      "numbers concurrent appends to one task without gaps or duplicates",
      withStore(async ({ store }) => {
        const seqs = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            store.appendOutput("task-f", "stdout", bytes(`chunk ${i}`), i),
          ),
        );
        assert.deepEqual(
          [...seqs].sort((a, b) => a - b),
          Array.from({ length: 40 }, (_, i) => i + 1),
        );
        const read = await store.readOutput("task-f", 0, 100);
        assert.deepEqual(
          read.map((c) => c.seq),
          Array.from({ length: 40 }, (_, i) => i + 1),
        );
        for (const c of read) {
          assert.equal(new TextDecoder().decode(c.data), `chunk ${seqs.indexOf(c.seq)}`);
        }
      }),
    );

    it(
      "keeps a verifiable audit chain and filters listings",
      withStore(async ({ store, rawAudit }) => {
        const entries: AuditEntry[] = [
          sampleAuditEntry({ time: 100, operation: "execute" }),
          sampleAuditEntry({
            time: 200,
            operation: "read_file",
            decision: "deny",
            reasons: ["no"],
          }),
          sampleAuditEntry({
            time: 300,
            operation: "execute",
            principal: { sub: "bob", roles: [], tenant: "t2", scopes: [] },
          }),
          sampleAuditEntry({
            time: 400,
            operation: "cancel_task",
            principal: null,
            decision: "none",
          }),
          sampleAuditEntry({ time: 500, operation: "execute", decision: "deny" }),
        ];
        const appended = [];
        for (const e of entries) appended.push(await store.appendAudit(e));
        assert.deepEqual(
          appended.map((r) => r.seq),
          [1, 2, 3, 4, 5],
        );
        assert.equal(appended[1]?.prevHash, appended[0]?.hash);
        const verdict = verifyAuditChain(await rawAudit());
        assert.equal(verdict.ok, true);
        assert.equal(verdict.checked, 5);
        assert.equal(verdict.head, appended[4]?.hash);

        assert.deepEqual(await store.listAudit({ limit: 10 }), appended);
        const seqs = async (q: Parameters<TaskStore["listAudit"]>[0]) =>
          (await store.listAudit(q)).map((r) => r.seq);
        assert.deepEqual(await seqs({ operation: "execute", limit: 10 }), [1, 3, 5]);
        assert.deepEqual(await seqs({ decision: "deny", limit: 10 }), [2, 5]);
        assert.deepEqual(await seqs({ principal: "bob", limit: 10 }), [3]);
        assert.deepEqual(await seqs({ sinceMs: 300, limit: 10 }), [3, 4, 5]);
        assert.deepEqual(await seqs({ afterSeq: 2, limit: 2 }), [3, 4]);
        assert.deepEqual(
          await seqs({ operation: "execute", decision: "deny", principal: "alice", limit: 10 }),
          [5],
        );
        assert.deepEqual(await seqs({ decision: "none", limit: 10 }), [4]);
        assert.equal((await store.listAudit({ decision: "none", limit: 1 }))[0]?.principal, null);
      }),
    );

    it(
      "keeps the chain linear under concurrent appends",
      withStore(async ({ store, rawAudit }) => {
        const records = await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            store.appendAudit(sampleAuditEntry({ time: i, details: { i } })),
          ),
        );
        assert.deepEqual(
          records.map((r) => r.seq).sort((a, b) => a - b),
          Array.from({ length: 60 }, (_, i) => i + 1),
        );
        const verdict = verifyAuditChain(await rawAudit());
        assert.equal(verdict.ok, true, verdict.firstBad?.reason);
        assert.equal(verdict.checked, 60);
      }),
    );

    it(
      "pins a tool definition on first sight, holds a changed one until approved",
      withStore(async ({ store }) => {
        const first = await store.observeToolDefinition("fs", "read", "sha256:a", '{"v":1}', 1);
        assert.equal(first.change, "pinned");
        assert.equal(first.pin.approvedBy, "first-use");
        const again = await store.observeToolDefinition("fs", "read", "sha256:a", '{"v":1}', 2);
        assert.equal(again.change, "unchanged");
        const changed = await store.observeToolDefinition("fs", "read", "sha256:b", '{"v":2}', 3);
        assert.equal(changed.change, "changed");
        assert.equal(changed.pin.approvedDigest, "sha256:a");
        assert.equal(changed.pin.seenDigest, "sha256:b");
        // Seen again: still pending, reported once.
        const pending = await store.observeToolDefinition("fs", "read", "sha256:b", '{"v":2}', 4);
        assert.equal(pending.change, "unchanged");
        assert.equal(
          await store.approveToolDefinition("fs", "read", "sha256:c", "admin", 5),
          undefined,
        );
        const approved = await store.approveToolDefinition("fs", "read", "sha256:b", "admin", 6);
        assert.equal(approved?.approvedDigest, "sha256:b");
        assert.equal(approved?.approvedDefinition, '{"v":2}');
        assert.equal(approved?.approvedBy, "admin");
        await store.observeToolDefinition("fs", "write", "sha256:w", "{}", 7);
        await store.observeToolDefinition("git", "log", "sha256:g", "{}", 7);
        assert.deepEqual(
          (await store.listToolPins()).map((p) => `${p.server}/${p.tool}`),
          ["fs/read", "fs/write", "git/log"],
        );
        assert.deepEqual(
          (await store.listToolPins("fs")).map((p) => p.approvedDigest),
          ["sha256:b", "sha256:w"],
        );
      }),
    );

    it(
      "answers ping",
      withStore(async ({ store }) => {
        await assert.doesNotReject(store.ping());
      }),
    );
  });
}

/**
 * Writes a chain of `count` records, sealed as the edge seals them (`entryOf(i)` for the
 * i-th, keyed with `key`), straight into a new or empty SQLite store file: long chains for
 * tests and benchmarks of `audit verify` in seconds. Returns the head.
 */
export function fillSqliteAuditChain(
  path: string,
  count: number,
  key: AuditKey,
  entryOf: (i: number) => AuditEntry,
): { seq: number; hash: string } | undefined {
  createSqliteStore({ path }).close();
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF");
  const insert = db.prepare(
    `INSERT INTO audit (seq, time, principal, tenant, operation, decision, prev_hash, hash, body)
     VALUES (@seq, @time, @principal, @tenant, @operation, @decision, @prevHash, @hash, @body)`,
  );
  let prev: { seq: number; hash: string } | undefined;
  const fill = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const { record, body } = sealAuditRecord(entryOf(i), prev, key);
      insert.run({
        seq: record.seq,
        ...auditIndexColumns(record),
        prevHash: record.prevHash,
        hash: record.hash,
        body,
      });
      prev = { seq: record.seq, hash: record.hash };
    }
  });
  for (let i = 0; i < count; i += 50_000) fill(i, Math.min(count, i + 50_000));
  db.close();
  return prev;
}
