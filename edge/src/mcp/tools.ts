import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  CancelTaskRequestSchema,
  DeleteFileRequestSchema,
  ExecuteCommandRequestSchema,
  FileType,
  GetTaskStatusRequestSchema,
  ListDirectoryRequestSchema,
  NetworkMode,
  ReadFileRequestSchema,
  type TaskInfo,
  TaskStatus,
  WriteFileRequestSchema,
} from "@mcp-gateway/proto/mcp";
import { z } from "zod";
import type { Operations, RunHooks } from "../operations/operations.js";
import type { RequestContext } from "../pipeline/context.js";

/** What a tool call may use besides its arguments. */
export interface ToolCallContext {
  /** Aborted when the client cancels the call (`notifications/cancelled`) or goes away. */
  signal: AbortSignal;
  /** Output as it arrives, for `notifications/progress` (only when the client asked for progress). */
  onOutput?: RunHooks["onOutput"];
  /** Called with the id of a task the call started, so a cancellation can reach it. */
  onTask?: (taskId: string) => void;
  /** Largest output per stream returned in a result, bytes. */
  maxResultBytes: number;
}

/** MCP tool annotations (hints for clients; the policy decides, not these). */
interface Annotations {
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

/** One gateway tool: its MCP definition, the policy operation it performs, and its translation. */
export interface GatewayTool {
  name: string;
  title: string;
  description: string;
  /** The policy operation the tool performs (tools/list shows the tool only when the roles permit it). */
  operation: string;
  input: z.ZodType;
  output: z.ZodType;
  annotations: Annotations;
  /** Translates validated arguments to the operation and its result to structured content. */
  call(
    ops: Operations,
    rc: RequestContext,
    args: never,
    ctx: ToolCallContext,
  ): Promise<Record<string, unknown>>;
}

const workspace = z
  .string()
  .max(64)
  .optional()
  .describe('Workspace name (letters, digits, ".", "_", "-"); default "default".');
const path = z.string().min(1).max(4096).describe("Path relative to the workspace root.");
const taskId = z
  .string()
  .min(1)
  .max(64)
  .describe("Task id (task-<uuid>), as returned by start_command or run_command.");

const commandInput = z.object({
  command: z
    .string()
    .min(1)
    .max(4096)
    .describe("Program to run: a name looked up on the sandbox PATH, or an absolute path."),
  args: z.array(z.string()).max(1024).optional().describe("Arguments, passed as-is (no shell)."),
  cwd: z
    .string()
    .max(4096)
    .optional()
    .describe("Working directory relative to the workspace root."),
  env: z.record(z.string(), z.string()).optional().describe("Extra environment variables."),
  timeout_seconds: z
    .number()
    .int()
    .min(1)
    .max(86_400)
    .optional()
    .describe("Wall-clock deadline in seconds (default: the gateway's)."),
  workspace,
  network: z
    .enum(["none", "host", "restricted"])
    .optional()
    .describe(
      'Network of the sandbox: "none" (default), "host" where policy allows it, or "restricted": only the hosts of the policy\'s egress allowlist, through the runner\'s filtering proxy (HTTP_PROXY/HTTPS_PROXY are set).',
    ),
  allow_hosts: z
    .array(z.string().max(300))
    .max(64)
    .optional()
    .describe(
      'With network "restricted": narrows the policy\'s allowlist to these entries ("host", "host:port", "*.example.com", an IP literal or a CIDR range).',
    ),
  memory_bytes: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("Memory limit, bytes (policy may lower it)."),
  max_processes: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("Process limit (policy may lower it)."),
  max_output_bytes: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("Cap on each output stream, bytes (policy may lower it)."),
});
type CommandInput = z.infer<typeof commandInput>;

const status = z
  .enum(["created", "queued", "running", "completed", "failed", "cancelled", "timed_out"])
  .describe("Task state.");

const runOutput = z.object({
  task_id: z.string(),
  status,
  exit_code: z.number().int().describe("Exit code; -1 when the process did not exit on its own."),
  signal: z.string().describe("Signal that killed the process, if any."),
  stdout: z.string(),
  stderr: z.string(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  duration_ms: z.number().int(),
  status_message: z.string().describe("Why the task failed, was cancelled or timed out."),
});

const taskOutput = z.object({
  task_id: z.string(),
  status,
  command: z.string(),
  args: z.array(z.string()),
  workspace: z.string(),
  owner: z.string(),
  runner_id: z.string(),
  status_message: z.string(),
  created_at: z.string().nullable(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  exit_code: z.number().int().nullable().describe("Null until the task has finished."),
  signal: z.string(),
  duration_ms: z.number().int().nullable(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
});

function toRequest(a: CommandInput) {
  const network =
    a.network === "host"
      ? NetworkMode.HOST
      : a.network === "none"
        ? NetworkMode.NONE
        : a.network === "restricted"
          ? NetworkMode.RESTRICTED
          : NetworkMode.UNSPECIFIED;
  return create(ExecuteCommandRequestSchema, {
    command: a.command,
    args: a.args ?? [],
    env: a.env ?? {},
    cwd: a.cwd ?? "",
    timeout: a.timeout_seconds ?? 0,
    workspace: a.workspace ?? "",
    sandbox: {
      network,
      allowHosts: a.allow_hosts ?? [],
      limits: {
        memoryBytes: BigInt(a.memory_bytes ?? 0),
        maxProcesses: a.max_processes ?? 0,
        maxOutputBytes: BigInt(a.max_output_bytes ?? 0),
      },
    },
  });
}

const STATUS_NAME: Readonly<Record<number, z.infer<typeof status>>> = {
  [TaskStatus.CREATED]: "created",
  [TaskStatus.QUEUED]: "queued",
  [TaskStatus.RUNNING]: "running",
  [TaskStatus.COMPLETED]: "completed",
  [TaskStatus.FAILED]: "failed",
  [TaskStatus.CANCELLED]: "cancelled",
  [TaskStatus.TIMED_OUT]: "timed_out",
};

function iso(t: Timestamp | undefined): string | null {
  return t ? timestampDate(t).toISOString() : null;
}

function taskJson(t: TaskInfo): z.infer<typeof taskOutput> {
  return {
    task_id: t.taskId,
    status: STATUS_NAME[t.status] ?? "created",
    command: t.command,
    args: t.args,
    workspace: t.workspace,
    owner: t.owner,
    runner_id: t.runnerId,
    status_message: t.statusMessage,
    created_at: iso(t.createdAt),
    started_at: iso(t.startedAt),
    finished_at: iso(t.finishedAt),
    exit_code: t.result ? t.result.exitCode : null,
    signal: t.result?.signal ?? "",
    duration_ms: t.result ? Number(t.result.executionTimeMs) : null,
    stdout_truncated: t.result?.stdoutTruncated ?? false,
    stderr_truncated: t.result?.stderrTruncated ?? false,
  };
}

const FILE_TYPE: Readonly<Record<number, string>> = {
  [FileType.FILE]: "file",
  [FileType.DIRECTORY]: "directory",
  [FileType.SYMLINK]: "symlink",
};

const readOnly: Annotations = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};
/** Starts a program in the sandbox: may change the workspace, may reach the network if allowed. */
const runs: Annotations = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: false,
  openWorldHint: true,
};
/** Changes or removes something; doing it again changes nothing more. */
const destroysIdempotently: Annotations = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: true,
  openWorldHint: false,
};

function tool<I extends z.ZodType, O extends z.ZodType>(def: {
  name: string;
  title: string;
  description: string;
  operation: string;
  input: I;
  output: O;
  annotations: Annotations;
  call: (
    ops: Operations,
    rc: RequestContext,
    args: z.infer<I>,
    ctx: ToolCallContext,
  ) => Promise<z.infer<O>>;
}): GatewayTool {
  return def as unknown as GatewayTool;
}

/**
 * The gateway's own MCP tools, one per operation. Each only translates: MCP
 * arguments to the operation's request, the operation's result to
 * `structuredContent` matching `outputSchema`.
 */
export const GATEWAY_TOOLS: readonly GatewayTool[] = [
  tool({
    name: "run_command",
    title: "Run a command in the sandbox",
    description:
      "Runs a program in a kernel sandbox (bubblewrap + seccomp, no network unless policy allows it) on a runner host and returns its output and exit code when it ends. With a progress token, output is streamed as progress notifications; cancelling the request cancels the task. Every call is decided by policy and audited.",
    operation: "execute",
    input: commandInput,
    output: runOutput,
    annotations: runs,
    async call(ops, rc, a, ctx) {
      const hooks: RunHooks = { maxBytes: ctx.maxResultBytes };
      if (ctx.onTask) hooks.onAccepted = ctx.onTask;
      if (ctx.onOutput) hooks.onOutput = ctx.onOutput;
      const r = await ops.runCommand(rc, toRequest(a), ctx.signal, hooks);
      return {
        task_id: r.taskId,
        status: r.status,
        exit_code: r.exitCode,
        signal: r.signal,
        stdout: r.stdout,
        stderr: r.stderr,
        stdout_truncated: r.stdoutTruncated,
        stderr_truncated: r.stderrTruncated,
        duration_ms: r.durationMs,
        status_message: r.statusMessage,
      };
    },
  }),
  tool({
    name: "start_command",
    title: "Start a command in the background",
    description:
      "Starts a program in the sandbox and returns its task id at once; follow it with get_task and get_task_output, stop it with cancel_task.",
    operation: "execute",
    input: commandInput,
    output: z.object({ task_id: z.string(), status }),
    annotations: runs,
    async call(ops, rc, a) {
      const r = await ops.executeCommand(rc, toRequest(a));
      return { task_id: r.taskId, status: STATUS_NAME[r.status] ?? "queued" };
    },
  }),
  tool({
    name: "get_task",
    title: "Get a task's status",
    description:
      "The state of a task, its command, timestamps and, once it ended, exit code and duration.",
    operation: "get_task",
    input: z.object({ task_id: taskId }),
    output: taskOutput,
    annotations: readOnly,
    async call(ops, rc, a) {
      const { task } = await ops.getTaskStatus(
        rc,
        create(GetTaskStatusRequestSchema, { taskId: a.task_id }),
      );
      return taskJson(task);
    },
  }),
  tool({
    name: "get_task_output",
    title: "Read a task's output",
    description:
      "Output a task has produced so far, from a position (after_seq; 0 = the start). Call again with next_seq to read on; complete is true once the task ended and everything was read.",
    operation: "stream_task",
    input: z.object({
      task_id: taskId,
      after_seq: z
        .number()
        .int()
        .min(0)
        .optional()
        .describe("Read output stored after this position."),
      max_bytes: z
        .number()
        .int()
        .min(1)
        .max(8 * 1024 * 1024)
        .optional()
        .describe("Largest output returned per stream (default 1 MiB)."),
    }),
    output: z.object({
      task_id: z.string(),
      status,
      stdout: z.string(),
      stderr: z.string(),
      next_seq: z.number().int(),
      complete: z.boolean(),
    }),
    annotations: readOnly,
    async call(ops, rc, a, ctx) {
      const r = await ops.readTaskOutput(rc, {
        taskId: a.task_id,
        afterSeq: a.after_seq ?? 0,
        maxBytes: Math.min(a.max_bytes ?? ctx.maxResultBytes, ctx.maxResultBytes),
      });
      return {
        task_id: a.task_id,
        status: r.status,
        stdout: r.stdout,
        stderr: r.stderr,
        next_seq: r.nextSeq,
        complete: r.complete,
      };
    },
  }),
  tool({
    name: "cancel_task",
    title: "Cancel a task",
    description:
      "Kills a queued or running task (its whole process tree). Cancelling an ended task changes nothing.",
    operation: "cancel_task",
    input: z.object({ task_id: taskId }),
    output: z.object({ task_id: z.string(), status }),
    annotations: destroysIdempotently,
    async call(ops, rc, a) {
      const r = await ops.cancelTask(rc, create(CancelTaskRequestSchema, { taskId: a.task_id }));
      return { task_id: r.taskId, status: STATUS_NAME[r.status] ?? "cancelled" };
    },
  }),
  tool({
    name: "read_file",
    title: "Read a workspace file",
    description:
      'Reads a file in a workspace. Text that is valid UTF-8 comes back as is (encoding "utf8"), anything else base64-encoded (encoding "base64").',
    operation: "read_file",
    input: z.object({ path, workspace }),
    output: z.object({
      path: z.string(),
      size: z.number().int(),
      encoding: z.enum(["utf8", "base64"]),
      content: z.string(),
    }),
    annotations: readOnly,
    async call(ops, rc, a) {
      const r = await ops.readFile(
        rc,
        create(ReadFileRequestSchema, { path: a.path, workspace: a.workspace ?? "" }),
      );
      const text = utf8(r.content);
      return {
        path: a.path,
        size: Number(r.size),
        encoding: text === undefined ? ("base64" as const) : ("utf8" as const),
        content: text ?? Buffer.from(r.content).toString("base64"),
      };
    },
  }),
  tool({
    name: "write_file",
    title: "Write a workspace file",
    description: "Creates or replaces a file in a workspace.",
    operation: "write_file",
    input: z.object({
      path,
      content: z.string().describe("File content: text, or base64 with encoding base64."),
      encoding: z
        .enum(["utf8", "base64"])
        .optional()
        .describe('How content is encoded (default "utf8").'),
      workspace,
      create_parents: z.boolean().optional().describe("Create missing parent directories."),
      mode: z
        .number()
        .int()
        .min(0)
        .max(0o777)
        .optional()
        .describe("Permission bits, e.g. 420 (0644)."),
    }),
    output: z.object({ path: z.string(), bytes_written: z.number().int() }),
    annotations: destroysIdempotently,
    async call(ops, rc, a) {
      const content =
        a.encoding === "base64"
          ? new Uint8Array(Buffer.from(a.content, "base64"))
          : new TextEncoder().encode(a.content);
      const r = await ops.writeFile(
        rc,
        create(WriteFileRequestSchema, {
          path: a.path,
          content,
          workspace: a.workspace ?? "",
          createParents: a.create_parents ?? false,
          mode: a.mode ?? 0,
        }),
      );
      return { path: a.path, bytes_written: Number(r.bytesWritten) };
    },
  }),
  tool({
    name: "delete_file",
    title: "Delete a workspace file",
    description: "Removes a file, or a directory with recursive, in a workspace.",
    operation: "delete_file",
    input: z.object({
      path,
      workspace,
      recursive: z.boolean().optional().describe("Remove a directory and everything in it."),
    }),
    output: z.object({ path: z.string(), deleted: z.boolean() }),
    annotations: destroysIdempotently,
    async call(ops, rc, a) {
      await ops.deleteFile(
        rc,
        create(DeleteFileRequestSchema, {
          path: a.path,
          workspace: a.workspace ?? "",
          recursive: a.recursive ?? false,
        }),
      );
      return { path: a.path, deleted: true };
    },
  }),
  tool({
    name: "list_directory",
    title: "List a workspace directory",
    description: "Lists a directory in a workspace (the root when path is empty).",
    operation: "list_directory",
    input: z.object({
      path: z.string().max(4096).optional().describe("Directory relative to the workspace root."),
      workspace,
    }),
    output: z.object({
      path: z.string(),
      entries: z.array(
        z.object({
          name: z.string(),
          type: z.string(),
          size: z.number().int(),
          mode: z.number().int(),
          modified_at: z.string().nullable(),
        }),
      ),
    }),
    annotations: readOnly,
    async call(ops, rc, a) {
      const r = await ops.listDirectory(
        rc,
        create(ListDirectoryRequestSchema, { path: a.path ?? "", workspace: a.workspace ?? "" }),
      );
      return {
        path: a.path ?? "",
        entries: r.entries.map((e) => ({
          name: e.name,
          type: FILE_TYPE[e.type] ?? "other",
          size: Number(e.size),
          mode: e.mode,
          modified_at: iso(e.modifiedAt),
        })),
      };
    },
  }),
];

const strictDecoder = new TextDecoder("utf-8", { fatal: true });

function utf8(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A tool's MCP definition (what `tools/list` returns), computed once. */
export interface ToolDefinition {
  name: string;
  title: string;
  description: string;
  inputSchema: Record<string, unknown>;
  outputSchema: Record<string, unknown>;
  annotations: Annotations & { title: string };
}

/** The JSON Schema of a zod schema, as MCP wants it (no `$schema` key: 2020-12 is the default). */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io }) as Record<string, unknown>;
  return rest;
}

