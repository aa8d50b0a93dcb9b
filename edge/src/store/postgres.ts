import { GatewayError } from "@mcp-gateway/common/errors";
import { Client, type ClientConfig, Pool, type PoolClient, type QueryResultRow } from "pg";
import type { Logger } from "pino";
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
} from "./types.js";
import { ACTIVE_STATES, TERMINAL_STATES } from "./types.js";

/*
 * PostgreSQL store: the HA backend behind the same TaskStore interface as SQLite.
 *
 * Design notes (the why, for whoever builds active-active / active-passive on top):
 *
 * - tasks: the record is kept as JSON *text* (not jsonb): jsonb rejects "\u0000" and text columns
 *   reject NUL bytes, while metadata values are not NUL-checked at the edge; JSON.stringify escapes
 *   NUL, so text JSON round-trips every record SQLite accepts. `state` and `runner_id` are mirrored
 *   into columns for the recovery and "runner lost" queries. updateTask is an optimistic
 *   compare-and-set on a `version` column (read, merge, `UPDATE … WHERE version = $v AND state is
 *   not terminal`), retried on conflict, so two edges racing to finish/cancel a task never
 *   overwrite a terminal state.
 * - task_output: numbered per task through a counter row (task_output_head) bumped by an upsert in
 *   the same statement as the insert. The counter's row lock is held until commit, so a second
 *   appender waits for the first to commit: readers never see seq N+1 before seq N (no gaps a
 *   follower could skip over). Chunks carry the runner's event number (runner_seq, unique per
 *   task): a chunk already stored is not stored again, so an adopting edge and a lapsed owner
 *   following the same task cannot duplicate output (a lost race leaves an unused seq, which
 *   readers, asking for "seq > n", pass over).
 * - audit: one linear hash chain for all edges. Appends serialise on the single row of audit_head
 *   (`SELECT … FOR UPDATE`), compute the record with sealAuditRecord from that head, insert it and
 *   move the head, in one transaction. Throughput is bounded by one round trip + commit per
 *   record cluster-wide; the head row also makes "the chain's last hash" a point read for anchoring.
 * - leases (active-passive): rows are never deleted, so fencing tokens only grow. A token changes
 *   whenever a new tenure starts: another holder takes over, or the same holder re-acquires after
 *   its lease expired or was released. Renewal keeps the token. Time is the database's clock
 *   (now()), never the edges' — they may disagree. A holder must stop acting once its lease may
 *   have expired (local monotonic deadline = send time + ttl) and must pass its token with every
 *   fenced write, so a paused ex-leader is refused.
 * - runners: the registry (heartbeat = upsert; last_heartbeat on the database clock). "Taken out
 *   within 5 s" is a read filter (`aliveWithinMs`), so no sweeper is needed to hide a dead runner.
 * - LISTEN/NOTIFY on `mcp_task_events` (payload: task id) wakes stream followers on other edges.
 *   NOTIFY is a hint, not a log: after the LISTEN connection is re-established subscribers get a
 *   `resync` event and must re-read what they wait for, because notifications sent while it was
 *   down are lost.
 * - Outage behaviour: every query is bounded (connect timeout, statement_timeout, client-side
 *   query_timeout), connection-level failures surface as GatewayError("unavailable"), the pool
 *   drops broken connections and reconnects on the next query, and idempotent reads are retried
 *   once on a fresh connection. idle_in_transaction_session_timeout releases the audit head if an
 *   edge freezes mid-append.
 */

/** Channel of LISTEN/NOTIFY task events; the payload is a task id. */
export const TASK_EVENTS_CHANNEL = "mcp_task_events";

/** pg_advisory_xact_lock key held while migrating ("mcpgw-mg"), so concurrent edges migrate once. */
const MIGRATION_LOCK_KEY = 0x6d63_7067_772d_6d67n;

/** Options for {@link createPostgresStore}. */
export interface PostgresStoreOptions {
  /** libpq-style URL, e.g. postgres://user:pass@host:5432/db (query options such as sslmode and `options=-c search_path=x` are honoured). */
  connectionString: string;
  /** Maximum connections in the pool (default 10). */
  poolSize?: number;
  /** Logger for pool errors, migrations and LISTEN reconnects (silent when absent). */
  logger?: Logger;
  /** How long to wait for a new connection before failing, in ms (default 5000). */
  connectTimeoutMs?: number;
  /** Upper bound of one statement, in ms (server statement_timeout; the client gives up 1 s later). Default 30000. */
  queryTimeoutMs?: number;
  /** Key for the audit chain's HMACs (see audit/keys.ts); unkeyed sha256 chain without. */
  auditKey?: AuditKey | undefined;
  /** application_name shown in pg_stat_activity (default "mcp-gateway-edge"). */
  applicationName?: string;
  /** How often the LISTEN connection is probed so a silently dead one is replaced, in ms (default 10000). */
  listenHeartbeatMs?: number;
}

