import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseEgressList } from "@mcp-gateway/common/egress";
import { toConnectError } from "@mcp-gateway/common/errors";
import { applyObligations, type Decision } from "@mcp-gateway/common/policy";
import { endSpan, startSpan, type Tracer } from "@mcp-gateway/common/tracing";
import { VERSION } from "@mcp-gateway/common/version";
import type {
  CancelTaskRequest,
  CancelTaskResponse,
  DeleteFileRequest,
  DeleteFileResponse,
  ExecuteCommandRequest,
  ExecuteCommandResponse,
  GetTaskStatusRequest,
  HealthResponse,
  ListAuditEventsRequest,
  ListAuditEventsResponse,
  ListDirectoryRequest,
  ListDirectoryResponse,
  ReadFileRequest,
  ReadFileResponse,
  ResetWorkspaceRequest,
  ResetWorkspaceResponse,
  WriteFileRequest,
  WriteFileResponse,
} from "@mcp-gateway/proto/mcp";
import {
  CancelTaskResponseSchema,
  DeleteFileResponseSchema,
  FileType,
  ListAuditEventsResponseSchema,
  ListDirectoryResponseSchema,
  NetworkMode,
  OutputKind,
  ReadFileResponseSchema,
  ResetWorkspaceResponseSchema,
  type StreamTaskOutputResponseSchema,
  type TaskInfo,
  TaskStatus,
  WriteFileResponseSchema,
} from "@mcp-gateway/proto/mcp";
import type { EdgeConfig } from "../config.js";
import { type Pipeline, redactEnv } from "../pipeline/authorize.js";
import { principalOf, type RequestContext } from "../pipeline/context.js";
import * as v from "../rpc/validate.js";
import type { RunnerPool } from "../runners/pool.js";
import {
  type TaskRecord,
  type TaskState,
  type TaskStore,
  TERMINAL_STATES,
} from "../store/types.js";
import type { TaskService } from "../tasks/task-service.js";
import { authorizationOf } from "../tasks/task-service.js";
import { createReadBounds, type ReadBounds, readOutputTail } from "./read-bounds.js";
import { checkTaskQuota, taskQuotaOf } from "./task-quotas.js";
import {
  createUpstreamContentOperations,
  type UpstreamContentOperations,
} from "./upstream-content.js";
import {
  createUpstreamOperations,
  type UpstreamOperations,
  type UpstreamOperationsDeps,
} from "./upstream-tools.js";

/** Dependencies of the operations. */
export interface OperationsDeps extends Omit<UpstreamOperationsDeps, "pipeline" | "store"> {
  config: EdgeConfig;
  pipeline: Pipeline;
  store: TaskStore;
  tasks: TaskService;
  runners: RunnerPool;
  startedAt: number;
  tracer: Tracer;
  /** Fencing token of the active lease (active-passive; 0 otherwise), sent with file operations. */
  fencingToken: () => bigint;
  /** "ok" while serving, "draining" during shutdown. */
  status: () => string;
  /** Byte budgets and follower bounds (default: from `config.reads`). */
  readBounds?: ReadBounds;
  /** The policy bundle's data document (task quotas live there: `gateway.*.tasks`). */
  policyData: () => unknown;
}

const STATUS_OF: Readonly<Record<TaskState, TaskStatus>> = {
  created: TaskStatus.CREATED,
  queued: TaskStatus.QUEUED,
  running: TaskStatus.RUNNING,
  completed: TaskStatus.COMPLETED,
  failed: TaskStatus.FAILED,
  cancelled: TaskStatus.CANCELLED,
  timed_out: TaskStatus.TIMED_OUT,
};

const decoder = new TextDecoder("utf-8", { fatal: false });

const TERMINAL: ReadonlySet<TaskState> = new Set(["completed", "failed", "cancelled", "timed_out"]);

