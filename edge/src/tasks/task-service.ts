import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  contextFromTraceparent,
  endSpan,
  SpanKind,
  startSpan,
  type Tracer,
  traceparentOf,
} from "@mcp-gateway/common/tracing";
import { NetworkMode, OutputKind, TaskStatus } from "@mcp-gateway/proto/mcp";
import type { Authorization, TaskEvent } from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import type { EdgeMetrics } from "../metrics.js";
import type { Pipeline } from "../pipeline/authorize.js";
import {
  type RunnerHandle,
  type RunnerPool,
  runnerProblem,
  runnerRefusal,
} from "../runners/pool.js";
import type {
  AuditEntry,
  OutputChunk,
  TaskCondition,
  TaskRecord,
  TaskState,
  TaskStore,
  WriteOptions,
} from "../store/types.js";
import { ACTIVE_STATES, TERMINAL_STATES } from "../store/types.js";
import type { TaskEvents } from "./events.js";
import { createFairQueue, type Ticket } from "./fair-queue.js";

/**
 * Output chunks read from the store per step of a follower (chunks are up to ~64 KiB). The
 * read is synchronous on SQLite: 256 at a time pulled a whole 10 MiB output into one
 * event-loop turn and held every other request up for it (issue 21's big-output reader).
 */
const WATCH_BATCH = 16;

/** Options for {@link createTaskService}. */
export interface TaskServiceOptions {
  store: TaskStore;
  runners: RunnerPool;
  events: TaskEvents;
  logger: Logger;
  metrics: EdgeMetrics;
  /** Records other task events in the audit chain (egress connections): `pipeline.audit`. */
  audit: (entry: AuditEntry) => Promise<unknown>;
  /**
   * Finishes a task with its outcome's audit record in one transaction of this service's
   * `store`, resolving once durable: `pipeline.finishTask`.
   */
  finishTask: Pipeline["finishTask"];
  /** How long to keep re-attaching to a runner that dropped a running task's stream before "runner lost", ms (default 3000). */
  reattachGraceMs?: number;
  /** How long a task may wait for a runner with room before it fails, ms (default 30000). */
  queueTimeoutMs?: number;
  /** This edge's id: recorded on the tasks it follows. */
  edgeId: string;
  /** Fencing token of the active lease (active-passive), sent to runners; absent in active-active. */
  fencingToken?: () => bigint;
  /** Whether another edge still holds its liveness lease (HA); absent: no other edges exist. */
  isEdgeAlive?: (edgeId: string) => Promise<boolean>;
  /** Aborted at shutdown: background dispatch loops stop. */
  signal: AbortSignal;
  tracer: Tracer;
}

/** What StreamTaskOutput yields: stored chunks, then the finished task. */
export type WatchItem = { type: "chunk"; chunk: OutputChunk } | { type: "exit"; task: TaskRecord };

/** Task lifecycle at the edge: accept durably, dispatch, follow, cancel. */
export interface TaskService {
  /** Persists the task (durable when this resolves) and starts dispatching it. */
  submit(task: TaskRecord): Promise<void>;
  /** Kills a task; resolves to its state afterwards. */
  cancel(task: TaskRecord): Promise<TaskState>;
  /** Replays stored output, then follows the task until it finishes. */
  watch(taskId: string, signal: AbortSignal): AsyncGenerator<WatchItem>;
  /**
   * Takes over unfinished tasks no live edge follows (after a restart, or
   * when another edge died): dispatches those that never reached a runner,
   * re-attaches the others. Resolves to the number taken over.
   */
  recover(): Promise<number>;
  /** Resolves when no dispatch loop is running, or after timeoutMs. */
  drain(timeoutMs: number): Promise<void>;
}

/** Writes of runner events the runner replays until released: see `apply`. */
const REPLAYED: WriteOptions = { durable: false };

/** Maps a runner's terminal status to the stored state. */
function stateOf(status: TaskStatus): TaskState {
  switch (status) {
    case TaskStatus.COMPLETED:
      return "completed";
    case TaskStatus.CANCELLED:
      return "cancelled";
    case TaskStatus.TIMED_OUT:
      return "timed_out";
    default:
      return "failed";
  }
}