/** Result of {@link PostgresStore.tryAcquireLease}. */
export interface LeaseResult {
  /** True when `holder` now holds the lease (newly or as a renewal). */
  acquired: boolean;
  /** Fencing token of the current tenure (the caller's when acquired, otherwise the other holder's). */
  token: bigint;
  /** Current holder. */
  holder: string;
  /** When the current tenure expires, epoch ms on the database clock. */
  expiresAt: number;
}

/** A lease as stored. */
export interface LeaseRecord {
  /** Lease name, e.g. "edge-active". */
  name: string;
  /** Last holder. */
  holder: string;
  /** Fencing token of the last tenure. */
  token: bigint;
  /** Expiry, epoch ms on the database clock. */
  expiresAt: number;
  /** True when the lease may be taken by anyone. */
  expired: boolean;
}

/** What a runner reports with each heartbeat. */
export interface RunnerRegistration {
  /** Runner id (its certificate identity). */
  id: string;
  /** URL the edge dials (mTLS). */
  url: string;
  /** Current load used for scheduling (e.g. running tasks / capacity). */
  load: number;
  /** False while the runner drains or its sandbox self-check fails. */
  healthy: boolean;
  /** Random id of the runner process (changes when it restarts). */
  bootId?: string;
}

/** A runner registry row. */
export interface RunnerRecord extends RunnerRegistration {
  /** Last heartbeat, epoch ms on the database clock. */
  lastHeartbeat: number;
}

/** Filter of {@link PostgresStore.listRunners}. */
export interface ListRunnersOptions {
  /** Only runners whose last heartbeat is at most this old (ms, database clock). */
  aliveWithinMs?: number;
  /** Only runners that reported healthy. */
  healthyOnly?: boolean;
}

/** An event delivered to {@link PostgresStore.listen} subscribers. */
export type TaskEvent =
  /** Something happened to this task (state change or new output). */
  | { kind: "task"; taskId: string }
  /** The LISTEN connection was re-established: events may have been missed; re-read state. */
  | { kind: "resync" };

/** A live LISTEN subscription. */
export interface TaskEventSubscription {
  /** Stops delivering events (the shared LISTEN connection closes with its last subscriber). */
  close(): Promise<void>;
}

/** Options of {@link PostgresStore.rawAudit}. */
export interface RawAuditOptions {
  /** Start after this sequence number (default 0: the whole chain). */
  afterSeq?: number;
  /** Rows fetched per query (default 1000). */
  batchSize?: number;
}

/** The PostgreSQL store: TaskStore plus what verification and HA need. */
export interface PostgresStore extends TaskStore {
  /**
   * Stored audit rows in chain order, exactly as stored, fetched in pages. Verify a chain page by
   * page with verifyAuditChain(page, { startAfter }) or collect it into an array first.
   */
  rawAudit(options?: RawAuditOptions): AsyncIterable<RawAuditRow>;
  /** Takes the lease when free or expired, or renews it when `holder` holds it; `ttlMs` from now (database clock). */
  tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseResult>;
  /** Extends a lease still held by `holder` with `token`; false when it expired or was taken. */
  renewLease(name: string, holder: string, token: bigint, ttlMs: number): Promise<boolean>;
  /** Ends a tenure at once so a standby can take over; false when `holder`/`token` no longer hold it. */
  releaseLease(name: string, holder: string, token: bigint): Promise<boolean>;
  /** The lease as stored, if it was ever taken. */
  getLease(name: string): Promise<LeaseRecord | undefined>;
  /** Registers a runner or records its heartbeat (last_heartbeat = now()). */
  upsertRunner(runner: RunnerRegistration): Promise<RunnerRecord>;
  /** Registered runners, least loaded first. */
  listRunners(options?: ListRunnersOptions): Promise<RunnerRecord[]>;
  /** Deregisters a runner (graceful shutdown); false when unknown. */
  removeRunner(id: string): Promise<boolean>;
  /** Tells every listening edge that `taskId` changed (NOTIFY mcp_task_events). */
  notify(taskId: string): Promise<void>;
  /** Subscribes to task events from all edges; resolves once LISTEN is active. */
  listen(callback: (event: TaskEvent) => void): Promise<TaskEventSubscription>;
}

