import { chmodSync, closeSync, existsSync, fdatasync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { auditIndexColumns, GENESIS_HASH, sealAuditRecord } from "../audit/chain.js";
import type { AuditKey } from "../audit/keys.js";
import { conditionHolds } from "./condition.js";
import { approvePin, observePin, type ToolPin } from "./tool-pins.js";
import type {
  AuditEntry,
  AuditQuery,
  AuditRecord,
  ChunkKind,
  FinishResult,
  OutputChunk,
  OutputRetention,
  PruneResult,
  RawAuditRow,
  TaskCondition,
  TaskPatch,
  TaskRecord,
  TaskState,
  TaskStore,
  WriteOptions,
} from "./types.js";
import { ACTIVE_STATES, TERMINAL_STATES } from "./types.js";

/** Options for {@link createSqliteStore}. */
export interface SqliteStoreOptions {
  /** Path of the database file (created with its directory, mode 0600), or ":memory:". */
  path: string;
  /** Key for the audit chain's HMACs (see audit/keys.ts); unkeyed sha256 chain without. */
  auditKey?: AuditKey | undefined;
  /** How the WAL is synced (default `fs.fdatasync`); tests inject the disk's failures here. */
  syncWal?: (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;
}

/** Ordered schema migrations; each runs once, in a transaction. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY,
     state TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     doc TEXT NOT NULL
   );
   CREATE INDEX tasks_state ON tasks(state, created_at);
   CREATE TABLE task_output (
     task_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     kind TEXT NOT NULL,
     data BLOB NOT NULL,
     time INTEGER NOT NULL,
     PRIMARY KEY (task_id, seq)
   ) WITHOUT ROWID;
   CREATE TABLE audit (
     seq INTEGER PRIMARY KEY,
     time INTEGER NOT NULL,
     principal TEXT NOT NULL,
     operation TEXT NOT NULL,
     decision TEXT NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL,
     body TEXT NOT NULL
   );
   CREATE INDEX audit_time ON audit(time);`,
  `ALTER TABLE audit ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
   CREATE INDEX audit_tenant ON audit(tenant, seq);`,
  `ALTER TABLE task_output ADD COLUMN runner_seq INTEGER;
   CREATE UNIQUE INDEX task_output_runner_seq ON task_output(task_id, runner_seq);`,
  `CREATE TABLE tool_pins (
     server TEXT NOT NULL,
     tool TEXT NOT NULL,
     doc TEXT NOT NULL,
     PRIMARY KEY (server, tool)
   ) WITHOUT ROWID;`,
  // Output retention looks for tasks whose output is still stored: without this it read every
  // finished task's record at each pass (O(all tasks ever), on the event loop: 6 ms at 15,000
  // tasks, 24 ms at 50,000, every minute, growing for the 7-day retention).
  `CREATE INDEX tasks_unpruned ON tasks(created_at) WHERE json_extract(doc, '$.outputPruned') IS NULL;`,
  // The concurrent-task quotas count a tenant's active tasks at every submission: without this
  // each submission parsed every active task's record in JS (7 % of the edge's busy time at
  // 55 tasks/s, growing with the number of tasks in flight).
  `CREATE INDEX tasks_active_owner ON tasks(json_extract(doc, '$.principal.tenant'), json_extract(doc, '$.principal.sub'))
     WHERE state IN ('created', 'queued', 'running');`,
];

/** Counters of the store's writes (for tests and benchmarks: writes and syncs per task). */
export interface SqliteWriteStats {
  /** Write transactions committed. */
  commits: number;
  /** fdatasync calls on the WAL (each makes every commit before it durable). */
  syncs: number;
}

/** The SQLite store, with raw access for audit verification. */
export interface SqliteStore extends TaskStore {
  /** Stored audit rows in order, exactly as on disk. */
  rawAudit(): IterableIterator<RawAuditRow>;
  /** Commits and WAL syncs so far. */
  writeStats(): SqliteWriteStats;
}

/** Audit rows as a SELECT returns them (raw: seq, time, principal, tenant, operation, decision, prev_hash, hash, body). */
type RawAuditTuple = [number, number, string, string, string, string, string, string, string];

/**
 * Opens a store file read-only to read audit rows by sequence range — what `audit verify`'s
 * worker threads do on long chains ({@link TaskStore.auditRangeSource}).
 */
export function openAuditRangeReader(path: string): {
  /**
   * Rows with from ≤ seq ≤ to (from null: no lower bound), in order; when they end before `to` (a gap, or a tail
   * removed), also the first row after `to`, so the caller sees where the chain resumes.
   */
  read(from: number | null, to: number): RawAuditRow[];
  close(): void;
} {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  const columns = "seq, time, principal, tenant, operation, decision, prev_hash, hash, body";
  const range = db
    .prepare<[number, number], RawAuditTuple>(
      `SELECT ${columns} FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq`,
    )
    .raw(true);
  const upTo = db
    .prepare<[number, number], RawAuditTuple>(
      `SELECT ${columns} FROM audit WHERE seq <= ? ORDER BY seq LIMIT ?`,
    )
    .raw(true);
  const after = db
    .prepare<[number], RawAuditTuple>(
      `SELECT ${columns} FROM audit WHERE seq > ? ORDER BY seq LIMIT 1`,
    )
    .raw(true);
  const toRow = ([
    seq,
    time,
    principal,
    tenant,
    operation,
    decision,
    prevHash,
    hash,
    body,
  ]: RawAuditTuple): RawAuditRow => ({
    seq,
    prevHash,
    hash,
    body,
    columns: { time, principal, tenant, operation, decision },
  });
  return {
    read(from, to) {
      // Without a lower bound, at most the rows 1..to plus one: any more is a break already.
      const rows = (from === null ? upTo.all(to, Math.max(0, to) + 1) : range.all(from, to)).map(
        toRow,
      );
      if ((rows.at(-1)?.seq ?? Number.NEGATIVE_INFINITY) < to) {
        const next = after.get(to);
        if (next) rows.push(toRow(next));
      }
      return rows;
    },
    close: () => db.close(),
  };
}

/**
 * The embedded default store: one SQLite file in WAL mode, where a resolved
 * write survives a crash of the process or the machine.
 *
 * Durability is SQLite's `synchronous=FULL` (the WAL synced at every commit)
 * done as a group commit off the event loop (issue 13): a write commits with
 * `synchronous=NORMAL` (no sync in the commit itself), then resolves only after
 * an fdatasync of the WAL file that started after its commit. All commits made
 * while one sync runs share the next one, and the sync runs on libuv's thread
 * pool, so the event loop never waits for the disk. The WAL is synced before
 * every checkpoint (NORMAL does that too), so the database file never holds a
 * change the WAL lost. `:memory:` has nothing to sync.
 *
 * @example
 * const store = createSqliteStore({ path: ".data/gateway.db" });
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  if (options.path !== ":memory:") {
    mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
  }
  const db = new Database(options.path);
  if (options.path !== ":memory:") chmodSync(options.path, 0o600);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  migrate(db);
  const stats: SqliteWriteStats = { commits: 0, syncs: 0 };
  // Group commit: see the doc comment. The WAL exists once the database was read in WAL mode
  // (migrate did); it is never deleted while this connection is open. Without it, FULL stays.
  const walPath = `${options.path}-wal`;
  const walFd =
    options.path !== ":memory:" && existsSync(walPath) ? openSync(walPath, "r") : undefined;
  if (walFd !== undefined) db.pragma("synchronous = NORMAL");
  const syncWal = options.syncWal ?? fdatasync;
  let syncing: Promise<void> | undefined;
  let nextSync: Promise<void> | undefined;
  /**
   * Set by the first failed sync, for good: the kernel reports a lost write-back once, and a later
   * sync that succeeds does not bring the lost pages back — SQLite's recovery would then stop at
   * that hole and drop every later frame too. So nothing is acknowledged durable any more.
   */
  let walFailure: Error | undefined;
  /** whenDurable() callers, settled by the next sync that starts. */
  let syncWaiters: ((err?: Error) => void)[] = [];
  /**
   * Counts a commit and resolves once it is durable: joins the next WAL sync
   * (a sync already running may have started before this commit).
   */
  function durable(): Promise<void> {
    stats.commits++;
    return walFd === undefined ? Promise.resolve() : sync();
  }
  function sync(): Promise<void> {
    if (walFd === undefined) return Promise.resolve();
    if (walFailure) return Promise.reject(walFailure);
    if (!syncing) {
      stats.syncs++;
      const covered = syncWaiters;
      syncWaiters = [];
      syncing = new Promise<void>((resolve, reject) =>
        syncWal(walFd, (err) => {
          if (err) {
            walFailure ??= new Error(
              `the store's write-ahead log could not be synced to disk (${err.code ?? err.message}): no write is acknowledged any more; restart the edge once the disk is healthy`,
              { cause: err },
            );
            for (const w of [...covered, ...syncWaiters.splice(0)]) w(walFailure);
            reject(walFailure);
            return;
          }
          for (const w of covered) w();
          resolve();
        }),
      ).finally(() => {
        syncing = undefined;
      });
      return syncing;
    }
    const again = () => {
      nextSync = undefined;
      return sync();
    };
    nextSync ??= syncing.then(again, again);
    return nextSync;
  }

  const selectPin = db.prepare<[string, string], { doc: string }>(
    "SELECT doc FROM tool_pins WHERE server = ? AND tool = ?",
  );
  const writePin = db.prepare<[string, string, string]>(
    "INSERT INTO tool_pins (server, tool, doc) VALUES (?, ?, ?) ON CONFLICT (server, tool) DO UPDATE SET doc = excluded.doc",
  );
  const allPins = db.prepare<[], { doc: string }>(
    "SELECT doc FROM tool_pins ORDER BY server, tool",
  );
  const serverPins = db.prepare<[string], { doc: string }>(
    "SELECT doc FROM tool_pins WHERE server = ? ORDER BY tool",
  );
  const insertTask = db.prepare(
    "INSERT INTO tasks (id, state, created_at, doc) VALUES (@id, @state, @createdAt, @doc)",
  );
  const selectTask = db.prepare<[string], { doc: string }>("SELECT doc FROM tasks WHERE id = ?");
  const writeTask = db.prepare("UPDATE tasks SET state = @state, doc = @doc WHERE id = @id");
  const insertOutput = db.prepare<
    [{ taskId: string; kind: string; data: Buffer; time: number; runnerSeq: number | null }],
    { seq: number }
  >(
    `INSERT INTO task_output (task_id, seq, kind, data, time, runner_seq)
     SELECT @taskId, COALESCE(MAX(seq), 0) + 1, @kind, @data, @time, @runnerSeq
       FROM task_output WHERE task_id = @taskId
     ON CONFLICT (task_id, runner_seq) DO NOTHING
     RETURNING seq`,
  );
  const storedRunnerSeq = db.prepare<[string, number], { seq: number }>(
    "SELECT seq FROM task_output WHERE task_id = ? AND runner_seq = ?",
  );
  const selectOutput = db.prepare<
    [string, number, number],
    { seq: number; kind: string; data: Buffer; time: number }
  >(
    "SELECT seq, kind, data, time FROM task_output WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
  );
  // Output retention: finished tasks (terminal states are constants, not input) oldest first.
  const terminal = [...TERMINAL_STATES].map((s) => `'${s}'`).join(", ");
  const unprunedBefore = db.prepare<[number, number], { id: string }>(
    // INDEXED BY: a plan that cannot use the partial index is an error, not a silent scan.
    `SELECT id FROM tasks INDEXED BY tasks_unpruned
      WHERE json_extract(doc, '$.outputPruned') IS NULL AND state IN (${terminal})
        AND created_at < ? ORDER BY created_at LIMIT ?`,
  );
  // INDEXED BY: a plan that cannot use the partial index is an error, not a silent scan (also
  // when ACTIVE_STATES no longer matches the index's WHERE, which a migration fixes).
  const active = ACTIVE_STATES.map((s) => `'${s}'`).join(", ");
  const activeOfOwner = db.prepare<[string, string], { tenant: number; principal: number }>(
    `SELECT count(*) AS tenant,
            coalesce(sum(json_extract(doc, '$.principal.sub') = ?), 0) AS principal
       FROM tasks INDEXED BY tasks_active_owner
      WHERE json_extract(doc, '$.principal.tenant') = ?
        AND state IN (${active})`,
  );
  const outputBytes = db.prepare<[string], { b: number }>(
    "SELECT COALESCE(SUM(length(data)), 0) AS b FROM task_output WHERE task_id = ?",
  );
  const totalOutputBytes = db.prepare<[], { b: number }>(
    "SELECT COALESCE(SUM(length(data)), 0) AS b FROM task_output",
  );
  const deleteOutput = db.prepare("DELETE FROM task_output WHERE task_id = ?");
  const markPruned = db.prepare(
    "UPDATE tasks SET doc = json_set(doc, '$.outputPruned', json('true')) WHERE id = ?",
  );
  const pruneTask = db.transaction((id: string): number => {
    const bytes = outputBytes.get(id)?.b ?? 0;
    deleteOutput.run(id);
    markPruned.run(id);
    return bytes;
  });
  const lastAudit = db.prepare<[], { seq: number; hash: string }>(
    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
  );
  const insertAudit = db.prepare(
    `INSERT INTO audit (seq, time, principal, tenant, operation, decision, prev_hash, hash, body)
     VALUES (@seq, @time, @principal, @tenant, @operation, @decision, @prevHash, @hash, @body)`,
  );
  const allAudit = db.prepare<
    [],
    {
      seq: number;
      prev_hash: string;
      hash: string;
      body: string;
      time: number;
      principal: string;
      tenant: string;
      operation: string;
      decision: string;
    }
  >(
    "SELECT seq, prev_hash, hash, body, time, principal, tenant, operation, decision FROM audit ORDER BY seq",
  );

  /** The compare-and-set of updateTask: the patched task, or undefined when not applied. */
  function applyPatch(
    id: string,
    patch: TaskPatch,
    condition: TaskCondition,
  ): { task: TaskRecord | undefined; applied: boolean } {
    const row = selectTask.get(id);
    if (!row) return { task: undefined, applied: false };
    const current = JSON.parse(row.doc) as TaskRecord;
    if (TERMINAL_STATES.has(current.state)) return { task: current, applied: false };
    if (!conditionHolds(current, condition)) return { task: current, applied: false };
    const next: TaskRecord = { ...current, ...patch };
    writeTask.run({ id, state: next.state, doc: JSON.stringify(next) });
    return { task: next, applied: true };
  }
  const update = db.transaction(
    (id: string, patch: TaskPatch, condition: TaskCondition) =>
      applyPatch(id, patch, condition).task,
  );

  /**
   * Audit appends are batched (issue 13): every append made in one turn of the event loop is
   * sealed and inserted in one transaction at the end of that turn, in call order, then made
   * durable by one WAL sync. A transaction's fixed cost (BEGIN/COMMIT, the WAL frames of the
   * table's and both indexes' pages, the head's read) was most of a read's audit cost under
   * load. An entry that cannot be sealed fails alone; a failed insert fails its whole batch.
   * An append made with `{ durable: false }` resolves once committed, also in a batch that syncs
   * for its other entries. A task's finish joins the batch: its patch and its outcome's record
   * are written at its place in it, in a savepoint of their own (a failed write of either fails
   * that finish alone, unless SQLite rolled back the whole transaction: then the batch fails).
   */
  type Head = { seq: number; hash: string } | undefined;
  interface PendingAudit {
    /** Runs inside the batch's transaction at the chain's head; `wrote`: it changed the database. */
    write(head: Head): { head: Head; result: AuditRecord | FinishResult | Error; wrote: boolean };
    durable: boolean;
    committed?(result: AuditRecord | FinishResult): void;
    resolve(result: AuditRecord | FinishResult): void;
    reject(err: unknown): void;
  }
  let pendingAudit: PendingAudit[] = [];
  /** Seals an entry at `head` and inserts it; the new head, or the reason it could not be sealed. */
  function insertEntry(entry: AuditEntry, head: Head): { head: Head; record: AuditRecord | Error } {
    let next: { record: AuditRecord; body: string };
    try {
      next = sealAuditRecord(entry, head, options.auditKey);
    } catch (err) {
      return { head, record: err instanceof Error ? err : new Error(String(err)) };
    }
    const { record, body } = next;
    insertAudit.run({
      seq: record.seq,
      ...auditIndexColumns(record),
      prevHash: record.prevHash,
      hash: record.hash,
      body,
    });
    return { head: { seq: record.seq, hash: record.hash }, record };
  }
  const insertAuditBatch = db.transaction((batch: readonly PendingAudit[]) => {
    let head: Head = lastAudit.get();
    return batch.map((p) => {
      const done = p.write(head);
      // SQLite ended the transaction (rolled it back): write nothing more, fail the batch.
      if (!db.inTransaction) throw new Error("the store rolled back the audit batch");
      head = done.head;
      return done;
    });
  });
  /** A finish's own part of a batch (see finishTask). */
  const savepoint = db.prepare("SAVEPOINT finish");
  const rollbackTo = db.prepare("ROLLBACK TO finish");
  const release = db.prepare("RELEASE finish");
  /** Writes the pending appends (one transaction), then settles each once durable. */
  function flushAudit(): void {
    const batch = pendingAudit;
    pendingAudit = [];
    if (batch.length === 0) return;
    let written: ReturnType<PendingAudit["write"]>[];
    try {
      written = insertAuditBatch(batch);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    // Nothing written (every entry refused, no finish applied): no commit to wait for.
    if (written.every((w) => !w.wrote)) {
      for (const [i, p] of batch.entries()) {
        const { result } = written[i] as (typeof written)[number];
        if (result instanceof Error) p.reject(result);
        else p.resolve(result);
      }
      return;
    }
    let done: Promise<void> | undefined;
    if (batch.some((p, i) => p.durable && written[i]?.wrote)) done = durable();
    else stats.commits++;
    for (const [i, p] of batch.entries()) {
      const { result } = written[i] as (typeof written)[number];
      if (result instanceof Error) {
        p.reject(result);
        continue;
      }
      try {
        p.committed?.(result);
      } catch {
        // The caller's wake-up hook; the write itself stands.
      }
      if (!p.durable || done === undefined) p.resolve(result);
      else done.then(() => p.resolve(result), p.reject);
    }
  }
  function enqueue(p: PendingAudit): void {
    pendingAudit.push(p);
    if (pendingAudit.length === 1) setImmediate(flushAudit);
  }

  return {
    async createTask(task) {
      insertTask.run({
        id: task.id,
        state: task.state,
        createdAt: task.createdAt,
        doc: JSON.stringify(task),
      });
      await durable();
    },
    async getTask(id) {
      const row = selectTask.get(id);
      return row ? (JSON.parse(row.doc) as TaskRecord) : undefined;
    },
    async updateTask(id, patch, condition = {}, write: WriteOptions = {}) {
      const result = update(id, patch, condition);
      if (write.durable === false) stats.commits++;
      else await durable();
      return result;
    },
    async listTasksInStates(states: readonly TaskState[], limit: number) {
      if (states.length === 0) return [];
      const marks = states.map(() => "?").join(",");
      const rows = db
        .prepare<unknown[], { doc: string }>(
          `SELECT doc FROM tasks WHERE state IN (${marks}) ORDER BY created_at LIMIT ?`,
        )
        .all(...states, limit);
      return rows.map((r) => JSON.parse(r.doc) as TaskRecord);
    },
    async countActiveTasks(tenant: string, sub: string) {
      const row = activeOfOwner.get(sub, tenant);
      return { tenant: row?.tenant ?? 0, principal: row?.principal ?? 0 };
    },
    async appendOutput(
      taskId: string,
      kind: ChunkKind,
      data: Uint8Array,
      time: number,
      runnerSeq?: number,
      write: WriteOptions = {},
    ) {
      const row =
        insertOutput.get({
          taskId,
          kind,
          data: Buffer.from(data),
          time,
          runnerSeq: runnerSeq ?? null,
        }) ?? (runnerSeq !== undefined ? storedRunnerSeq.get(taskId, runnerSeq) : undefined);
      if (!row) throw new Error("appendOutput: insert returned no row");
      if (write.durable === false) stats.commits++;
      else await durable();
      return row.seq;
    },
    async pruneOutput(retention: OutputRetention): Promise<PruneResult> {
      const result = { tasks: 0, bytes: 0, totalBytes: 0 };
      const prune = (id: string) => {
        result.bytes += pruneTask(id);
        result.tasks++;
      };
      // By age, in batches (each task in its own short transaction: writers are not blocked long).
      for (;;) {
        const batch = unprunedBefore.all(retention.createdBefore, 500);
        for (const r of batch) prune(r.id);
        if (batch.length < 500) break;
      }
      // By total size: the oldest finished tasks first.
      let total = totalOutputBytes.get()?.b ?? 0;
      while (total > retention.maxTotalBytes) {
        const batch = unprunedBefore.all(Number.MAX_SAFE_INTEGER, 100);
        if (batch.length === 0) break;
        for (const r of batch) {
          if (total <= retention.maxTotalBytes) break;
          const before = result.bytes;
          prune(r.id);
          total -= result.bytes - before;
        }
      }
      result.totalBytes = total;
      if (result.tasks > 0) await durable();
      return result;
    },
    async readOutput(taskId, afterSeq, limit): Promise<OutputChunk[]> {
      return selectOutput.all(taskId, afterSeq, limit).map((r) => ({
        taskId,
        seq: r.seq,
        kind: r.kind as ChunkKind,
        data: new Uint8Array(r.data),
        time: r.time,
      }));
    },
    appendAudit(entry, write: WriteOptions = {}) {
      return new Promise<AuditRecord>((resolve, reject) =>
        enqueue({
          write(head) {
            const next = insertEntry(entry, head);
            return { head: next.head, result: next.record, wrote: !(next.record instanceof Error) };
          },
          durable: write.durable !== false,
          resolve: resolve as (r: AuditRecord | FinishResult) => void,
          reject,
        }),
      );
    },
    finishTask(id, patch, condition, outcome, committed) {
      return new Promise<FinishResult>((resolve, reject) =>
        enqueue({
          write(head) {
            // In a savepoint: a write that fails (the patch's or the record's) undoes both and
            // fails this finish alone, not the batch's other appends — unless SQLite rolled
            // back the whole transaction (SQLITE_FULL, IOERR, RAISE(ROLLBACK)): then the batch
            // fails, as its earlier items are gone.
            savepoint.run();
            try {
              const done = finishIn(head);
              release.run();
              return done;
            } catch (err) {
              if (!db.inTransaction) throw err;
              rollbackTo.run();
              release.run();
              return {
                head,
                result: err instanceof Error ? err : new Error(String(err)),
                wrote: false,
              };
            }
          },
          durable: true,
          ...(committed
            ? {
                committed(r: AuditRecord | FinishResult) {
                  if ((r as FinishResult).applied) committed(r as FinishResult);
                },
              }
            : {}),
          resolve: resolve as (r: AuditRecord | FinishResult) => void,
          reject,
        }),
      );
      function finishIn(head: Head): ReturnType<PendingAudit["write"]> {
        const { task, applied } = applyPatch(id, patch, condition);
        if (!applied || task === undefined)
          return { head, result: { task, applied }, wrote: false };
        let entry: AuditEntry;
        try {
          entry = outcome(task);
        } catch (err) {
          const auditError = err instanceof Error ? err : new Error(String(err));
          return { head, result: { task, applied, auditError }, wrote: true };
        }
        const next = insertEntry(entry, head);
        const result: FinishResult =
          next.record instanceof Error
            ? { task, applied, auditError: next.record }
            : { task, applied, record: next.record };
        return { head: next.head, result, wrote: true };
      }
    },
    async listAudit(query: AuditQuery) {
      const where: string[] = ["seq > @afterSeq"];
      if (query.sinceMs !== undefined) where.push("time >= @sinceMs");
      if (query.principal !== undefined) where.push("principal = @principal");
      if (query.tenant !== undefined) where.push("tenant = @tenant");
      if (query.operation !== undefined) where.push("operation = @operation");
      if (query.decision !== undefined) where.push("decision = @decision");
      const rows = db
        .prepare<
          Record<string, unknown>,
          { seq: number; prev_hash: string; hash: string; body: string }
        >(
          `SELECT seq, prev_hash, hash, body FROM audit WHERE ${where.join(" AND ")} ORDER BY seq LIMIT @limit`,
        )
        .all({
          afterSeq: query.afterSeq ?? 0,
          sinceMs: query.sinceMs,
          principal: query.principal,
          tenant: query.tenant,
          operation: query.operation,
          decision: query.decision,
          limit: query.limit,
        });
      return rows.map((r) => ({ ...(JSON.parse(r.body) as AuditRecord), hash: r.hash }));
    },
    auditRangeSource() {
      return options.path === ":memory:" ? undefined : { sqlite: options.path };
    },
    async *auditRows() {
      yield* this.rawAudit();
    },
    *rawAudit() {
      for (const r of allAudit.iterate()) {
        const { time, principal, tenant, operation, decision } = r;
        yield {
          seq: r.seq,
          prevHash: r.prev_hash,
          hash: r.hash,
          body: r.body,
          columns: { time, principal, tenant, operation, decision },
        };
      }
    },
    async auditHead() {
      return lastAudit.get() ?? { seq: 0, hash: GENESIS_HASH };
    },
    async observeToolDefinition(server, tool, digest, definition, now) {
      const observed = db
        .transaction(() => {
          const row = selectPin.get(server, tool);
          const prev = row ? (JSON.parse(row.doc) as ToolPin) : undefined;
          const next = observePin(prev, server, tool, digest, definition, now);
          if (next.change !== "unchanged") writePin.run(server, tool, JSON.stringify(next.pin));
          return next;
        })
        .immediate();
      await durable();
      return observed;
    },
    async approveToolDefinition(server, tool, digest, by, now) {
      const approved = db
        .transaction(() => {
          const row = selectPin.get(server, tool);
          const prev = row ? (JSON.parse(row.doc) as ToolPin) : undefined;
          const pin = approvePin(prev, digest, by, now);
          if (pin) writePin.run(server, tool, JSON.stringify(pin));
          return pin;
        })
        .immediate();
      await durable();
      return approved;
    },
    async listToolPins(server) {
      const rows = server === undefined ? allPins.all() : serverPins.all(server);
      return rows.map((r) => JSON.parse(r.doc) as ToolPin);
    },
    whenDurable() {
      if (walFd === undefined) return Promise.resolve();
      if (walFailure) return Promise.reject(walFailure);
      return new Promise<void>((resolve, reject) =>
        syncWaiters.push((err) => (err ? reject(err) : resolve())),
      );
    },
    async ping() {
      if (walFailure) throw walFailure;
      db.prepare("SELECT 1").get();
    },
    writeStats() {
      return { ...stats };
    },
    async close() {
      flushAudit();
      // Commits that waited for no sync of their own (replayed events, an ExecuteCommand's audit
      // record whose task insert failed) and whenDurable() callers: one last sync.
      if (walFd !== undefined) await sync().catch(() => undefined);
      // A write committed while waiting joins a later sync: wait until none is pending, so no
      // fdatasync runs on the descriptor after it is closed.
      while (syncing || nextSync) await Promise.allSettled([syncing, nextSync]);
      db.close();
      if (walFd !== undefined) closeSync(walFd);
    },
  };
}

function migrate(db: Database.Database): void {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)");
  const done = new Set(
    db
      .prepare<[], { version: number }>("SELECT version FROM schema_migrations")
      .all()
      .map((r) => r.version),
  );
  MIGRATIONS.forEach((sql, i) => {
    const version = i + 1;
    if (done.has(version)) return;
    db.transaction(() => {
      db.exec(sql);
      db.prepare("INSERT INTO schema_migrations (version) VALUES (?)").run(version);
    })();
  });
}
