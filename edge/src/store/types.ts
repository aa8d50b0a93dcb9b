import type { ToolPinStore } from "./tool-pins.js";

/** Lifecycle of a task as stored. Terminal: completed, failed, cancelled, timed_out. */
export type TaskState =
  | "created"
  | "queued"
  | "running"
  | "completed"
  | "failed"
  | "cancelled"
  | "timed_out";

/** What {@link TaskStore.pruneOutput} keeps. */
export interface OutputRetention {
  /** Output of finished tasks created before this time (epoch ms) is removed. */
  createdBefore: number;
  /** Then the oldest finished tasks' output goes until at most this many bytes remain. */
  maxTotalBytes: number;
}

/** What one {@link TaskStore.pruneOutput} pass did. */
export interface PruneResult {
  /** Tasks whose output was removed. */
  tasks: number;
  /** Bytes of output removed. */
  bytes: number;
  /** Bytes of output stored afterwards. */
  totalBytes: number;
}

/** The states after which a task never changes again. */
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set([
  "completed",
  "failed",
  "cancelled",
  "timed_out",
]);

/** The states of a task not yet finished: counted against the concurrent-task quotas, re-attached after a restart. */
export const ACTIVE_STATES: readonly TaskState[] = ["created", "queued", "running"];

/** Resource limits of a task after policy obligations were applied (0 = runner default). */
export interface TaskLimits {
  memoryBytes: number;
  maxProcesses: number;
  maxFileSizeBytes: number;
  maxOpenFiles: number;
  cpuSeconds: number;
  maxOutputBytes: number;
}

/** Outcome of a finished task. */
export interface TaskResultRecord {
  exitCode: number;
  signal: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  userCpuMs: number;
  systemCpuMs: number;
  maxRssKb: number;
  /** Peak memory charged to the task's cgroup, bytes (absent in records from before cgroups). */
  memoryPeakBytes?: number;
  /** The kernel's OOM killer ended the task. */
  oomKilled?: boolean;
  executionTimeMs: number;
}

/** Who submitted a task, as authenticated at the edge. */
export interface PrincipalRecord {
  sub: string;
  roles: string[];
  tenant: string;
  scopes: string[];
}

/** A task as the store keeps it. Times are epoch milliseconds. */
export interface TaskRecord {
  id: string;
  state: TaskState;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  workspace: string;
  timeoutMs: number;
  network: "none" | "host" | "restricted";
  /** With network "restricted": the request's allow_hosts (the runner re-checks them). */
  allowHosts?: string[];
  limits: TaskLimits;
  metadata: Record<string, string>;
  principal: PrincipalRecord;
  policyRevision: string;
  traceId: string;
  /** W3C traceparent of the ExecuteCommand span, so dispatch continues its trace. */
  traceparent?: string;
  /** Edge that follows the task (accepted it, or adopted it when that edge died). */
  edgeId?: string;
  runnerId: string;
  /** Boot id of the runner process the task was sent to (see RunnerService.Info). */
  runnerBoot?: string;
  /** Its output was removed by the store's retention (the record and the audit trail stay). */
  outputPruned?: boolean;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  statusMessage: string;
  result: TaskResultRecord | null;
}

/** Fields a state transition may set. */
export type TaskPatch = Partial<
  Pick<
    TaskRecord,
    | "state"
    | "runnerId"
    | "runnerBoot"
    | "edgeId"
    | "startedAt"
    | "finishedAt"
    | "statusMessage"
    | "result"
  >
>;

/** A condition on the current record for a compare-and-set update. */
export interface TaskCondition {
  /** Apply only while the task is still followed by this edge ("" = none recorded). */
  edgeId?: string;
  /** Apply only while the task is assigned to this runner ("" = not dispatched). */
  runnerId?: string;
}

/** Kinds of stored output chunks, mirroring the public OutputKind. */
export type ChunkKind = "stdout" | "stderr" | "event";

/** One stored piece of a task's output, numbered from 1 per task. */
export interface OutputChunk {
  taskId: string;
  seq: number;
  kind: ChunkKind;
  data: Uint8Array;
  time: number;
}

/** What the pipeline asks to record; the store adds sequence and hashes. */
export interface AuditEntry {
  time: number;
  traceId: string;
  principal: PrincipalRecord | null;
  operation: string;
  /** Parameters with secrets redacted. */
  params: Record<string, unknown>;
  decision: "allow" | "deny" | "none";
  reasons: string[];
  policyRevision: string;
  taskId: string;
  runnerId: string;
  /** "accepted", "denied", "error:<code>", "completed", "failed" ... */
  outcome: string;
  details: Record<string, unknown>;
}

/** An audit entry as stored in the hash chain. */
export interface AuditRecord extends AuditEntry {
  seq: number;
  prevHash: string;
  hash: string;
  /** Id of the audit key whose HMAC is `hash` (absent in unkeyed chains). */
  keyId?: string;
  /** Record format (absent: 1, before RFC 8785; see docs/security/audit-format.md). */
  v?: number;
}

/** Filter for listing audit records. */
export interface AuditQuery {
  afterSeq?: number;
  /** Only records of principals of this tenant. */
  tenant?: string;
  sinceMs?: number;
  principal?: string;
  operation?: string;
  decision?: "allow" | "deny" | "none";
  limit: number;
}

/** A store's audit table that another thread can open and read by sequence range. */
export interface AuditRangeSource {
  /** A SQLite database file (opened read-only). */
  sqlite: string;
}

