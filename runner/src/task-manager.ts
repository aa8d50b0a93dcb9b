import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { GatewayError } from "@mcp-gateway/common/errors";
import type { EgressObligation } from "@mcp-gateway/common/policy";
import {
  type Context,
  endSpan,
  ROOT_CONTEXT,
  startSpan,
  type Tracer,
} from "@mcp-gateway/common/tracing";
import { OutputKind, TaskStatus } from "@mcp-gateway/proto/mcp";
import {
  EgressConnectionSchema,
  ExitedSchema,
  NoticeSchema,
  OutputSchema,
  StartedSchema,
  type TaskEvent,
  TaskEventSchema,
} from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import type { EgressRecord } from "./egress/proxy.js";
import {
  refusalMessage,
  type Sandbox,
  type SandboxProcess,
  type SandboxResult,
  type SandboxSpec,
} from "./sandbox/index.js";

/** Options for {@link createTaskManager}. */
export interface TaskManagerOptions {
  sandbox: Sandbox;
  logger: Logger;
  /** Tasks running at once; more are refused with ResourceExhausted. */
  maxConcurrent: number;
  /** How long a finished task stays attachable (unless released earlier), ms. */
  retentionMs: number;
  /**
   * Bytes of task events this runner may hold: a running task reserves room for its whole
   * output (2 × maxOutputBytes plus a margin), a finished one holds what it produced until the
   * edge releases it (or retentionMs passes). A task that does not fit is refused with
   * resource_exhausted before it starts (the edge then tries another runner).
   */
  maxRetainedBytes: number;
  /** Called with the bytes retained or reserved whenever that changes (metrics). */
  onRetained?: (bytes: number) => void;
  tracer: Tracer;
  /** Called with the time from spawn to the sandboxed process running, in seconds (metrics). */
  onSpawned?: (seconds: number) => void;
  /** Called with how each task's sandbox started (SandboxProcess.start; metrics). */
  onSandboxStart?: (start: "prepared-sandbox" | "prepared-launcher" | "cold") => void;
  /** Called when a task starts and finishes (metrics). */
  onChange?: (running: number) => void;
  /**
   * Starts the egress proxy of a network "restricted" task (see egress/index.ts). Absent: such
   * tasks are refused with failed_precondition.
   */
  startEgress?: StartEgress;
}

/** One egress connection attempt, as the task's "egress" event reports it: the proxy's record. */
export type EgressEventRecord = EgressRecord;

/** A running egress proxy of one task. */
export interface EgressHandle {
  /** Host directory with the proxy's socket (bound into the sandbox). */
  socketDir: string;
  /** Stops the proxy and removes its directory. */
  close(): Promise<void>;
}

/** Starts a task's egress proxy; rejects when it cannot (the task then does not start). */
export type StartEgress = (
  taskId: string,
  egress: EgressObligation,
  onConnection: (record: EgressEventRecord) => void,
) => Promise<EgressHandle>;

interface Entry {
  id: string;
  events: TaskEvent[];
  /** Bytes of the stored events (output data plus a fixed overhead per event). */
  bytes: number;
  /** Bytes reserved while running (0 once finished). */
  reserved: number;
  done: boolean;
  process: SandboxProcess | null;
  cancelled: boolean;
  wake: Set<() => void>;
  /** Drops the finished task after retentionMs (cleared when it is dropped earlier). */
  expiry?: NodeJS.Timeout | undefined;
}

/** Tasks on this runner: start once, stream with replay, cancel. */
export interface TaskManager {
  /**
   * Starts a task unless one with this id exists (then it is just attached); spans are children
   * of `parent`. A network "restricted" task needs `egress` (the decision's obligation): its
   * proxy starts first, and if it cannot, the task is refused with failed_precondition.
   */
  start(id: string, spec: SandboxSpec, parent?: Context, egress?: EgressObligation): Promise<void>;
  /** Events with seq > afterSeq, then live ones until the task ends or the signal aborts. */
  events(id: string, afterSeq: bigint, signal: AbortSignal): AsyncGenerator<TaskEvent>;
  /** Kills a running task's whole process tree; false if it was not running. */
  cancel(id: string): boolean;
  /** Frees a finished task's events (the edge stored them); false if it is unknown or running. */
  release(id: string): boolean;
  /** Bytes of events held or reserved. */
  retainedBytes(): number;
  has(id: string): boolean;
  /** This process accepted the task at some point (its record may have expired since). */
  seen(id: string): boolean;
  running(): number;
  /** Cancels everything (shutdown) and waits until all trees are gone. */
  stopAll(): Promise<void>;
}