/** The event line of an egress connection, e.g. "egress allowed.test:443 allowed: 517 bytes sent, 3301 received". */
export function egressMessage(c: {
  host: string;
  port: number;
  allowed: boolean;
  reason: string;
  bytesSent: bigint;
  bytesReceived: bigint;
}): string {
  const target = `${c.host.includes(":") ? `[${c.host}]` : c.host}:${c.port}`;
  if (!c.allowed) return `egress ${target} denied: ${c.reason}`;
  const moved = `${c.bytesSent} bytes sent, ${c.bytesReceived} received`;
  return `egress ${target} allowed: ${moved}${c.reason === "" ? "" : ` (${c.reason})`}`;
}

/** The runner-side spec of a stored task. */
function specOf(task: TaskRecord) {
  return {
    command: task.command,
    args: task.args,
    env: task.env,
    cwd: task.cwd,
    timeoutMs: BigInt(task.timeoutMs),
    workspace: task.workspace,
    network:
      task.network === "host"
        ? NetworkMode.HOST
        : task.network === "restricted"
          ? NetworkMode.RESTRICTED
          : NetworkMode.NONE,
    allowHosts: task.allowHosts ?? [],
    limits: {
      memoryBytes: BigInt(task.limits.memoryBytes),
      maxProcesses: task.limits.maxProcesses,
      maxFileSizeBytes: BigInt(task.limits.maxFileSizeBytes),
      maxOpenFiles: task.limits.maxOpenFiles,
      cpuSeconds: task.limits.cpuSeconds,
      maxOutputBytes: BigInt(task.limits.maxOutputBytes),
    },
  };
}

/** The authorization the runner re-checks. */
export function authorizationOf(
  task: Pick<TaskRecord, "principal" | "policyRevision" | "metadata" | "traceId">,
  traceparent = "",
  fencingToken = 0n,
): Authorization {
  return {
    $typeName: "mcp.runner.v1.Authorization",
    principal: { $typeName: "mcp.runner.v1.Principal", ...task.principal },
    policyRevision: task.policyRevision,
    metadata: task.metadata,
    traceparent,
    fencingToken,
  };
}

/**
 * A signal for one runner call that aborts with `parent` (the edge's shutdown) but holds no
 * listener on it once released. Connect adds an "abort" listener to the signal a call is given
 * and removes it only if that signal aborts: given the edge's lifetime signal, every finished
 * call's stream stayed reachable from it (~30 KB per task: the edge's heap grew without bound
 * and tasks slowed down with it; found by bench:soak's before/after probe and a heap diff).
 */
export function callSignal(parent: AbortSignal): { signal: AbortSignal; release(): void } {
  const call = new AbortController();
  if (parent.aborted) {
    call.abort(parent.reason);
    return { signal: call.signal, release: () => undefined };
  }
  const follow = () => call.abort(parent.reason);
  parent.addEventListener("abort", follow, { once: true });
  return { signal: call.signal, release: () => parent.removeEventListener("abort", follow) };
}

/**
 * Codes with which a runner refuses a task outright (re-check denied, bad
 * spec, sandbox unavailable): retrying cannot help. Any other error is
 * treated as a lost connection.
 */
const REFUSALS: ReadonlySet<Code> = new Set([
  Code.InvalidArgument,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.Unauthenticated,
  Code.Unimplemented,
  Code.OutOfRange,
  Code.AlreadyExists,
]);

/**
 * True when a failed Execute certainly did not start the task, so it may go
 * to another runner: the runner said it is full or draining, or the
 * connection was never established.
 */
function certainlyNotStarted(err: ConnectError): boolean {
  if (runnerRefusal(err)) return true;
  for (let c: unknown = err.cause; c instanceof Error; c = (c as { cause?: unknown }).cause) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH") return true;
  }
  return false;
}