/** Collects output up to a byte bound; what does not fit is dropped and flagged. */
class Collector {
  private readonly parts: Uint8Array[] = [];
  private bytes = 0;
  /** True once something was dropped. */
  truncated = false;
  constructor(private readonly max: number) {}
  /** True when `n` more bytes would not fit whole. */
  full(n: number): boolean {
    return this.bytes + n > this.max;
  }
  add(data: Uint8Array): void {
    const room = this.max - this.bytes;
    if (room <= 0) {
      this.truncated ||= data.byteLength > 0;
      return;
    }
    const part = data.byteLength > room ? data.subarray(0, room) : data;
    if (part.byteLength < data.byteLength) this.truncated = true;
    this.parts.push(part);
    this.bytes += part.byteLength;
  }
  text(): string {
    return decoder.decode(Buffer.concat(this.parts));
  }
  /** Bytes collected. */
  get size(): number {
    return this.bytes;
  }
}

function networkOf(mode: NetworkMode): "unspecified" | "none" | "host" | "restricted" {
  if (mode === NetworkMode.NONE) return "none";
  if (mode === NetworkMode.HOST) return "host";
  if (mode === NetworkMode.RESTRICTED) return "restricted";
  if (mode !== NetworkMode.UNSPECIFIED) {
    throw new ConnectError(`unknown network mode ${mode}`, Code.InvalidArgument);
  }
  return "unspecified";
}

/** A request's allow_hosts, syntax-checked (InvalidArgument naming a malformed entry). */
function allowHostsOf(list: readonly string[]): string[] {
  try {
    return parseEgressList(list).map((e) => e.text);
  } catch (err) {
    throw toConnectError(err);
  }
}

function ts(ms: number | null) {
  return ms === null ? undefined : timestampFromMs(ms);
}

/** Callbacks of {@link Operations.runCommand}. */
export interface RunHooks {
  /** The task was accepted (durably stored) under this id. */
  onAccepted?: (taskId: string) => void;
  /** A piece of output as it arrives. */
  onOutput?: (kind: "stdout" | "stderr", data: Uint8Array) => void;
  /** Largest output kept per stream in the result, bytes (default 1 MiB). */
  maxBytes?: number;
}

/** The outcome of {@link Operations.runCommand}. */
export interface RunResult {
  taskId: string;
  /** Terminal state, or the state when following stopped. */
  status: TaskState;
  /** Exit code (-1 when the process did not exit on its own). */
  exitCode: number;
  /** Signal that killed the process, if any. */
  signal: string;
  stdout: string;
  stderr: string;
  /** True when the runner's output cap or `maxBytes` cut the stream. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** Wall-clock execution time in the sandbox, ms. */
  durationMs: number;
  /** Why the task failed, was cancelled or timed out ("" when it completed). */
  statusMessage: string;
}

/** A page of stored task output from {@link Operations.readTaskOutput}. */
export interface TaskOutputPage {
  /** State of the task when read. */
  status: TaskState;
  stdout: string;
  stderr: string;
  /** Pass as `afterSeq` to read on; equal to the request's when nothing new was stored. */
  nextSeq: number;
  /** True when the task has ended and everything stored up to now was returned. */
  complete: boolean;
}

/** One message of a task's output stream, as every protocol door sends it. */
export type OutputMessage = MessageInitShape<typeof StreamTaskOutputResponseSchema>;

/**
 * Every operation of the gateway, in one place. Each validates its input,
 * goes through the pipeline (decide → audit) and then acts. Protocol doors —
 * the Connect/gRPC/gRPC-Web handlers, the MCP server — only translate their
 * wire shapes to these functions and their errors back; none of them reaches
 * the store, the runner pool or the policy engine any other way.
 * Authentication already happened: `rc` carries the principal.
 */