/** The MCP definitions of {@link GATEWAY_TOOLS}, by name. */
export function toolDefinitions(
  tools: readonly GatewayTool[],
): ReadonlyMap<string, ToolDefinition> {
  return new Map(
    tools.map((t) => [
      t.name,
      {
        name: t.name,
        title: t.title,
        description: t.description,
        inputSchema: jsonSchema(t.input, "input"),
        outputSchema: jsonSchema(t.output, "output"),
        annotations: { title: t.title, ...t.annotations },
      },
    ]),
  );
}

/**
 * The JSON of `toolDefinitions(GATEWAY_TOOLS)`, computed by the release build
 * (scripts/build/bundle.ts): the JSON Schemas of the gateway's own tools are a constant of the
 * build, and converting them from zod took ~7 ms of every edge start (issue 17).
 */
declare const __MCPG_GATEWAY_TOOL_DEFINITIONS__: string | undefined;

let gatewayDefinitions: ReadonlyMap<string, ToolDefinition> | undefined;

/** {@link toolDefinitions} of {@link GATEWAY_TOOLS}, once per process. */
export function gatewayToolDefinitions(): ReadonlyMap<string, ToolDefinition> {
  if (gatewayDefinitions === undefined) {
    const built =
      typeof __MCPG_GATEWAY_TOOL_DEFINITIONS__ === "string"
        ? (JSON.parse(__MCPG_GATEWAY_TOOL_DEFINITIONS__) as ToolDefinition[])
        : undefined;
    gatewayDefinitions = built
      ? new Map(built.map((d) => [d.name, d]))
      : toolDefinitions(GATEWAY_TOOLS);
  }
  return gatewayDefinitions;
}

/** Names the first problem of failed argument validation: "args.2: expected string". */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "arguments"}: ${i.message}`)
    .join("; ");
}
