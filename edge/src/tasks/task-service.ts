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
import type { RunnerHandle, RunnerPool } from "../runners/pool.js";
import type { AuditEntry, OutputChunk, TaskRecord, TaskState, TaskStore } from "../store/types.js";
import { TERMINAL_STATES } from "../store/types.js";
import type { TaskEvents } from "./events.js";

/** Options for {@link createTaskService}. */
export interface TaskServiceOptions {
  store: TaskStore;
  runners: RunnerPool;
  events: TaskEvents;
  logger: Logger;
  metrics: EdgeMetrics;
  /** Records task outcomes in the audit chain. */
  audit: (entry: AuditEntry) => Promise<unknown>;
  /** How long to keep re-attaching to a runner that dropped a running task's stream, ms. */
  reattachGraceMs?: number;
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
  /** Re-dispatches or re-attaches tasks left unfinished by a previous run. */
  recover(): Promise<number>;
  /** Resolves when no dispatch loop is running, or after timeoutMs. */
  drain(timeoutMs: number): Promise<void>;
}

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

/** The runner-side spec of a stored task. */
function specOf(task: TaskRecord) {
  return {
    command: task.command,
    args: task.args,
    env: task.env,
    cwd: task.cwd,
    timeoutMs: BigInt(task.timeoutMs),
    workspace: task.workspace,
    network: task.network === "host" ? NetworkMode.HOST : NetworkMode.NONE,
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
): Authorization {
  return {
    $typeName: "mcp.runner.v1.Authorization",
    principal: { $typeName: "mcp.runner.v1.Principal", ...task.principal },
    policyRevision: task.policyRevision,
    metadata: task.metadata,
    traceparent,
  };
}

/** Creates the task service. */
export function createTaskService(options: TaskServiceOptions): TaskService {
  const { store, runners, events, logger, metrics, signal } = options;
  const reattachGraceMs = options.reattachGraceMs ?? 5000;
  const loops = new Set<Promise<void>>();
  const encoder = new TextEncoder();

  function track(p: Promise<void>): void {
    loops.add(p);
    void p.finally(() => loops.delete(p));
  }

  async function finish(
    task: TaskRecord,
    state: TaskState,
    message: string,
    extra: Partial<TaskRecord> = {},
  ): Promise<void> {
    const finishedAt = Date.now();
    const updated = await store.updateTask(task.id, {
      state,
      statusMessage: message,
      finishedAt,
      ...extra,
    });
    events.notify(task.id);
    if (!updated || updated.finishedAt !== finishedAt) return; // already terminal: someone else finished it
    metrics.tasksInFlight.dec({ state: "active" });
    metrics.taskLatency.observe(
      { operation: "execute", outcome: state },
      finishedAt - task.createdAt,
    );
    await options
      .audit({
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
          message,
        },
      })
      .catch((err: unknown) =>
        logger.error({ err, taskId: task.id }, "audit of task outcome failed"),
      );
  }

  /** Applies one runner event to the store; returns true on the final event. */
  async function apply(task: TaskRecord, ev: TaskEvent): Promise<boolean> {
    const e = ev.event;
    switch (e.case) {
      case "started":
        await store.updateTask(task.id, {
          state: "running",
          startedAt: ev.time ? Number(timestampMs(ev.time)) : Date.now(),
        });
        break;
      case "output": {
        const kind = e.value.stream === OutputKind.STDERR ? "stderr" : "stdout";
        await store.appendOutput(task.id, kind, e.value.data, Date.now());
        break;
      }
      case "notice":
        await store.appendOutput(task.id, "event", encoder.encode(e.value.message), Date.now());
        break;
      case "exited": {
        const x = e.value;
        await finish(task, stateOf(x.status), x.message, {
          result: {
            exitCode: x.exitCode,
            signal: x.signal,
            stdoutTruncated: x.stdoutTruncated,
            stderrTruncated: x.stderrTruncated,
            userCpuMs: Number(x.usage?.userCpuMs ?? 0n),
            systemCpuMs: Number(x.usage?.systemCpuMs ?? 0n),
            maxRssKb: Number(x.usage?.maxRssKb ?? 0n),
            executionTimeMs: Number(x.executionTimeMs),
          },
        });
        return true;
      }
      default:
        break;
    }
    events.notify(task.id);
    return false;
  }

  /** Follows a task's events on its runner until it finishes. */
  async function follow(
    task: TaskRecord,
    runner: RunnerHandle,
    start: boolean,
    traceparent = "",
  ): Promise<void> {
    let lastSeq = 0n;
    let firstFailure = 0;
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        const stream =
          start && attempt === 0
            ? runner.client.execute(
                {
                  taskId: task.id,
                  spec: specOf(task),
                  authorization: authorizationOf(task, traceparent),
                },
                { signal },
              )
            : runner.client.attach({ taskId: task.id, afterSeq: lastSeq }, { signal });
        for await (const res of stream) {
          if (!res.event || res.event.seq <= lastSeq) continue;
          lastSeq = res.event.seq;
          firstFailure = 0;
          if (await apply(task, res.event)) return;
        }
        throw new ConnectError(
          "runner closed the stream before the task finished",
          Code.Unavailable,
        );
      } catch (err) {
        if (signal.aborted) return;
        const ce = ConnectError.from(err);
        if (ce.code === Code.NotFound && !(start && attempt === 0)) {
          await finish(task, "failed", `runner lost: ${runner.id} no longer knows this task`);
          return;
        }
        if (
          ce.code !== Code.Unavailable &&
          ce.code !== Code.Internal &&
          ce.code !== Code.Unknown &&
          ce.code !== Code.DeadlineExceeded
        ) {
          // The runner refused the task (policy re-check, sandbox not ready, bad spec).
          await finish(task, "failed", `runner ${runner.id} refused the task: ${ce.rawMessage}`);
          return;
        }
        if (start && attempt === 0 && lastSeq === 0n && ce.code === Code.Unavailable) {
          // Never reached the runner: safe to say so, nothing ran.
          await finish(task, "failed", `runner ${runner.id} unreachable: ${ce.rawMessage}`);
          return;
        }
        firstFailure ||= Date.now();
        if (Date.now() - firstFailure > reattachGraceMs) {
          await finish(task, "failed", `runner lost: ${runner.id} (${ce.rawMessage})`);
          return;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async function dispatch(task: TaskRecord): Promise<void> {
    let runner: RunnerHandle;
    try {
      runner = runners.pick(task.workspace);
    } catch (err) {
      await finish(task, "failed", ConnectError.from(err).rawMessage);
      return;
    }
    const updated = await store.updateTask(task.id, { runnerId: runner.id });
    if (!updated || TERMINAL_STATES.has(updated.state)) return; // cancelled meanwhile
    runner.load++;
    const span = startSpan(
      options.tracer,
      "task.dispatch",
      contextFromTraceparent(task.traceparent),
      { "mcp.task_id": task.id, "mcp.runner_id": runner.id },
      SpanKind.CLIENT,
    );
    try {
      await follow(updated, runner, true, traceparentOf(span.span));
    } finally {
      runner.load--;
      endSpan(span.span);
    }
  }

  function run(p: () => Promise<void>, taskId: string): void {
    track(
      p().catch((err: unknown) => {
        logger.error({ err, taskId }, "task dispatch failed");
      }),
    );
  }

  return {
    async submit(task) {
      await store.createTask(task);
      metrics.tasksInFlight.inc({ state: "active" });
      run(() => dispatch(task), task.id);
    },

    async cancel(task) {
      if (TERMINAL_STATES.has(task.state)) return task.state;
      const current = await store.getTask(task.id);
      if (!current || TERMINAL_STATES.has(current.state)) return current?.state ?? task.state;
      const runner = current.runnerId ? runners.get(current.runnerId) : undefined;
      if (!runner) {
        await finish(current, "cancelled", "cancelled before it was dispatched");
        return "cancelled";
      }
      const res = await runner.client.cancel({ taskId: task.id }, { timeoutMs: 5000 });
      if (!res.cancelled) {
        // The runner no longer runs it: either it just finished (the stream will say) or never started.
        const again = await store.getTask(task.id);
        if (again && !TERMINAL_STATES.has(again.state) && again.state !== "running") {
          await finish(again, "cancelled", "cancelled before it started");
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
        const chunks = await store.readOutput(taskId, after, 256);
        for (const chunk of chunks) {
          after = chunk.seq;
          yield { type: "chunk", chunk };
        }
        if (chunks.length === 256) continue;
        const task = await store.getTask(taskId);
        if (!task) return;
        if (TERMINAL_STATES.has(task.state)) {
          const tail = await store.readOutput(taskId, after, 256);
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
      const open = await store.listTasksInStates(["created", "queued", "running"], 10_000);
      for (const task of open) {
        metrics.tasksInFlight.inc({ state: "active" });
        if (!task.runnerId) {
          run(() => dispatch(task), task.id);
          continue;
        }
        const runner = runners.get(task.runnerId);
        if (!runner) {
          run(
            () => finish(task, "failed", `runner lost: ${task.runnerId} is no longer configured`),
            task.id,
          );
          continue;
        }
        // Attach only: Execute again could run a command twice.
        run(() => follow(task, runner, false), task.id);
      }
      return open.length;
    },

    async drain(timeoutMs) {
      const all = Promise.allSettled([...loops]);
      await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    },
  };
}