export interface Operations extends UpstreamOperations, UpstreamContentOperations {
  /** Liveness, version and uptime; needs no principal. */
  health(): HealthResponse;
  /** Accepts a command; the task is durable before this resolves. */
  executeCommand(rc: RequestContext, req: ExecuteCommandRequest): Promise<ExecuteCommandResponse>;
  /**
   * Accepts a command and follows the task it created until it ends (one
   * decision covers both: following one's own new task is part of running it).
   * Output is collected up to `maxBytes` per stream and also handed to
   * `hooks.onOutput` as it arrives. If `signal` aborts, following stops (the
   * task keeps running; cancel it with {@link Operations.cancelTask}).
   */
  runCommand(
    rc: RequestContext,
    req: ExecuteCommandRequest,
    signal: AbortSignal,
    hooks?: RunHooks,
  ): Promise<RunResult>;
  /**
   * Stored output of a task after `afterSeq`, at most `maxBytes` (without
   * waiting for more): decided as `stream_task`.
   */
  readTaskOutput(
    rc: RequestContext,
    req: { taskId: string; afterSeq: number; maxBytes: number },
  ): Promise<TaskOutputPage>;
  /** A task's record and, once finished, its result. */
  getTaskStatus(rc: RequestContext, req: GetTaskStatusRequest): Promise<{ task: TaskInfo }>;
  /** Replays a task's output, then follows it until it ends or `signal` aborts. */
  streamTaskOutput(
    rc: RequestContext,
    req: { taskId: string },
    signal: AbortSignal,
  ): AsyncGenerator<OutputMessage>;
  /** Cancels a queued or running task. */
  cancelTask(rc: RequestContext, req: CancelTaskRequest): Promise<CancelTaskResponse>;
  readFile(rc: RequestContext, req: ReadFileRequest): Promise<ReadFileResponse>;
  writeFile(rc: RequestContext, req: WriteFileRequest): Promise<WriteFileResponse>;
  deleteFile(rc: RequestContext, req: DeleteFileRequest): Promise<DeleteFileResponse>;
  listDirectory(rc: RequestContext, req: ListDirectoryRequest): Promise<ListDirectoryResponse>;
  /** Empties a workspace and restores its root (admins; `owner` names a member's own one). */
  resetWorkspace(rc: RequestContext, req: ResetWorkspaceRequest): Promise<ResetWorkspaceResponse>;
  listAuditEvents(
    rc: RequestContext,
    req: ListAuditEventsRequest,
  ): Promise<ListAuditEventsResponse>;
}