/** A stored audit row exactly as on disk, for verification. */
export interface RawAuditRow {
  seq: number;
  prevHash: string;
  hash: string;
  /** The canonical JSON body that was hashed. */
  body: string;
  /**
   * The indexed copies of body fields that listings filter on, when the store
   * keeps them: `audit verify` checks they agree with the signed body.
   */
  columns?: {
    time: number;
    principal: string;
    tenant: string;
    operation: string;
    decision: string;
  };
}

/** Options of a store write. */
export interface WriteOptions {
  /**
   * `false`: resolve once the write is committed and visible, before it is durable; the next
   * durable write makes it durable too (writes reach the disk in order). Only for writes a
   * crash may lose because they are replayed: a running task's events, which its runner keeps
   * until the edge releases them after the task's final, durable write; and the audit record
   * of an allowed ExecuteCommand, whose task's insert follows at once and is durable before the
   * edge acts or answers (so a crash can lose the record only with the task it allowed).
   * Default true. Stores that are always durable ignore it.
   */
  durable?: boolean;
}

/** What {@link TaskStore.finishTask} did. */
export interface FinishResult {
  /** The task as it is afterwards (unchanged when the patch was not applied); undefined if it does not exist. */
  task: TaskRecord | undefined;
  /** Whether this call applied the patch (false: the task was already terminal, or the condition did not hold). */
  applied: boolean;
  /** The outcome's audit record, appended in the same transaction as the patch. */
  record?: AuditRecord;
  /** Why the outcome could not be recorded although the patch applied (its entry could not be built or sealed). */
  auditError?: Error;
}

/**
 * Everything the edge keeps. Implementations: SQLite (embedded default) and
 * PostgreSQL (HA). All methods are async so that a networked store drops in
 * without touching handlers. A resolved write is durable.
 */
export interface TaskStore extends ToolPinStore {
  /** Persists a new task; resolves only once it is durable. */
  createTask(task: TaskRecord): Promise<void>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  /**
   * Applies a patch unless the task is already terminal or the condition does
   * not hold (compare-and-set). Resolves to the task as it is afterwards
   * (unchanged when the patch was not applied), or undefined if it does not exist.
   */
  updateTask(
    id: string,
    patch: TaskPatch,
    condition?: TaskCondition,
    options?: WriteOptions,
  ): Promise<TaskRecord | undefined>;
  /** Tasks in the given states, oldest first (recovery after a restart). */
  listTasksInStates(states: readonly TaskState[], limit: number): Promise<TaskRecord[]>;
  /**
   * Tasks in {@link ACTIVE_STATES} of one tenant, and of those, of one subject in it (the
   * concurrent-task quotas): counted by the store, without loading the tasks.
   */
  countActiveTasks(tenant: string, sub: string): Promise<{ tenant: number; principal: number }>;
  /**
   * Appends output; resolves to its sequence number. `runnerSeq` is the
   * runner's event number for the chunk: a chunk whose runnerSeq is already
   * stored for the task is not stored again (the existing seq is returned), so
   * two edges following one task (an adopter and a lapsed owner) never
   * duplicate output. Without it the chunk is always appended.
   */
  appendOutput(
    taskId: string,
    kind: ChunkKind,
    data: Uint8Array,
    time: number,
    runnerSeq?: number,
    options?: WriteOptions,
  ): Promise<number>;
  /** Output chunks with seq > afterSeq, in order, at most limit. */
  readOutput(taskId: string, afterSeq: number, limit: number): Promise<OutputChunk[]>;
  /**
   * Removes the output of finished tasks (never of unfinished ones): first of tasks created
   * before `retention.createdBefore`, then of the oldest finished tasks until the stored output
   * is at most `retention.maxTotalBytes`. Task records stay (marked `outputPruned`); audit
   * records are never touched. Idempotent; edges may run it concurrently.
   */
  pruneOutput(retention: OutputRetention): Promise<PruneResult>;
  /** Appends to the audit hash chain atomically; durable when it resolves unless `write` says otherwise. */
  appendAudit(entry: AuditEntry, write?: WriteOptions): Promise<AuditRecord>;
  /**
   * Applies a task's final patch like {@link updateTask} and, when it applied, appends the
   * outcome's audit record built from the task as it is afterwards — in one transaction, so a
   * crash between them cannot leave a finished task without its record (recovery never
   * revisits finished tasks). An entry that cannot be built or sealed does not stop the task
   * finishing: the result says why (`auditError`). A failed write stores neither.
   * `committed` is called, when the patch applied, once both are committed and visible, before
   * they are durable (to wake followers early); the promise resolves once they are durable.
   */
  finishTask(
    id: string,
    patch: TaskPatch,
    condition: TaskCondition,
    outcome: (task: TaskRecord) => AuditEntry,
    committed?: (result: FinishResult) => void,
  ): Promise<FinishResult>;
  /** Audit records in chain order. */
  listAudit(query: AuditQuery): Promise<AuditRecord[]>;
  /** Every stored audit row in chain order, as on disk (for `audit verify`), with its indexed columns. */
  auditRows(): AsyncIterable<RawAuditRow>;
  /**
   * Where worker threads can read this store's audit rows by sequence range themselves
   * (`audit verify` on long chains); undefined when they cannot (in-memory, remote).
   */
  auditRangeSource?(): AuditRangeSource | undefined;
  /** The last record's sequence number and hash ({seq: 0, hash: GENESIS_HASH} when empty). */
  auditHead(): Promise<{ seq: number; hash: string }>;
  /**
   * Resolves once every write committed before this call is durable, without causing a sync of
   * its own: after the next sync that starts after the call (a durable write's, or close's).
   * Stores that are always durable resolve at once. Rejects when the store cannot make writes
   * durable any more (SQLite: a failed sync of its WAL).
   */
  whenDurable(): Promise<void>;
  /** Checks the store answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