/** Creates the task service. */
export function createTaskService(options: TaskServiceOptions): TaskService {
  const { store, runners, events, logger, metrics, signal } = options;
  const reattachGraceMs = options.reattachGraceMs ?? 3000;
  const queueTimeoutMs = options.queueTimeoutMs ?? 30_000;
  const edgeId = options.edgeId;
  /** Tasks this edge follows right now (never twice). */
  const following = new Set<string>();
  const loops = new Set<Promise<void>>();
  const encoder = new TextEncoder();
  /** Tasks waiting for a runner with room, given turns round robin over tenants. */
  const queue = createFairQueue({
    onSize: (d) => (d > 0 ? metrics.tasksQueued.inc() : metrics.tasksQueued.dec()),
  });

  function track(p: Promise<void>): void {
    loops.add(p);
    void p.finally(() => loops.delete(p));
  }

  /**
   * Stores a task's outcome and its audit record in one transaction (a crash cannot separate
   * them: recovery never revisits a finished task), wakes its followers. `replayed`: the outcome
   * is the runner's exit, which the runner keeps until Release — then followers see it as soon as
   * it is committed (issue 13: one disk sync less between the exit and the caller's EXIT), and
   * finish resolves only once it is durable (a durable write of nothing, when another edge
   * finished it first).
   */
  async function finish(
    task: TaskRecord,
    state: TaskState,
    message: string,
    extra: Partial<TaskRecord> = {},
    condition: TaskCondition = {},
    replayed = false,
  ): Promise<void> {
    // The task's output is complete: the exit is its last event, or its runner is gone.
    const output = await storedOutput(task.id).then(
      (o) => ({ stdoutBytes: o.stdout, stderrBytes: o.stderr }),
      () => ({}),
    );
    const finishedAt = Date.now();
    const wake = () => {
      events.notify(task.id);
      // A slot may have freed: the queue's next attempt need not wait out its back-off.
      queue.wake();
    };
    const result = await options.finishTask(
      task.id,
      { state, statusMessage: message, finishedAt, ...extra },
      condition,
      (updated) => ({
        time: finishedAt,
        traceId: task.traceId,
        principal: task.principal,
        operation: "task_finished",
        params: { command: task.command, args: task.args, workspace: task.workspace },
        decision: "none",
        reasons: [],
        policyRevision: task.policyRevision,
        taskId: task.id,
        runnerId: updated.runnerId,
        outcome: state,
        details: {
          exitCode: updated.result?.exitCode ?? null,
          signal: updated.result?.signal ?? "",
          executionTimeMs: updated.result?.executionTimeMs ?? 0,
          durationMs: finishedAt - task.createdAt,
          ...output,
          message,
        },
      }),
      replayed ? wake : undefined,
    );
    if (!replayed) wake();
    if (!result.applied) {
      if (replayed) wake();
      // Someone else finished it; an empty patch writes nothing but resolves after a sync that
      // covers every earlier commit (theirs too, when it was this process's).
      if (replayed) await store.updateTask(task.id, {});
      return;
    }
    if (result.auditError) {
      logger.error(
        { err: result.auditError, taskId: task.id, traceId: task.traceId },
        "audit of task outcome failed",
      );
    }
    metrics.tasksInFlight.dec({ state: "active" });
    metrics.taskLatency.observe(
      { operation: "execute", outcome: state },
      finishedAt - task.createdAt,
    );
  }

  /**
   * Applies one runner event to the store; returns true on the final event.
   * Events before the exit are stored without waiting for the disk (issue 13):
   * the runner keeps them until Release, which is sent only after the exit's
   * durable write — and that write makes every earlier one durable too. After
   * a crash, re-attaching replays whatever the disk lost.
   */
  async function apply(task: TaskRecord, ev: TaskEvent): Promise<boolean> {
    const e = ev.event;
    switch (e.case) {
      case "started":
        await store.updateTask(
          task.id,
          { state: "running", startedAt: ev.time ? Number(timestampMs(ev.time)) : Date.now() },
          {},
          REPLAYED,
        );
        break;
      case "output": {
        const kind = e.value.stream === OutputKind.STDERR ? "stderr" : "stdout";
        await store.appendOutput(task.id, kind, e.value.data, Date.now(), Number(ev.seq), REPLAYED);
        break;
      }
      case "notice":
        await store.appendOutput(
          task.id,
          "event",
          encoder.encode(e.value.message),
          Date.now(),
          Number(ev.seq),
          REPLAYED,
        );
        break;
      case "egress": {
        // A connection attempt through the task's egress proxy (network "restricted"): in the
        // task's events for logs/stream/MCP, and in the audit chain.
        const c = e.value;
        const message = egressMessage(c);
        await store.appendOutput(
          task.id,
          "event",
          encoder.encode(message),
          Date.now(),
          Number(ev.seq),
          REPLAYED,
        );
        await options
          .audit({
            time: ev.time ? Number(timestampMs(ev.time)) : Date.now(),
            traceId: task.traceId,
            principal: task.principal,
            operation: "egress_connection",
            params: { host: c.host, port: c.port, kind: c.kind },
            decision: c.allowed ? "allow" : "deny",
            reasons: c.reason === "" ? [] : [c.reason],
            policyRevision: task.policyRevision,
            taskId: task.id,
            runnerId: task.runnerId,
            outcome: c.allowed ? "connected" : "refused",
            details: {
              address: c.address,
              bytesSent: Number(c.bytesSent),
              bytesReceived: Number(c.bytesReceived),
            },
          })
          .catch((err: unknown) =>
            logger.error({ err, taskId: task.id }, "audit of an egress connection failed"),
          );
        break;
      }
      case "exited": {
        const x = e.value;
        await finish(
          task,
          stateOf(x.status),
          x.message,
          {
            result: {
              exitCode: x.exitCode,
              signal: x.signal,
              stdoutTruncated: x.stdoutTruncated,
              stderrTruncated: x.stderrTruncated,
              userCpuMs: Number(x.usage?.userCpuMs ?? 0n),
              systemCpuMs: Number(x.usage?.systemCpuMs ?? 0n),
              maxRssKb: Number(x.usage?.maxRssKb ?? 0n),
              memoryPeakBytes: Number(x.usage?.memoryPeakBytes ?? 0n),
              oomKilled: x.usage?.oomKilled ?? false,
              executionTimeMs: Number(x.executionTimeMs),
            },
          },
          {},
          true,
        );
        return true;
      }
      default:
        break;
    }
    events.notify(task.id);
    return false;
  }

  /**
   * Follows a task's events on its runner until it finishes. With `start` it
   * sends Execute (idempotent per task id on the runner); otherwise it
   * attaches, replaying from the start and skipping the output events already
   * stored (`skipOutputs`), so an adopted task's output is never duplicated.
   */
  async function follow(
    task: TaskRecord,
    runner: RunnerHandle,
    start: boolean,
    traceparent = "",
    skipOutputs = 0,
    onAccepted?: () => void,
  ): Promise<"done" | "requeue"> {
    let lastSeq = 0n;
    let skip = skipOutputs;
    let firstFailure = 0;
    let sendExecute = start;
    while (!signal.aborted) {
      const executing = sendExecute;
      sendExecute = false;
      const call = callSignal(signal);
      try {
        const stream = executing
          ? runner.client.execute(
              {
                taskId: task.id,
                spec: specOf(task),
                authorization: authorizationOf(task, traceparent, options.fencingToken?.() ?? 0n),
                // A re-send after "never received" must reach the very process that said so.
                expectedBootId: start ? "" : (task.runnerBoot ?? ""),
              },
              { signal: call.signal },
            )
          : runner.client.attach({ taskId: task.id, afterSeq: lastSeq }, { signal: call.signal });
        for await (const res of stream) {
          if (!res.event || res.event.seq <= lastSeq) continue;
          onAccepted?.();
          const seq = res.event.seq;
          firstFailure = 0;
          const kind = res.event.event.case;
          // Every event stored as an output chunk counts (egress connections too, whose audit
          // record was appended with it): a replay neither duplicates nor drops any.
          if (skip > 0 && (kind === "output" || kind === "notice" || kind === "egress")) {
            skip--;
            lastSeq = seq;
            continue;
          }
          const final = await apply(task, res.event);
          // Only once stored: a failed write is replayed by the next attach, not skipped.
          lastSeq = seq;
          if (final) {
            // Everything is in the store: the runner may free the task's events now (its
            // retained events are bounded in bytes). Best effort: they expire there anyway.
            void runner.client
              .release(
                { taskId: task.id, fencingToken: options.fencingToken?.() ?? 0n },
                { timeoutMs: 2000 },
              )
              .catch(() => undefined);
            return "done";
          }
        }
        throw new ConnectError(
          "runner closed the stream before the task finished",
          Code.Unavailable,
        );
      } catch (err) {
        if (signal.aborted) return "done";
        const ce = ConnectError.from(err);
        if (executing && lastSeq === 0n && certainlyNotStarted(ce)) {
          // Out of the pool until its next report (full, draining or refusing connections).
          runners.markDown(runner.id, runnerProblem(ce));
          logger.info(
            { taskId: task.id, traceId: task.traceId, runner: runner.id, reason: ce.rawMessage },
            "runner did not take the task; requeued",
          );
          return "requeue";
        }
        if (ce.code === Code.NotFound && !executing) {
          if (task.runnerBoot && runner.bootId === task.runnerBoot) {
            // The same runner process, which keeps every task it accepted, never got this one
            // (its edge died before the Execute arrived): send it now. Execute is idempotent per task id.
            logger.info(
              { taskId: task.id, traceId: task.traceId, runner: runner.id },
              "task never reached its runner; sending it",
            );
            sendExecute = true;
            continue;
          }
          await finish(task, "failed", `runner lost: ${runner.id} no longer knows this task`);
          return "done";
        }
        if (REFUSALS.has(ce.code)) {
          // The runner refused the task (policy re-check, sandbox not ready, bad spec).
          await finish(task, "failed", `runner ${runner.id} refused the task: ${ce.rawMessage}`);
          return "done";
        }
        firstFailure ||= Date.now();
        if (Date.now() - firstFailure > reattachGraceMs) {
          // It may have started: never run it again elsewhere (commands are not idempotent).
          // If the runner is merely unreachable, make sure it does not keep running unobserved.
          void runner.client
            .cancel(
              { taskId: task.id, fencingToken: options.fencingToken?.() ?? 0n },
              { timeoutMs: 1000 },
            )
            .catch(() => undefined);
          // The transport error (internal addresses, TLS details) goes to the log, not to clients.
          logger.warn(
            { taskId: task.id, traceId: task.traceId, runner: runner.id, err: ce.rawMessage },
            "runner unreachable past the re-attach grace; task failed",
          );
          await finish(task, "failed", `runner lost: ${runner.id} ${runnerProblem(ce)}`);
          return "done";
        }
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        call.release();
      }
    }
    return "done";
  }

  /**
   * Waits for the ticket's turn in the fair queue; false when the queue timeout passed, the
   * task was cancelled while it waited, or on shutdown.
   */
  async function waitForTurn(task: TaskRecord, ticket: Ticket, deadline: number): Promise<boolean> {
    for (;;) {
      if (await ticket.turn(Math.max(1, Math.min(1000, deadline - Date.now())))) return true;
      if (Date.now() > deadline || signal.aborted) return false;
      const current = await store.getTask(task.id);
      if (!current || TERMINAL_STATES.has(current.state)) return false;
    }
  }

  /**
   * Runs a task on a runner: waits for one with room, records it on the task,
   * follows it. `assigned`: the runner submit() already stored on the task.
   */
  async function dispatch(task: TaskRecord, assigned?: RunnerHandle): Promise<void> {
    const span = startSpan(
      options.tracer,
      "task.dispatch",
      contextFromTraceparent(task.traceparent),
      { "mcp.task_id": task.id },
      SpanKind.CLIENT,
    );
    const deadline = Date.now() + queueTimeoutMs;
    // The runner submit() chose: tried at once unless other tasks wait for room (they go first).
    let first = queue.size() === 0 ? assigned : undefined;
    let ticket: Ticket | undefined;
    try {
      if (assigned && !first) {
        // Queued behind others instead: no runner holds it (an adopting edge dispatches it).
        await store.updateTask(task.id, { runnerId: "", runnerBoot: "" }, { edgeId });
      }
      for (;;) {
        let runner: RunnerHandle | undefined;
        let updated: TaskRecord | undefined;
        if (first) {
          // Stored with the task in its one durable write; only a cancel may have come since.
          runner = first;
          first = undefined;
          updated = await store.getTask(task.id);
        } else {
          ticket ??= queue.enter(task.principal.tenant);
          if (!(await waitForTurn(task, ticket, deadline))) {
            if (signal.aborted) return;
            const current = await store.getTask(task.id);
            if (!current || TERMINAL_STATES.has(current.state)) return; // cancelled while queued
            const reason = `no runner became available within ${queueTimeoutMs / 1000}s (${runners.describe()})`;
            await finish(task, "failed", reason);
            return;
          }
          // Its turn: one attempt. A runner the last probe saw full is asked too (it may have
          // freed a slot since; it refuses for real if not).
          runner = runners.tryPick(task.workspace, { includeFull: true });
          if (!runner) {
            ticket.refused();
            continue;
          }
          updated = await store.updateTask(
            task.id,
            { runnerId: runner.id, runnerBoot: runner.bootId },
            { edgeId },
          );
        }
        if (!updated || TERMINAL_STATES.has(updated.state) || updated.runnerId !== runner.id)
          return;
        span.span.setAttribute("mcp.runner_id", runner.id);
        const held = ticket;
        const outcome = await follow(updated, runner, true, traceparentOf(span.span), 0, () =>
          held?.taken(),
        );
        if (outcome === "done") return;
        // Not taken: record that no runner holds it, so an edge adopting it dispatches it.
        await store.updateTask(task.id, { runnerId: "", runnerBoot: "" }, { edgeId });
        if (ticket) ticket.refused();
        else await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      ticket?.leave();
      endSpan(span.span);
    }
  }

  /** Output chunks stored for a task, and the bytes of each stream (bounded by the output caps). */
  async function storedOutput(
    taskId: string,
  ): Promise<{ chunks: number; stdout: number; stderr: number }> {
    const totals = { chunks: 0, stdout: 0, stderr: 0 };
    for (let after = 0; ; ) {
      const chunks = await store.readOutput(taskId, after, 1024);
      totals.chunks += chunks.length;
      for (const c of chunks) if (c.kind !== "event") totals[c.kind] += c.data.byteLength;
      if (chunks.length < 1024) return totals;
      after = chunks[chunks.length - 1]?.seq ?? after;
    }
  }

  /** Takes over an unfinished task: dispatch it if it never reached a runner, else attach. */
  function resume(task: TaskRecord): void {
    if (following.has(task.id)) return;
    following.add(task.id);
    metrics.tasksInFlight.inc({ state: "active" });
    run(async () => {
      try {
        if (!task.runnerId) return await dispatch(task);
        const runner = runners.get(task.runnerId);
        if (!runner) {
          return await finish(
            task,
            "failed",
            `runner lost: ${task.runnerId} is not known to this edge`,
          );
        }
        // Attach only: Execute again could run a command twice.
        const outcome = await follow(task, runner, false, "", (await storedOutput(task.id)).chunks);
        if (outcome === "requeue") {
          // The runner certainly did not take it: release it and dispatch afresh.
          const released = await store.updateTask(
            task.id,
            { runnerId: "", runnerBoot: "" },
            { edgeId },
          );
          if (released && !TERMINAL_STATES.has(released.state)) await dispatch(released);
        }
        return;
      } finally {
        following.delete(task.id);
      }
    }, task);
  }

  function run(p: () => Promise<void>, task: Pick<TaskRecord, "id" | "traceId">): void {
    track(
      p().catch((err: unknown) => {
        logger.error({ err, taskId: task.id, traceId: task.traceId }, "task dispatch failed");
      }),
    );
  }

  return {
    async submit(task) {
      // A runner with room now is stored with the task (issue 13: one durable write before
      // Execute instead of two). Should this edge die before Execute, whoever recovers the
      // task attaches, hears "not found" from that same runner process and sends it then.
      const runner = runners.tryPick(task.workspace);
      const owned: TaskRecord = {
        ...task,
        edgeId,
        ...(runner ? { runnerId: runner.id, runnerBoot: runner.bootId } : {}),
      };
      following.add(task.id); // before it is visible in the store: the adoption pass must skip it
      try {
        await store.createTask(owned);
      } catch (err) {
        following.delete(task.id);
        throw err;
      }
      metrics.tasksInFlight.inc({ state: "active" });
      run(async () => {
        try {
          await dispatch(owned, runner);
        } finally {
          following.delete(task.id);
        }
      }, task);
    },

    async cancel(task) {
      if (TERMINAL_STATES.has(task.state)) return task.state;
      let current = await store.getTask(task.id);
      if (!current || TERMINAL_STATES.has(current.state)) return current?.state ?? task.state;
      if (!current.runnerId) {
        // Only while still undispatched: if dispatch assigned a runner meanwhile, cancel it there.
        await finish(
          current,
          "cancelled",
          "cancelled before it was dispatched",
          {},
          { runnerId: "" },
        );
        current = await store.getTask(task.id);
        if (!current || TERMINAL_STATES.has(current.state)) return current?.state ?? "cancelled";
      }
      const runner = current.runnerId ? runners.get(current.runnerId) : undefined;
      if (current.runnerId && !runner) {
        throw new ConnectError(
          `runner ${current.runnerId} of this task is not reachable from this edge`,
          Code.Unavailable,
        );
      }
      if (runner) {
        const res = await runner.client.cancel(
          { taskId: task.id, fencingToken: options.fencingToken?.() ?? 0n },
          { timeoutMs: 5000 },
        );
        if (!res.cancelled) {
          // The runner does not run it (any more): it just finished (its stream will say) or never started.
          const again = await store.getTask(task.id);
          if (again && !TERMINAL_STATES.has(again.state) && again.state !== "running") {
            await finish(again, "cancelled", "cancelled before it started");
          }
        }
      }
      const deadline = Date.now() + 5000;
      for (;;) {
        const t = await store.getTask(task.id);
        if (!t || TERMINAL_STATES.has(t.state) || Date.now() > deadline)
          return t?.state ?? "cancelled";
        await events.wait(task.id, 250);
      }
    },

    async *watch(taskId, abort) {
      let after = 0;
      for (;;) {
        const chunks = await store.readOutput(taskId, after, WATCH_BATCH);
        for (const chunk of chunks) {
          after = chunk.seq;
          yield { type: "chunk", chunk };
        }
        if (chunks.length === WATCH_BATCH) continue;
        const task = await store.getTask(taskId);
        if (!task) return;
        if (TERMINAL_STATES.has(task.state)) {
          const tail = await store.readOutput(taskId, after, WATCH_BATCH);
          if (tail.length > 0) continue;
          yield { type: "exit", task };
          return;
        }
        if (abort.aborted) return;
        // Poll as a fallback so output written by another edge is seen too.
        await events.wait(taskId, 1000, abort);
      }
    },

    async recover() {
      const open = await store.listTasksInStates(ACTIVE_STATES, 10_000);
      /** One liveness look-up per edge per pass. */
      const liveness = new Map<string, boolean>();
      let n = 0;
      for (const task of open) {
        if (following.has(task.id)) continue;
        const owner = task.edgeId ?? "";
        if (owner !== edgeId && options.isEdgeAlive) {
          let alive = liveness.get(owner);
          if (alive === undefined) {
            alive = await options.isEdgeAlive(owner);
            liveness.set(owner, alive);
          }
          if (alive) continue; // another live edge follows it
        }
        const claimed = await store.updateTask(task.id, { edgeId }, { edgeId: task.edgeId ?? "" });
        if (!claimed || claimed.edgeId !== edgeId || TERMINAL_STATES.has(claimed.state)) continue;
        if ((task.edgeId ?? "") !== edgeId) {
          logger.info(
            { taskId: task.id, traceId: task.traceId, from: task.edgeId },
            "adopted a task of an edge that is gone",
          );
        }
        resume(claimed);
        n++;
      }
      return n;
    },

    async drain(timeoutMs) {
      const all = Promise.allSettled([...loops]);
      await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    },
  };
}