/** Creates the operations layer. */
export function createOperations(deps: OperationsDeps): Operations {
  const { config, pipeline, store, tasks, runners, tracer } = deps;
  // Reads priced by bytes and followers bounded (issue 21, finding 5).
  const bounds =
    deps.readBounds ??
    createReadBounds({
      issuer: config.auth.issuer,
      bytesPerSecond: config.reads.bytesPerSecond,
      burstBytes: config.reads.burstBytes,
      followersPerTask: config.reads.followersPerTask,
      followersPerPrincipal: config.reads.followersPerPrincipal,
    });

  /** Loads a task and authorizes an operation on it. */
  async function authorizeOnTask(
    rc: RequestContext,
    rawId: string,
    operation: "get_task" | "stream_task" | "cancel_task",
  ): Promise<TaskRecord> {
    const id = v.taskId(rawId);
    const task = await store.getTask(id);
    if (!task) throw new ConnectError(`task ${id} not found`, Code.NotFound);
    await pipeline.authorize(
      rc,
      {
        operation,
        workspace: task.workspace,
        task: { id: task.id, owner: task.principal.sub, tenant: task.principal.tenant },
      },
      { params: { taskId: id }, taskId: id },
    );
    return task;
  }

  /**
   * The task's status as the API returns it. `loaded` is a record read before an await (the
   * decision): a finished task's record no longer changes, so it is used as is; otherwise the
   * task is read again for its latest state.
   */
  async function taskInfo(id: string, loaded?: TaskRecord): Promise<TaskInfo> {
    const task =
      loaded !== undefined && TERMINAL_STATES.has(loaded.state) ? loaded : await store.getTask(id);
    if (!task) throw new ConnectError(`task ${id} not found`, Code.NotFound);
    const info: TaskInfo = {
      $typeName: "mcp.TaskInfo",
      taskId: task.id,
      status: STATUS_OF[task.state],
      command: task.command,
      args: task.args,
      workspace: task.workspace,
      metadata: task.metadata,
      createdAt: ts(task.createdAt),
      startedAt: ts(task.startedAt),
      finishedAt: ts(task.finishedAt),
      statusMessage: task.statusMessage,
      runnerId: task.runnerId,
      owner: task.principal.sub,
    };
    if (task.result) {
      // A bounded tail of each stream, read from the end; StreamTaskOutput has the rest.
      const tail = await readOutputTail(store, id, config.reads.statusTailBytes, true);
      const r = task.result;
      info.result = {
        $typeName: "mcp.TaskResult",
        exitCode: r.exitCode,
        stdout: decoder.decode(tail.stdout),
        stderr: decoder.decode(tail.stderr),
        stdoutTruncated: r.stdoutTruncated || tail.stdoutCut,
        stderrTruncated: r.stderrTruncated || tail.stderrCut,
        usage: {
          $typeName: "mcp.ResourceUsage",
          userCpuMs: BigInt(r.userCpuMs),
          systemCpuMs: BigInt(r.systemCpuMs),
          maxRssKb: BigInt(r.maxRssKb),
          memoryPeakBytes: BigInt(r.memoryPeakBytes ?? 0),
          oomKilled: r.oomKilled ?? false,
        },
        executionTimeMs: BigInt(r.executionTimeMs),
        signal: r.signal,
      };
    }
    return info;
  }

  /** Authorizes a file operation and returns the runner and authorization to use. */
  async function authorizeFile(
    rc: RequestContext,
    operation: "read_file" | "write_file" | "delete_file" | "list_directory",
    mode: "read" | "write" | "delete" | "list",
    rawWorkspace: string,
    rawPath: string,
    params: Record<string, unknown>,
  ) {
    const workspace = v.workspaceName(rawWorkspace);
    // The workspace root is listed as "." so that policy always sees a non-empty path.
    const path =
      operation === "list_directory" && rawPath === ""
        ? "."
        : v.workspacePath(rawPath, "path", false);
    const decision: Decision = await pipeline.authorize(
      rc,
      { operation, workspace, file: { path, mode } },
      { params: { workspace, path, ...params } },
    );
    const runner = runners.pick(workspace);
    const authorization = authorizationOf(
      {
        principal: principalOf(rc),
        policyRevision: decision.revision,
        metadata: {},
        traceId: rc.traceId,
      },
      rc.traceparent,
      deps.fencingToken(),
    );
    return { workspace, path, runner, authorization };
  }

  async function executeCommand(
    rc: RequestContext,
    req: ExecuteCommandRequest,
  ): Promise<ExecuteCommandResponse> {
    const principal = principalOf(rc);
    v.commandLine(req.command, req.args, req.env);
    const metadata = v.metadata(req.metadata);
    const workspace = v.workspaceName(req.workspace);
    const cwd = v.workspacePath(req.cwd, "cwd", true);
    if (req.timeout > config.maxTimeoutSeconds) {
      throw new ConnectError(
        `timeout ${req.timeout}s exceeds the maximum of ${config.maxTimeoutSeconds}s`,
        Code.InvalidArgument,
      );
    }
    // Fair share: a principal or tenant at its concurrent-task quota is refused up front.
    await checkTaskQuota(store, principal, taskQuotaOf(deps.policyData(), principal.tenant));
    const l = req.sandbox?.limits;
    const allowHosts = allowHostsOf(req.sandbox?.allowHosts ?? []);
    const requested = {
      timeout_seconds: req.timeout === 0 ? config.defaultTimeoutSeconds : req.timeout,
      network: networkOf(req.sandbox?.network ?? NetworkMode.UNSPECIFIED),
      limits: {
        memory_bytes: Number(l?.memoryBytes ?? 0n),
        max_processes: l?.maxProcesses ?? 0,
        max_file_size_bytes: Number(l?.maxFileSizeBytes ?? 0n),
        max_open_files: l?.maxOpenFiles ?? 0,
        cpu_seconds: l?.cpuSeconds ?? 0,
        max_output_bytes: Number(l?.maxOutputBytes ?? 0n),
      },
    };
    const id = `task-${randomUUID()}`;
    const decision = await pipeline.authorize(
      rc,
      {
        operation: "execute",
        workspace,
        command: {
          command: req.command,
          args: req.args,
          env: req.env,
          cwd,
          timeout_seconds: requested.timeout_seconds,
        },
        network: requested.network,
        allow_hosts: allowHosts,
        sandbox: { limits: requested.limits },
      },
      {
        params: {
          command: req.command,
          args: req.args,
          env: redactEnv(req.env),
          cwd,
          workspace,
          timeout: req.timeout,
          ...(requested.network === "restricted"
            ? { network: "restricted", allow_hosts: allowHosts }
            : {}),
        },
        metadata,
        taskId: id,
        // The task's insert below syncs the record with it, before anything acts on the task.
        durable: false,
      },
    );
    const applied = applyObligations(requested, decision.obligations);
    const now = Date.now();
    const task: TaskRecord = {
      id,
      state: "queued",
      command: req.command,
      args: req.args,
      env: req.env,
      cwd,
      workspace,
      timeoutMs: applied.timeout_seconds * 1000,
      network: applied.network,
      ...(applied.network === "restricted" ? { allowHosts } : {}),
      limits: {
        memoryBytes: applied.limits.memory_bytes,
        maxProcesses: applied.limits.max_processes,
        maxFileSizeBytes: applied.limits.max_file_size_bytes,
        maxOpenFiles: applied.limits.max_open_files,
        cpuSeconds: applied.limits.cpu_seconds,
        maxOutputBytes: applied.limits.max_output_bytes,
      },
      metadata,
      principal,
      policyRevision: decision.revision,
      traceId: rc.traceId,
      traceparent: rc.traceparent,
      runnerId: "",
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      statusMessage: "",
      result: null,
    };
    const span = startSpan(tracer, "store.create_task", rc.traceContext, { "mcp.task_id": id });
    try {
      await tasks.submit(task);
    } finally {
      endSpan(span.span);
    }
    return {
      $typeName: "mcp.ExecuteCommandResponse",
      taskId: id,
      status: TaskStatus.QUEUED,
      createdAt: timestampFromMs(now),
    };
  }

  /** The output of a task as stream messages, replayed then followed. */
  async function* follow(id: string, signal: AbortSignal): AsyncGenerator<OutputMessage> {
    for await (const item of tasks.watch(id, signal)) {
      if (item.type === "chunk") {
        const c = item.chunk;
        const msg: OutputMessage = {
          seq: BigInt(c.seq),
          kind:
            c.kind === "stdout"
              ? OutputKind.STDOUT
              : c.kind === "stderr"
                ? OutputKind.STDERR
                : OutputKind.EVENT,
          time: timestampFromMs(c.time),
        };
        if (c.kind === "event") msg.message = decoder.decode(c.data);
        else msg.data = c.data;
        yield msg;
      } else {
        const t = item.task;
        yield {
          kind: OutputKind.EXIT,
          exitCode: t.result?.exitCode ?? -1,
          status: STATUS_OF[t.state],
          message: t.statusMessage,
          time: ts(t.finishedAt ?? Date.now()),
        };
      }
    }
  }

  async function runCommand(
    rc: RequestContext,
    req: ExecuteCommandRequest,
    signal: AbortSignal,
    hooks: RunHooks = {},
  ): Promise<RunResult> {
    const { taskId } = await executeCommand(rc, req);
    hooks.onAccepted?.(taskId);
    const max = hooks.maxBytes ?? 1024 * 1024;
    const out = { stdout: new Collector(max), stderr: new Collector(max) };
    let last: TaskRecord | undefined;
    for await (const item of tasks.watch(taskId, signal)) {
      if (item.type === "exit") {
        last = item.task;
        break;
      }
      const c = item.chunk;
      if (c.kind === "event") continue;
      out[c.kind].add(c.data);
      hooks.onOutput?.(c.kind, c.data);
    }
    const r = last?.result ?? null;
    return {
      taskId,
      status: last?.state ?? "running",
      exitCode: r?.exitCode ?? -1,
      signal: r?.signal ?? "",
      stdout: out.stdout.text(),
      stderr: out.stderr.text(),
      stdoutTruncated: out.stdout.truncated || (r?.stdoutTruncated ?? false),
      stderrTruncated: out.stderr.truncated || (r?.stderrTruncated ?? false),
      durationMs: r?.executionTimeMs ?? 0,
      statusMessage: last?.statusMessage ?? "",
    };
  }

  async function readTaskOutput(
    rc: RequestContext,
    req: { taskId: string; afterSeq: number; maxBytes: number },
  ): Promise<TaskOutputPage> {
    const task = await authorizeOnTask(rc, req.taskId, "stream_task");
    bounds.check(principalOf(rc));
    const out = { stdout: new Collector(req.maxBytes), stderr: new Collector(req.maxBytes) };
    let seq = req.afterSeq;
    let more = true;
    while (more) {
      const chunks = await store.readOutput(task.id, seq, 256);
      for (const c of chunks) {
        if (c.kind !== "event") {
          if (out[c.kind].full(c.data.byteLength)) {
            more = false;
            break;
          }
          out[c.kind].add(c.data);
        }
        seq = c.seq;
      }
      if (chunks.length < 256) break;
    }
    const finished = TERMINAL.has(task.state);
    bounds.spend(principalOf(rc), out.stdout.size + out.stderr.size);
    return {
      status: task.state,
      stdout: out.stdout.text(),
      stderr: out.stderr.text(),
      nextSeq: seq,
      complete: finished && more,
    };
  }

  return {
    health() {
      return {
        $typeName: "mcp.HealthResponse",
        status: deps.status(),
        version: VERSION,
        uptimeSeconds: BigInt(Math.floor((Date.now() - deps.startedAt) / 1000)),
      };
    },

    ...createUpstreamOperations(deps),
    ...createUpstreamContentOperations(deps),
    executeCommand,
    runCommand,
    readTaskOutput,

    async getTaskStatus(rc, req) {
      const task = await authorizeOnTask(rc, req.taskId, "get_task");
      bounds.check(principalOf(rc));
      const info = await taskInfo(task.id, task);
      bounds.spend(
        principalOf(rc),
        (info.result?.stdout.length ?? 0) + (info.result?.stderr.length ?? 0),
      );
      return { task: info };
    },

    async *streamTaskOutput(rc, req, signal) {
      const task = await authorizeOnTask(rc, req.taskId, "stream_task");
      const principal = principalOf(rc);
      const release = bounds.follow(principal, task.id);
      try {
        for await (const msg of follow(task.id, signal)) {
          // Paced by the byte budget: a big-output reader slows down instead of crowding others.
          await bounds.pace(principal, signal);
          bounds.spend(principal, msg.data?.byteLength ?? 0);
          yield msg;
        }
      } finally {
        release();
      }
    },

    async cancelTask(rc, req) {
      const task = await authorizeOnTask(rc, req.taskId, "cancel_task");
      const state = await tasks.cancel(task);
      return create(CancelTaskResponseSchema, { taskId: task.id, status: STATUS_OF[state] });
    },

    async readFile(rc, req) {
      bounds.check(principalOf(rc));
      const f = await authorizeFile(rc, "read_file", "read", req.workspace, req.path, {});
      const res = await f.runner.client.readFile({
        workspace: f.workspace,
        path: f.path,
        authorization: f.authorization,
      });
      bounds.spend(principalOf(rc), res.content.byteLength);
      return create(ReadFileResponseSchema, { content: res.content, size: res.size });
    },

    async writeFile(rc, req) {
      const f = await authorizeFile(rc, "write_file", "write", req.workspace, req.path, {
        bytes: req.content.byteLength,
        createParents: req.createParents,
        mode: req.mode,
      });
      const res = await f.runner.client.writeFile({
        workspace: f.workspace,
        path: f.path,
        content: req.content,
        createParents: req.createParents,
        mode: req.mode,
        authorization: f.authorization,
      });
      return create(WriteFileResponseSchema, { bytesWritten: res.bytesWritten });
    },

    async deleteFile(rc, req) {
      const f = await authorizeFile(rc, "delete_file", "delete", req.workspace, req.path, {
        recursive: req.recursive,
      });
      await f.runner.client.deleteFile({
        workspace: f.workspace,
        path: f.path,
        recursive: req.recursive,
        authorization: f.authorization,
      });
      return create(DeleteFileResponseSchema, {});
    },

    async resetWorkspace(rc, req) {
      const workspace = v.workspaceName(req.workspace);
      if (req.owner.length > 256 || req.owner.includes("\0")) {
        throw new ConnectError(
          "owner must be a subject of at most 256 bytes",
          Code.InvalidArgument,
        );
      }
      const decision: Decision = await pipeline.authorize(
        rc,
        { operation: "reset_workspace", workspace },
        { params: { workspace, owner: req.owner } },
      );
      const runner = runners.pick(workspace);
      await runner.client.resetWorkspace({
        workspace,
        owner: req.owner,
        authorization: authorizationOf(
          {
            principal: principalOf(rc),
            policyRevision: decision.revision,
            metadata: {},
            traceId: rc.traceId,
          },
          rc.traceparent,
          deps.fencingToken(),
        ),
      });
      return create(ResetWorkspaceResponseSchema, {});
    },

    async listAuditEvents(rc, req) {
      const principal = principalOf(rc);
      if (req.decision !== "" && !["allow", "deny", "none"].includes(req.decision)) {
        throw new ConnectError(
          `decision "${req.decision.slice(0, 40)}" is invalid: use allow, deny or none`,
          Code.InvalidArgument,
        );
      }
      if (req.pageSize > 1000)
        throw new ConnectError("page_size is at most 1000", Code.InvalidArgument);
      await pipeline.authorize(
        rc,
        { operation: "list_audit", workspace: "" },
        { params: { principal: req.principal, operation: req.operation, decision: req.decision } },
      );
      bounds.check(principal);
      // Server maximum per page, and a response-size cap: a page ends early rather than grow.
      const limit = Math.min(req.pageSize === 0 ? 100 : req.pageSize, config.reads.auditPageMax);
      const records = await store.listAudit({
        afterSeq: Number(req.afterSeq),
        tenant: principal.tenant,
        limit,
        ...(req.principal ? { principal: req.principal } : {}),
        ...(req.operation ? { operation: req.operation } : {}),
        ...(req.decision ? { decision: req.decision as "allow" | "deny" | "none" } : {}),
        ...(req.since ? { sinceMs: Number(timestampMs(req.since)) } : {}),
      });
      const events = [];
      let bytes = 0;
      for (const r of records) {
        const paramsJson = JSON.stringify(r.params);
        const detailsJson = JSON.stringify(r.details);
        const size = paramsJson.length + detailsJson.length + 512;
        if (events.length > 0 && bytes + size > config.reads.auditResponseMaxBytes) break;
        bytes += size;
        events.push({ r, paramsJson, detailsJson });
      }
      bounds.spend(principal, bytes);
      const more = events.length < records.length || records.length === limit;
      return create(ListAuditEventsResponseSchema, {
        events: events.map(({ r, paramsJson, detailsJson }) => ({
          seq: BigInt(r.seq),
          time: timestampFromMs(r.time),
          principal: r.principal?.sub ?? "",
          tenant: r.principal?.tenant ?? "",
          operation: r.operation,
          decision: r.decision,
          reasons: r.reasons,
          policyRevision: r.policyRevision,
          taskId: r.taskId,
          runnerId: r.runnerId,
          outcome: r.outcome,
          traceId: r.traceId,
          paramsJson,
          detailsJson,
          hash: r.hash,
          prevHash: r.prevHash,
        })),
        nextAfterSeq: more ? BigInt(events[events.length - 1]?.r.seq ?? 0) : 0n,
      });
    },

    async listDirectory(rc, req) {
      const f = await authorizeFile(rc, "list_directory", "list", req.workspace, req.path, {});
      const res = await f.runner.client.listDirectory({
        workspace: f.workspace,
        path: f.path,
        authorization: f.authorization,
      });
      return create(ListDirectoryResponseSchema, {
        entries: res.entries.map((e) => ({
          name: e.name,
          type: e.type in FileType ? e.type : FileType.OTHER,
          size: e.size,
          mode: e.mode,
          ...(e.modifiedAt ? { modifiedAt: e.modifiedAt } : {}),
        })),
        ...(res.usage
          ? {
              usage: {
                bytesUsed: res.usage.bytesUsed,
                bytesLimit: res.usage.bytesLimit,
                inodesUsed: res.usage.inodesUsed,
                inodesLimit: res.usage.inodesLimit,
              },
            }
          : {}),
      });
    },
  };
}