/** Ordered schema migrations; all pending ones run in one transaction under an advisory lock. */
const MIGRATIONS: readonly { name: string; sql: string }[] = [
  {
    name: "tasks, output, audit chain",
    sql: `
      CREATE TABLE tasks (
        id text PRIMARY KEY,
        state text NOT NULL,
        runner_id text NOT NULL DEFAULT '',
        created_at bigint NOT NULL,
        version bigint NOT NULL DEFAULT 1,
        doc text NOT NULL
      );
      CREATE INDEX tasks_state ON tasks (state, created_at);
      CREATE INDEX tasks_runner ON tasks (runner_id, state) WHERE runner_id <> '';
      CREATE TABLE task_output_head (
        task_id text PRIMARY KEY,
        last_seq bigint NOT NULL
      );
      CREATE TABLE task_output (
        task_id text NOT NULL,
        seq bigint NOT NULL,
        kind text NOT NULL,
        data bytea NOT NULL,
        time bigint NOT NULL,
        PRIMARY KEY (task_id, seq)
      );
      CREATE TABLE audit (
        seq bigint PRIMARY KEY,
        time bigint NOT NULL,
        principal text NOT NULL,
        operation text NOT NULL,
        decision text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        body text NOT NULL
      );
      CREATE INDEX audit_time ON audit (time);
      CREATE INDEX audit_principal ON audit (principal, seq);
      CREATE TABLE audit_head (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        seq bigint NOT NULL,
        hash text NOT NULL
      );
      INSERT INTO audit_head (singleton, seq, hash) VALUES (true, 0, '${GENESIS_HASH}');`,
  },
  {
    name: "leases and runner registry",
    sql: `
      CREATE TABLE leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        fencing_token bigint NOT NULL,
        expires_at timestamptz NOT NULL
      );
      CREATE TABLE runners (
        id text PRIMARY KEY,
        url text NOT NULL,
        last_heartbeat timestamptz NOT NULL,
        load double precision NOT NULL DEFAULT 0,
        healthy boolean NOT NULL DEFAULT true
      );
      CREATE INDEX runners_heartbeat ON runners (last_heartbeat);`,
  },
  {
    name: "audit tenant column",
    sql: `
      ALTER TABLE audit ADD COLUMN tenant text NOT NULL DEFAULT '';
      CREATE INDEX audit_tenant ON audit (tenant, seq);`,
  },
  {
    name: "runner boot id",
    sql: `ALTER TABLE runners ADD COLUMN boot_id text NOT NULL DEFAULT '';`,
  },
  {
    name: "output keyed by runner event",
    sql: `
      ALTER TABLE task_output ADD COLUMN runner_seq bigint;
      CREATE UNIQUE INDEX task_output_runner_seq ON task_output (task_id, runner_seq);`,
  },
  {
    name: "pinned MCP tool definitions",
    sql: `
      CREATE TABLE tool_pins (
        server text NOT NULL,
        tool text NOT NULL,
        doc jsonb NOT NULL,
        PRIMARY KEY (server, tool)
      );`,
  },
  {
    // Output retention's look-up of tasks whose output is still stored (see unprunedBefore):
    // without it every pass read every finished task's record.
    name: "unpruned tasks index",
    sql: `CREATE INDEX tasks_unpruned ON tasks (created_at) WHERE doc NOT LIKE '{"outputPruned":true,%';`,
  },
];

