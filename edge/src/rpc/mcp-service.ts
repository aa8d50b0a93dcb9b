import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { applyObligations, type Decision } from "@mcp-gateway/common/policy";
import { endSpan, startSpan, type Tracer } from "@mcp-gateway/common/tracing";
import { VERSION } from "@mcp-gateway/common/version";
import {
  FileType,
  type McpService,
  NetworkMode,
  OutputKind,
  type StreamTaskOutputResponseSchema,
  type TaskInfo,
  TaskStatus,
} from "@mcp-gateway/proto/mcp";
import type { EdgeConfig } from "../config.js";
import { type Pipeline, redactEnv } from "../pipeline/authorize.js";
import { principalOf, type RequestContext, requestContext } from "../pipeline/context.js";
import type { RunnerPool } from "../runners/pool.js";
import type { TaskRecord, TaskState, TaskStore } from "../store/types.js";
import type { TaskService } from "../tasks/task-service.js";
import { authorizationOf } from "../tasks/task-service.js";
import * as v from "./validate.js";

/** Dependencies of the McpService handlers. */
export interface McpServiceDeps {
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

function networkOf(mode: NetworkMode): "unspecified" | "none" | "host" {
  if (mode === NetworkMode.NONE) return "none";
  if (mode === NetworkMode.HOST) return "host";
  return "unspecified";
}

function ts(ms: number | null) {
  return ms === null ? undefined : timestampFromMs(ms);
}

/**
 * The McpService handlers. Each one validates its input, then goes through
 * the pipeline (decide → audit) before it acts; authentication already ran
 * in the interceptor.
 */
export function createMcpService(deps: McpServiceDeps): ServiceImpl<typeof McpService> {
  const { config, pipeline, store, tasks, runners, tracer } = deps;

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

  async function taskInfo(id: string): Promise<TaskInfo> {
    const task = await store.getTask(id);
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
      const out: Record<"stdout" | "stderr", Uint8Array[]> = { stdout: [], stderr: [] };
      for (let after = 0; ; ) {
        const chunks = await store.readOutput(id, after, 1024);
        for (const c of chunks) {
          if (c.kind !== "event") out[c.kind].push(c.data);
          after = c.seq;
        }
        if (chunks.length < 1024) break;
      }
      const r = task.result;
      info.result = {
        $typeName: "mcp.TaskResult",
        exitCode: r.exitCode,
        stdout: decoder.decode(Buffer.concat(out.stdout)),
        stderr: decoder.decode(Buffer.concat(out.stderr)),
        stdoutTruncated: r.stdoutTruncated,
        stderrTruncated: r.stderrTruncated,
        usage: {
          $typeName: "mcp.ResourceUsage",
          userCpuMs: BigInt(r.userCpuMs),
          systemCpuMs: BigInt(r.systemCpuMs),
          maxRssKb: BigInt(r.maxRssKb),
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

  return {
    async health() {
      return {
        status: deps.status(),
        version: VERSION,
        uptimeSeconds: BigInt(Math.floor((Date.now() - deps.startedAt) / 1000)),
      };
    },

    async executeCommand(req, ctx) {
      const rc = requestContext(ctx);
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
      const l = req.sandbox?.limits;
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
          },
          metadata,
          taskId: id,
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
      return { taskId: id, status: TaskStatus.QUEUED, createdAt: timestampFromMs(now) };
    },

    async getTaskStatus(req, ctx) {
      const task = await authorizeOnTask(requestContext(ctx), req.taskId, "get_task");
      return { task: await taskInfo(task.id) };
    },

    async *streamTaskOutput(req, ctx) {
      const task = await authorizeOnTask(requestContext(ctx), req.taskId, "stream_task");
      for await (const item of tasks.watch(task.id, ctx.signal)) {
        if (item.type === "chunk") {
          const c = item.chunk;
          const msg: MessageInitShape<typeof StreamTaskOutputResponseSchema> = {
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
    },

    async cancelTask(req, ctx) {
      const task = await authorizeOnTask(requestContext(ctx), req.taskId, "cancel_task");
      const state = await tasks.cancel(task);
      return { taskId: task.id, status: STATUS_OF[state] };
    },

    async readFile(req, ctx) {
      const f = await authorizeFile(
        requestContext(ctx),
        "read_file",
        "read",
        req.workspace,
        req.path,
        {},
      );
      const res = await f.runner.client.readFile({
        workspace: f.workspace,
        path: f.path,
        authorization: f.authorization,
      });
      return { content: res.content, size: res.size };
    },

    async writeFile(req, ctx) {
      const f = await authorizeFile(
        requestContext(ctx),
        "write_file",
        "write",
        req.workspace,
        req.path,
        {
          bytes: req.content.byteLength,
          createParents: req.createParents,
          mode: req.mode,
        },
      );
      const res = await f.runner.client.writeFile({
        workspace: f.workspace,
        path: f.path,
        content: req.content,
        createParents: req.createParents,
        mode: req.mode,
        authorization: f.authorization,
      });
      return { bytesWritten: res.bytesWritten };
    },

    async deleteFile(req, ctx) {
      const f = await authorizeFile(
        requestContext(ctx),
        "delete_file",
        "delete",
        req.workspace,
        req.path,
        {
          recursive: req.recursive,
        },
      );
      await f.runner.client.deleteFile({
        workspace: f.workspace,
        path: f.path,
        recursive: req.recursive,
        authorization: f.authorization,
      });
      return {};
    },

    async listAuditEvents(req, ctx) {
      const rc = requestContext(ctx);
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
      const limit = req.pageSize === 0 ? 100 : req.pageSize;
      const records = await store.listAudit({
        afterSeq: Number(req.afterSeq),
        tenant: principal.tenant,
        limit,
        ...(req.principal ? { principal: req.principal } : {}),
        ...(req.operation ? { operation: req.operation } : {}),
        ...(req.decision ? { decision: req.decision as "allow" | "deny" | "none" } : {}),
        ...(req.since ? { sinceMs: Number(timestampMs(req.since)) } : {}),
      });
      return {
        events: records.map((r) => ({
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
          paramsJson: JSON.stringify(r.params),
          detailsJson: JSON.stringify(r.details),
          hash: r.hash,
          prevHash: r.prevHash,
        })),
        nextAfterSeq: records.length === limit ? BigInt(records[records.length - 1]?.seq ?? 0) : 0n,
      };
    },

    async listDirectory(req, ctx) {
      const f = await authorizeFile(
        requestContext(ctx),
        "list_directory",
        "list",
        req.workspace,
        req.path,
        {},
      );
      const res = await f.runner.client.listDirectory({
        workspace: f.workspace,
        path: f.path,
        authorization: f.authorization,
      });
      return {
        entries: res.entries.map((e) => ({
          name: e.name,
          type: e.type in FileType ? e.type : FileType.OTHER,
          size: e.size,
          mode: e.mode,
          modifiedAt: e.modifiedAt,
        })),
      };
    },
  };
}