const STATUS: { readonly [K in SandboxResult["status"]]: TaskStatus } = {
  completed: TaskStatus.COMPLETED,
  timed_out: TaskStatus.TIMED_OUT,
  cancelled: TaskStatus.CANCELLED,
  failed: TaskStatus.FAILED,
};

/** Bytes counted per event besides its output data (protobuf objects, timestamps). */
const EVENT_OVERHEAD = 256;
/** Reserved per task besides its output caps: started/exited/notice events. */
const RESERVE_MARGIN = 64 * 1024;

/** Creates the runner's task manager. */
export function createTaskManager(options: TaskManagerOptions): TaskManager {
  const tasks = new Map<string, Entry>();
  /** Every task id this process accepted: an evicted task is never started again. */
  const accepted = new Set<string>();
  /** Ids cancelled before their Execute arrived: such an Execute finishes as cancelled at once. */
  const cancelledEarly = new Set<string>();
  const pending = new Set<Promise<unknown>>();
  let running = 0;
  /** Σ over tasks of max(bytes, reserved). */
  let retained = 0;

  const charge = (entry: Entry): number => Math.max(entry.bytes, entry.reserved);
  function account(entry: Entry, change: () => void): void {
    const before = charge(entry);
    change();
    retained += charge(entry) - before;
    options.onRetained?.(retained);
  }

  /** Removes a task's record (released or expired); it stays "seen". */
  function drop(entry: Entry): void {
    // The expiry timer holds the entry: a released task must not stay reachable for
    // retentionMs through it (it kept every finished task's process, pipes, cgroup and spans
    // alive for 15 minutes: ~20 KB per task; found by bench:soak and a heap diff).
    clearTimeout(entry.expiry);
    entry.expiry = undefined;
    if (tasks.get(entry.id) !== entry) return;
    tasks.delete(entry.id);
    account(entry, () => {
      entry.bytes = 0;
      entry.reserved = 0;
      entry.events = [];
    });
  }

  function push(entry: Entry, event: TaskEvent["event"]): void {
    const size = EVENT_OVERHEAD + (event.case === "output" ? event.value.data.length : 0);
    account(entry, () => {
      entry.bytes += size;
    });
    entry.events.push(
      create(TaskEventSchema, {
        seq: BigInt(entry.events.length + 1),
        time: timestampNow(),
        event,
      }),
    );
    const wake = [...entry.wake];
    entry.wake.clear();
    for (const w of wake) w();
  }

  function finish(entry: Entry, r: SandboxResult): void {
    push(entry, {
      case: "exited",
      value: create(ExitedSchema, {
        status: STATUS[r.status],
        exitCode: r.exitCode,
        signal: r.signal,
        usage: {
          userCpuMs: BigInt(Math.round(r.usage.userCpuMs)),
          systemCpuMs: BigInt(Math.round(r.usage.systemCpuMs)),
          maxRssKb: BigInt(Math.round(r.usage.maxRssKb)),
          memoryPeakBytes: BigInt(Math.round(r.usage.memoryPeakBytes)),
          oomKilled: r.oomKilled,
        },
        executionTimeMs: BigInt(Math.round(r.executionTimeMs)),
        stdoutTruncated: r.stdoutTruncated,
        stderrTruncated: r.stderrTruncated,
        message: r.message,
      }),
    });
    entry.done = true;
    // Nothing cancels a finished task: its process (launcher, pipes, cgroup) is not needed.
    entry.process = null;
    account(entry, () => {
      entry.reserved = 0;
    });
    entry.expiry = setTimeout(() => drop(entry), options.retentionMs);
    entry.expiry.unref();
  }

  async function run(
    entry: Entry,
    spec: SandboxSpec,
    parent: Context,
    proxy: EgressHandle | null,
  ): Promise<void> {
    running++;
    options.onChange?.(running);
    let proxyClosed: Promise<void> | undefined;
    const closeProxy = () => {
      proxyClosed ??=
        proxy
          ?.close()
          .catch((err: unknown) =>
            options.logger.warn({ taskId: entry.id, err }, "egress proxy did not close cleanly"),
          ) ?? Promise.resolve();
      return proxyClosed;
    };
    const spawnSpan = startSpan(options.tracer, "sandbox.spawn", parent, {
      "mcp.task_id": entry.id,
    });
    let runSpan: ReturnType<typeof startSpan> | undefined;
    const spawnedAt = performance.now();
    const started = () => {
      if (runSpan) return;
      options.onSpawned?.((performance.now() - spawnedAt) / 1000);
      endSpan(spawnSpan.span);
      runSpan = startSpan(options.tracer, "task.run", parent, { "mcp.task_id": entry.id });
    };
    try {
      const proc = await options.sandbox.spawn(spec, {
        onStarted: () => {
          started();
          push(entry, { case: "started", value: create(StartedSchema) });
        },
        // The kernel refused to execute a file: the path and the policy's reason.
        onRefusal: (refusal) =>
          push(entry, {
            case: "notice",
            value: create(NoticeSchema, { message: refusalMessage(refusal) }),
          }),
        onOutput: (stream, data) =>
          push(entry, {
            case: "output",
            value: create(OutputSchema, {
              stream: stream === "stdout" ? OutputKind.STDOUT : OutputKind.STDERR,
              data,
            }),
          }),
      });
      options.onSandboxStart?.(proc.start ?? "cold");
      spawnSpan.span.setAttribute("mcp.sandbox_start", proc.start ?? "cold");
      entry.process = proc;
      if (entry.cancelled) proc.cancel();
      started();
      const result = await proc.result;
      // The tree is gone; its egress connections' records come before the exit, which is the
      // last event the edge stores (the proxy reports each connection as it closes them).
      await closeProxy();
      runSpan?.span.setAttributes({
        "mcp.task.status": result.status,
        "process.exit.code": result.exitCode,
      });
      endSpan(
        runSpan?.span ?? spawnSpan.span,
        result.status === "failed" ? result.message : undefined,
      );
      finish(entry, result);
    } catch (err) {
      endSpan(spawnSpan.span, err);
      const message = err instanceof Error ? err.message : String(err);
      options.logger.warn({ taskId: entry.id, err: message }, "task could not start");
      finish(entry, {
        status: "failed",
        exitCode: -1,
        signal: "",
        usage: { userCpuMs: 0, systemCpuMs: 0, maxRssKb: 0, memoryPeakBytes: 0, pidsLimitHits: 0 },
        oomKilled: false,
        executionTimeMs: 0,
        stdoutTruncated: false,
        stderrTruncated: false,
        message,
      });
    } finally {
      await closeProxy();
      running--;
      options.onChange?.(running);
    }
  }

  return {
    async start(id, spec, parent = ROOT_CONTEXT, egress) {
      if (tasks.has(id)) return;
      if (accepted.has(id)) {
        throw new GatewayError(
          "failed_precondition",
          `task ${id} already ran on this runner; its record expired`,
        );
      }
      if (cancelledEarly.delete(id)) {
        const entry: Entry = {
          id,
          events: [],
          bytes: 0,
          reserved: 0,
          done: false,
          process: null,
          cancelled: true,
          wake: new Set(),
        };
        tasks.set(id, entry);
        accepted.add(id);
        finish(entry, {
          status: "cancelled",
          exitCode: -1,
          signal: "",
          usage: {
            userCpuMs: 0,
            systemCpuMs: 0,
            maxRssKb: 0,
            memoryPeakBytes: 0,
            pidsLimitHits: 0,
          },
          oomKilled: false,
          executionTimeMs: 0,
          stdoutTruncated: false,
          stderrTruncated: false,
          message: "cancelled before it started",
        });
        return;
      }
      if (running >= options.maxConcurrent) {
        throw new GatewayError(
          "resource_exhausted",
          `runner is at its limit of ${options.maxConcurrent} concurrent tasks; retry later`,
        );
      }
      const reserve = 2 * spec.limits.maxOutputBytes + RESERVE_MARGIN;
      if (retained + reserve > options.maxRetainedBytes) {
        throw new GatewayError(
          "resource_exhausted",
          `runner output budget is in use (${retained} of ${options.maxRetainedBytes} bytes retained or reserved; this task needs ${reserve}); retry later`,
        );
      }
      const entry: Entry = {
        id,
        events: [],
        bytes: 0,
        reserved: 0,
        done: false,
        process: null,
        cancelled: false,
        wake: new Set(),
      };
      // Network "restricted": the task's egress proxy runs before the task, or the task does
      // not start at all (never "host network instead").
      let proxy: EgressHandle | null = null;
      let runSpec = spec;
      if (spec.network === "restricted") {
        if (options.startEgress === undefined || egress === undefined) {
          throw new GatewayError(
            "failed_precondition",
            'network "restricted" is not available on this runner (no egress proxy)',
          );
        }
        try {
          proxy = await options.startEgress(id, egress, (r) =>
            push(entry, {
              case: "egress",
              value: create(EgressConnectionSchema, {
                host: r.host,
                port: r.port,
                allowed: r.allowed,
                reason: r.reason,
                address: r.address,
                bytesSent: BigInt(r.bytesSent),
                bytesReceived: BigInt(r.bytesReceived),
                kind: r.kind,
              }),
            }),
          );
        } catch (err) {
          throw new GatewayError(
            "failed_precondition",
            `the task's egress proxy could not start: ${err instanceof Error ? err.message : String(err)}`,
            { cause: err },
          );
        }
        if (tasks.has(id)) {
          await proxy.close();
          return;
        }
        runSpec = { ...spec, egress: { socketDir: proxy.socketDir } };
      }
      account(entry, () => {
        entry.reserved = reserve;
      });
      tasks.set(id, entry);
      accepted.add(id);
      const p = run(entry, runSpec, parent, proxy);
      pending.add(p);
      void p.finally(() => pending.delete(p));
    },

    async *events(id, afterSeq, signal) {
      const entry = tasks.get(id);
      if (!entry) throw new GatewayError("not_found", `task ${id} is not known to this runner`);
      let next = Number(afterSeq);
      for (;;) {
        while (next < entry.events.length) {
          const ev = entry.events[next++];
          if (ev) yield ev;
        }
        if (entry.done || signal.aborted) return;
        await new Promise<void>((resolve) => {
          const wake = () => {
            signal.removeEventListener("abort", wake);
            resolve();
          };
          entry.wake.add(wake);
          signal.addEventListener("abort", wake, { once: true });
        });
      }
    },

    cancel(id) {
      const entry = tasks.get(id);
      if (!entry) {
        // Its Execute may still be on the way: make sure it never starts.
        if (!accepted.has(id)) {
          cancelledEarly.add(id);
          const timer = setTimeout(() => cancelledEarly.delete(id), options.retentionMs);
          timer.unref();
        }
        return false;
      }
      if (entry.done) return false;
      entry.cancelled = true;
      entry.process?.cancel();
      return true;
    },

    release(id) {
      const entry = tasks.get(id);
      if (!entry?.done) return false;
      drop(entry);
      return true;
    },

    retainedBytes() {
      return retained;
    },

    has(id) {
      return tasks.has(id);
    },

    seen(id) {
      return accepted.has(id);
    },

    running() {
      return running;
    },

    async stopAll() {
      for (const entry of tasks.values()) {
        if (!entry.done) {
          entry.cancelled = true;
          entry.process?.cancel();
        }
      }
      await Promise.allSettled([...pending]);
    },
  };
}