/**
 * The HA store on PostgreSQL: stateless edges share tasks, output, the audit chain, leases and the
 * runner registry. Resolves once connected and migrated; a resolved write is committed.
 *
 * @example
 * const store = await createPostgresStore({ connectionString: process.env.DATABASE_URL ?? "", logger });
 * const sub = await store.listen((e) => e.kind === "task" && wake(e.taskId));
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const log = options.logger;
  const queryTimeoutMs = options.queryTimeoutMs ?? 30_000;
  const clientConfig: ClientConfig = {
    connectionString: options.connectionString,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    statement_timeout: queryTimeoutMs,
    query_timeout: queryTimeoutMs + 1_000,
    idle_in_transaction_session_timeout: queryTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: options.applicationName ?? "mcp-gateway-edge",
  };
  const pool = new Pool({
    ...clientConfig,
    max: options.poolSize ?? 10,
    idleTimeoutMillis: 30_000,
  });
  // An idle connection dying (PostgreSQL restart) is reported here; without a listener it would
  // crash the process. The pool has already discarded the connection.
  pool.on("error", (err) => log?.warn({ err }, "postgres: idle connection lost"));

  /** One statement on any pooled connection; connection failures become "unavailable". */
  async function query<R extends QueryResultRow>(
    text: string,
    values: unknown[] = [],
  ): Promise<R[]> {
    try {
      return (await pool.query<R>(text, values)).rows;
    } catch (err) {
      throw storeError(err);
    }
  }
  /** An idempotent read: retried once when the first attempt hit a dead connection. */
  async function read<R extends QueryResultRow>(
    text: string,
    values: unknown[] = [],
  ): Promise<R[]> {
    try {
      return await query<R>(text, values);
    } catch (err) {
      if (!(err instanceof GatewayError && err.code === "unavailable")) throw err;
      return query<R>(text, values);
    }
  }
  /** Runs `fn` in a transaction on one connection; a broken connection is destroyed, not reused. */
  async function transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw storeError(err);
    }
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      try {
        await client.query("ROLLBACK");
      } catch (rollbackErr) {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      }
      throw storeError(err);
    } finally {
      client.release(broken);
    }
  }

  /** Seals `entry` at the chain's head and inserts it, inside the caller's transaction. */
  async function appendAuditIn(client: PoolClient, entry: AuditEntry): Promise<AuditRecord> {
    const head = (
      await client.query<{ seq: string; hash: string }>(
        "SELECT seq, hash FROM audit_head WHERE singleton FOR UPDATE",
      )
    ).rows[0];
    if (!head) throw new Error("audit_head row is missing (schema damaged)");
    let sealed: { record: AuditRecord; body: string };
    try {
      sealed = sealAuditRecord(entry, { seq: Number(head.seq), hash: head.hash }, options.auditKey);
    } catch (err) {
      throw new AuditSealError(asError(err));
    }
    const { record, body } = sealed;
    const columns = auditIndexColumns(record);
    await client.query(
      `WITH moved AS (UPDATE audit_head SET seq = $1, hash = $7 WHERE singleton)
       INSERT INTO audit (seq, time, principal, operation, decision, prev_hash, hash, body, tenant)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        record.seq,
        columns.time,
        columns.principal,
        columns.operation,
        columns.decision,
        record.prevHash,
        record.hash,
        body,
        columns.tenant,
      ],
    );
    return record;
  }

  try {
    await transaction(async (client) => {
      await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const done = new Set(
        (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map(
          (r) => r.version,
        ),
      );
      for (const [i, migration] of MIGRATIONS.entries()) {
        const version = i + 1;
        if (done.has(version)) continue;
        await client.query(migration.sql);
        await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
          version,
          migration.name,
        ]);
        log?.info({ version, name: migration.name }, "postgres: migration applied");
      }
    });
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }

  const listener = createListener(clientConfig, options.listenHeartbeatMs ?? 10_000, log);
  let closed = false;

  async function* rawAudit(rawOptions: RawAuditOptions = {}): AsyncGenerator<RawAuditRow> {
    const batch = rawOptions.batchSize ?? 1000;
    let after = rawOptions.afterSeq ?? 0;
    for (;;) {
      const rows = await read<{
        seq: string;
        prev_hash: string;
        hash: string;
        body: string;
        time: string;
        principal: string;
        tenant: string;
        operation: string;
        decision: string;
      }>(
        `SELECT seq, prev_hash, hash, body, time, principal, tenant, operation, decision
         FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`,
        [after, batch],
      );
      for (const r of rows) {
        after = Number(r.seq);
        const { principal, tenant, operation, decision } = r;
        yield {
          seq: after,
          prevHash: r.prev_hash,
          hash: r.hash,
          body: r.body,
          columns: { time: Number(r.time), principal, tenant, operation, decision },
        };
      }
      if (rows.length < batch) return;
    }
  }

  async function listAuditRows(query: AuditQuery): Promise<AuditRecord[]> {
    const values: unknown[] = [query.afterSeq ?? 0];
    const where: string[] = ["seq > $1"];
    const add = (sql: string, value: unknown): void => {
      values.push(value);
      where.push(`${sql} $${values.length}`);
    };
    if (query.sinceMs !== undefined) add("time >=", query.sinceMs);
    if (query.principal !== undefined) add("principal =", indexText(query.principal));
    if (query.tenant !== undefined) add("tenant =", indexText(query.tenant));
    if (query.operation !== undefined) add("operation =", indexText(query.operation));
    if (query.decision !== undefined) add("decision =", query.decision);
    values.push(query.limit);
    const rows = await read<{ hash: string; body: string }>(
      `SELECT hash, body FROM audit WHERE ${where.join(" AND ")} ORDER BY seq LIMIT $${values.length}`,
      values,
    );
    return rows.map((r) => ({ ...(JSON.parse(r.body) as AuditRecord), hash: r.hash }));
  }

  /** Finished tasks whose output is still stored, oldest first. */
  async function unprunedBefore(createdBefore: number, limit: number): Promise<string[]> {
    const rows = await read<{ id: string }>(
      `SELECT id FROM tasks WHERE state = ANY($1) AND created_at < $2
         AND doc NOT LIKE '{"outputPruned":true,%' ORDER BY created_at LIMIT $3`,
      [[...TERMINAL_STATES], createdBefore, limit],
    );
    return rows.map((r) => r.id);
  }

  /** Removes one finished task's output and marks its record; returns the bytes removed. */
  async function pruneTask(id: string): Promise<number> {
    return transaction(async (c) => {
      const del = await c.query<{ b: string | null }>(
        `WITH d AS (DELETE FROM task_output WHERE task_id = $1 RETURNING length(data) AS n)
         SELECT SUM(n)::text AS b FROM d`,
        [id],
      );
      await c.query(
        // Text, not jsonb: a record may hold \u0000 in its strings, which jsonb refuses.
        `UPDATE tasks SET doc = '{"outputPruned":true,' || substr(doc, 2),
           version = version + 1 WHERE id = $1 AND doc LIKE '{"%'`,
        [id],
      );
      return Number(del.rows[0]?.b ?? 0);
    });
  }

  async function totalOutputBytes(): Promise<number> {
    const rows = await read<{ b: string }>(
      "SELECT COALESCE(SUM(length(data)), 0)::text AS b FROM task_output",
    );
    return Number(rows[0]?.b ?? 0);
  }

  return {
    async pruneOutput(retention: OutputRetention): Promise<PruneResult> {
      const result = { tasks: 0, bytes: 0, totalBytes: 0 };
      for (;;) {
        const batch = await unprunedBefore(retention.createdBefore, 500);
        for (const id of batch) {
          result.bytes += await pruneTask(id);
          result.tasks++;
        }
        if (batch.length < 500) break;
      }
      let total = await totalOutputBytes();
      while (total > retention.maxTotalBytes) {
        const batch = await unprunedBefore(Number.MAX_SAFE_INTEGER, 100);
        if (batch.length === 0) break;
        for (const id of batch) {
          if (total <= retention.maxTotalBytes) break;
          const n = await pruneTask(id);
          result.bytes += n;
          result.tasks++;
          total -= n;
        }
      }
      result.totalBytes = total;
      return result;
    },
    async createTask(task) {
      await query(
        "INSERT INTO tasks (id, state, runner_id, created_at, doc) VALUES ($1, $2, $3, $4, $5)",
        [task.id, task.state, indexText(task.runnerId), task.createdAt, JSON.stringify(task)],
      );
    },

    async getTask(id) {
      const [row] = await read<{ doc: string }>("SELECT doc FROM tasks WHERE id = $1", [id]);
      return row ? (JSON.parse(row.doc) as TaskRecord) : undefined;
    },

    async updateTask(id: string, patch: TaskPatch, condition: TaskCondition = {}) {
      // Optimistic compare-and-set: conflicts only when another edge changed the task in between.
      for (let attempt = 0; attempt < 50; attempt++) {
        const [row] = await read<{ doc: string; version: string }>(
          "SELECT doc, version FROM tasks WHERE id = $1",
          [id],
        );
        if (!row) return undefined;
        const current = JSON.parse(row.doc) as TaskRecord;
        if (TERMINAL_STATES.has(current.state)) return current;
        if (!conditionHolds(current, condition)) return current;
        const next: TaskRecord = { ...current, ...patch };
        const updated = await query(
          `UPDATE tasks SET state = $2, runner_id = $3, doc = $4, version = version + 1
           WHERE id = $1 AND version = $5 AND state <> ALL($6::text[])
           RETURNING 1`,
          [
            id,
            next.state,
            indexText(next.runnerId),
            JSON.stringify(next),
            row.version,
            [...TERMINAL_STATES],
          ],
        );
        if (updated.length === 1) return next;
      }
      throw new GatewayError("aborted", `task ${id} is being updated concurrently; try again`);
    },

    async listTasksInStates(states: readonly TaskState[], limit: number) {
      if (states.length === 0) return [];
      const rows = await read<{ doc: string }>(
        "SELECT doc FROM tasks WHERE state = ANY($1::text[]) ORDER BY created_at, id LIMIT $2",
        [[...states], limit],
      );
      return rows.map((r) => JSON.parse(r.doc) as TaskRecord);
    },

    async countActiveTasks(tenant: string, sub: string) {
      // Counted in JS from the records: a `doc::jsonb` cast refuses any record holding an escaped
      // NUL (PostgreSQL text cannot), which would fail every quota check of the tenant.
      const active = await read<{ doc: string }>(
        "SELECT doc FROM tasks WHERE state = ANY($1::text[]) LIMIT 10000",
        [[...ACTIVE_STATES]],
      );
      const count = { tenant: 0, principal: 0 };
      for (const r of active) {
        const { principal } = JSON.parse(r.doc) as TaskRecord;
        if (principal.tenant !== tenant) continue;
        count.tenant++;
        if (principal.sub === sub) count.principal++;
      }
      return count;
    },

    async appendOutput(
      taskId: string,
      kind: ChunkKind,
      data: Uint8Array,
      time: number,
      runnerSeq?: number,
    ) {
      // A chunk already stored under its runner event number is not counted or stored
      // again. Two edges racing on the same chunk both pass NOT EXISTS; the unique index
      // keeps one row (the other's counter bump leaves a gap, which readers skip over).
      const [row] = await query<{ seq: string }>(
        `WITH counter AS (
           INSERT INTO task_output_head (task_id, last_seq)
           SELECT $1, 1
            WHERE $5::bigint IS NULL
               OR NOT EXISTS (SELECT 1 FROM task_output WHERE task_id = $1 AND runner_seq = $5)
           ON CONFLICT (task_id) DO UPDATE SET last_seq = task_output_head.last_seq + 1
           RETURNING last_seq
         )
         INSERT INTO task_output (task_id, seq, kind, data, time, runner_seq)
         SELECT $1, last_seq, $2, $3, $4, $5 FROM counter
         ON CONFLICT (task_id, runner_seq) DO NOTHING
         RETURNING seq`,
        [
          taskId,
          kind,
          Buffer.from(data.buffer, data.byteOffset, data.byteLength),
          time,
          runnerSeq ?? null,
        ],
      );
      if (row) return Number(row.seq);
      if (runnerSeq !== undefined) {
        const [stored] = await query<{ seq: string }>(
          "SELECT seq FROM task_output WHERE task_id = $1 AND runner_seq = $2",
          [taskId, runnerSeq],
        );
        if (stored) return Number(stored.seq);
      }
      throw new Error("appendOutput: insert returned no row");
    },

    async readOutput(taskId, afterSeq, limit): Promise<OutputChunk[]> {
      const rows = await read<{ seq: string; kind: string; data: Buffer; time: string }>(
        "SELECT seq, kind, data, time FROM task_output WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        [taskId, afterSeq, limit],
      );
      return rows.map((r) => ({
        taskId,
        seq: Number(r.seq),
        kind: r.kind as ChunkKind,
        data: new Uint8Array(r.data),
        time: Number(r.time),
      }));
    },

    async appendAudit(entry) {
      try {
        return await transaction((client) => appendAuditIn(client, entry));
      } catch (err) {
        throw err instanceof AuditSealError ? err.cause : err;
      }
    },

    async finishTask(id, patch, condition, outcome, committed) {
      const result = await transaction(async (client): Promise<FinishResult> => {
        // The row lock orders this finish against every other write of the task.
        const [row] = (
          await client.query<{ doc: string }>("SELECT doc FROM tasks WHERE id = $1 FOR UPDATE", [
            id,
          ])
        ).rows;
        if (!row) return { task: undefined, applied: false };
        const current = JSON.parse(row.doc) as TaskRecord;
        if (TERMINAL_STATES.has(current.state) || !conditionHolds(current, condition)) {
          return { task: current, applied: false };
        }
        const task: TaskRecord = { ...current, ...patch };
        await client.query(
          "UPDATE tasks SET state = $2, runner_id = $3, doc = $4, version = version + 1 WHERE id = $1",
          [id, task.state, indexText(task.runnerId), JSON.stringify(task)],
        );
        let entry: AuditEntry;
        try {
          entry = outcome(task);
        } catch (err) {
          return { task, applied: true, auditError: asError(err) };
        }
        try {
          return { task, applied: true, record: await appendAuditIn(client, entry) };
        } catch (err) {
          // Only a refused seal is the record's alone; a failed write fails both.
          if (err instanceof AuditSealError) return { task, applied: true, auditError: err.cause };
          throw err;
        }
      });
      if (result.applied) {
        try {
          committed?.(result);
        } catch (err) {
          // The caller's wake-up hook; the write itself stands.
          log?.error({ err, taskId: id }, "postgres: finishTask's committed hook threw");
        }
      }
      return result;
    },

    listAudit: listAuditRows,

    auditRows: () => rawAudit(),

    async auditHead() {
      const [head] = await read<{ seq: string; hash: string }>(
        "SELECT seq, hash FROM audit_head WHERE singleton",
        [],
      );
      return head ? { seq: Number(head.seq), hash: head.hash } : { seq: 0, hash: GENESIS_HASH };
    },

    rawAudit,

    async tryAcquireLease(name, holder, ttlMs) {
      const [won] = await query<{ holder: string; fencing_token: string; expires_at: Date }>(
        `INSERT INTO leases AS l (name, holder, fencing_token, expires_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3::double precision / 1000))
         ON CONFLICT (name) DO UPDATE SET
           fencing_token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                                THEN l.fencing_token ELSE l.fencing_token + 1 END,
           holder = EXCLUDED.holder,
           expires_at = EXCLUDED.expires_at
         WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
         RETURNING holder, fencing_token, expires_at`,
        [name, holder, ttlMs],
      );
      if (won) {
        return {
          acquired: true,
          holder: won.holder,
          token: BigInt(won.fencing_token),
          expiresAt: won.expires_at.getTime(),
        };
      }
      const [other] = await read<{ holder: string; fencing_token: string; expires_at: Date }>(
        "SELECT holder, fencing_token, expires_at FROM leases WHERE name = $1",
        [name],
      );
      return {
        acquired: false,
        holder: other?.holder ?? "",
        token: BigInt(other?.fencing_token ?? 0),
        expiresAt: other?.expires_at.getTime() ?? 0,
      };
    },

    async renewLease(name, holder, token, ttlMs) {
      const rows = await query(
        `UPDATE leases SET expires_at = now() + make_interval(secs => $4::double precision / 1000)
         WHERE name = $1 AND holder = $2 AND fencing_token = $3 AND expires_at > now()
         RETURNING 1`,
        [name, holder, token.toString(), ttlMs],
      );
      return rows.length === 1;
    },

    async releaseLease(name, holder, token) {
      const rows = await query(
        `UPDATE leases SET expires_at = '-infinity'
         WHERE name = $1 AND holder = $2 AND fencing_token = $3 AND expires_at > now()
         RETURNING 1`,
        [name, holder, token.toString()],
      );
      return rows.length === 1;
    },

    async getLease(name) {
      const [row] = await read<{
        holder: string;
        fencing_token: string;
        expires_at: Date;
        expired: boolean;
      }>(
        "SELECT holder, fencing_token, expires_at, expires_at <= now() AS expired FROM leases WHERE name = $1",
        [name],
      );
      if (!row) return undefined;
      return {
        name,
        holder: row.holder,
        token: BigInt(row.fencing_token),
        expiresAt: row.expires_at.getTime(),
        expired: row.expired,
      };
    },

    async upsertRunner(runner) {
      const [row] = await query<RunnerRow>(
        `INSERT INTO runners (id, url, last_heartbeat, load, healthy, boot_id) VALUES ($1, $2, now(), $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, last_heartbeat = EXCLUDED.last_heartbeat,
           load = EXCLUDED.load, healthy = EXCLUDED.healthy, boot_id = EXCLUDED.boot_id
         RETURNING id, url, last_heartbeat, load, healthy, boot_id`,
        [runner.id, runner.url, runner.load, runner.healthy, runner.bootId ?? ""],
      );
      if (!row) throw new Error("upsertRunner: no row returned");
      return runnerRecord(row);
    },

    async listRunners(filter: ListRunnersOptions = {}) {
      const rows = await read<RunnerRow>(
        `SELECT id, url, last_heartbeat, load, healthy, boot_id FROM runners
         WHERE ($1::double precision IS NULL OR last_heartbeat > now() - make_interval(secs => $1 / 1000))
           AND (NOT $2 OR healthy)
         ORDER BY load, id`,
        [filter.aliveWithinMs ?? null, filter.healthyOnly ?? false],
      );
      return rows.map(runnerRecord);
    },

    async removeRunner(id) {
      return (await query("DELETE FROM runners WHERE id = $1 RETURNING 1", [id])).length === 1;
    },

    async notify(taskId) {
      await query("SELECT pg_notify($1, $2)", [TASK_EVENTS_CHANNEL, taskId]);
    },

    listen: (callback) => listener.subscribe(callback),

    async observeToolDefinition(server, tool, digest, definition, now) {
      return transaction(async (client) => {
        // Serialise observers of one tool across edges (the row may not exist yet).
        await client.query("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))", [
          server,
          tool,
        ]);
        const rows = (
          await client.query<{ doc: ToolPin }>(
            "SELECT doc FROM tool_pins WHERE server = $1 AND tool = $2",
            [server, tool],
          )
        ).rows;
        const next = observePin(rows[0]?.doc, server, tool, digest, definition, now);
        if (next.change !== "unchanged") {
          await client.query(
            `INSERT INTO tool_pins (server, tool, doc) VALUES ($1, $2, $3)
             ON CONFLICT (server, tool) DO UPDATE SET doc = excluded.doc`,
            [server, tool, JSON.stringify(next.pin)],
          );
        }
        return next;
      });
    },
    async approveToolDefinition(server, tool, digest, by, now) {
      return transaction(async (client) => {
        const rows = (
          await client.query<{ doc: ToolPin }>(
            "SELECT doc FROM tool_pins WHERE server = $1 AND tool = $2 FOR UPDATE",
            [server, tool],
          )
        ).rows;
        const pin = approvePin(rows[0]?.doc, digest, by, now);
        if (pin) {
          await client.query("UPDATE tool_pins SET doc = $3 WHERE server = $1 AND tool = $2", [
            server,
            tool,
            JSON.stringify(pin),
          ]);
        }
        return pin;
      });
    },
    async listToolPins(server) {
      const rows =
        server === undefined
          ? await read<{ doc: ToolPin }>("SELECT doc FROM tool_pins ORDER BY server, tool")
          : await read<{ doc: ToolPin }>(
              "SELECT doc FROM tool_pins WHERE server = $1 ORDER BY tool",
              [server],
            );
      return rows.map((r) => r.doc);
    },
    // Every commit is durable (and replicated as configured) when it resolves.
    whenDurable: () => Promise.resolve(),

    async ping() {
      await query("SELECT 1");
    },

    async close() {
      if (closed) return;
      closed = true;
      await listener.close();
      await pool.end();
    },
  };
}

interface RunnerRow {
  id: string;
  url: string;
  last_heartbeat: Date;
  load: number;
  healthy: boolean;
  boot_id: string;
}

function runnerRecord(r: RunnerRow): RunnerRecord {
  return {
    id: r.id,
    url: r.url,
    lastHeartbeat: r.last_heartbeat.getTime(),
    load: r.load,
    healthy: r.healthy,
    bootId: r.boot_id,
  };
}

/** An audit entry that could not be sealed: the record's own failure, not the transaction's. */
class AuditSealError extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message, { cause });
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Values copied into indexed filter columns (principal, operation, runner id). PostgreSQL text
 * cannot hold NUL; the hashed body keeps the original, the column and its queries get U+FFFD.
 */
function indexText(value: string): string {
  return value.includes("\0") ? value.replaceAll("\0", "\uFFFD") : value;
}

/** SQLSTATE classes and socket errors meaning "PostgreSQL cannot be reached right now". */
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300", "53000"]);
const UNAVAILABLE_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
const UNAVAILABLE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable|Client was closed|connection error/i;

/** Maps connection-level failures to GatewayError("unavailable"); everything else passes through. */
function storeError(err: unknown): unknown {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const unavailable =
    (typeof code === "string" &&
      (code.startsWith("08") || UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_ERRNOS.has(code))) ||
    UNAVAILABLE_MESSAGES.test(message);
  return unavailable
    ? new GatewayError("unavailable", "the task store (PostgreSQL) is unavailable", { cause: err })
    : err;
}

/** The shared LISTEN connection of one store, reconnecting with backoff. */
interface Listener {
  subscribe(callback: (event: TaskEvent) => void): Promise<TaskEventSubscription>;
  close(): Promise<void>;
}

function createListener(
  config: ClientConfig,
  heartbeatMs: number,
  log: Logger | undefined,
): Listener {
  const callbacks = new Set<(event: TaskEvent) => void>();
  let client: Client | undefined;
  let connecting: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let delayMs = 100;

  const emit = (event: TaskEvent): void => {
    for (const cb of callbacks) {
      try {
        cb(event);
      } catch (err) {
        log?.error({ err }, "postgres: task event subscriber threw");
      }
    }
  };

  const lost = (c: Client, err?: unknown): void => {
    if (c !== client) return;
    client = undefined;
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
    c.end().catch(() => undefined);
    log?.warn({ err }, "postgres: LISTEN connection lost; reconnecting");
    schedule();
  };

  const schedule = (): void => {
    if (callbacks.size === 0 || retryTimer || connecting) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect().then(
        () => {
          delayMs = 100;
          emit({ kind: "resync" });
        },
        (err: unknown) => {
          delayMs = Math.min(delayMs * 2, 5_000);
          log?.warn({ err, retryInMs: delayMs }, "postgres: LISTEN reconnect failed");
          schedule();
        },
      );
    }, delayMs);
    retryTimer.unref();
  };

  const connect = (): Promise<void> => {
    connecting ??= (async () => {
      const c = new Client(config);
      c.on("error", (err) => lost(c, err));
      c.on("end", () => lost(c));
      c.on("notification", (msg) => {
        if (msg.channel === TASK_EVENTS_CHANNEL && msg.payload)
          emit({ kind: "task", taskId: msg.payload });
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${TASK_EVENTS_CHANNEL}`);
      } catch (err) {
        c.removeAllListeners("end");
        c.on("error", () => undefined);
        await c.end().catch(() => undefined);
        throw storeError(err);
      }
      client = c;
      heartbeat = setInterval(() => {
        c.query("SELECT 1").catch((err: unknown) => lost(c, err));
      }, heartbeatMs);
      heartbeat.unref();
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  const stop = async (): Promise<void> => {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = undefined;
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
    await connecting?.catch(() => undefined);
    const c = client;
    client = undefined;
    await c?.end().catch(() => undefined);
  };

  return {
    async subscribe(callback) {
      callbacks.add(callback);
      try {
        if (!client) await connect();
      } catch (err) {
        callbacks.delete(callback);
        throw err;
      }
      return {
        async close() {
          callbacks.delete(callback);
          if (callbacks.size === 0) await stop();
        },
      };
    },
    async close() {
      callbacks.clear();
      await stop();
    },
  };
}
