import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMcpClient, type McpClient } from "@mcp-gateway/client";
import { DEV_AUDIENCE, DEV_ISSUER, mintDevToken } from "@mcp-gateway/edge/dev-keys";
import { FileType, NetworkMode, OutputKind, TaskStatus } from "@mcp-gateway/proto/mcp";
import { parse, UsageError } from "../args.js";
import { defaultDataDir } from "../paths.js";
import { createTaskWriter } from "./task-output.js";

/** Flags every client command takes. */
export const COMMON = {
  url: { type: "string" },
  token: { type: "string" },
  protocol: { type: "string" },
  json: { type: "boolean" },
  workspace: { type: "string", short: "w" },
} as const;

/** Flags every client command takes, parsed. */
export interface Common {
  url?: string | undefined;
  token?: string | undefined;
  protocol?: string | undefined;
  json?: boolean | undefined;
  workspace?: string | undefined;
}

/**
 * The token to send: --token, $MCP_GATEWAY_TOKEN, or — for a local dev
 * gateway whose signing key this user can read — a fresh 10-minute dev token.
 */
export async function resolveToken(flag: string | undefined): Promise<string | undefined> {
  const token = flag ?? process.env.MCP_GATEWAY_TOKEN;
  if (token) return token;
  const authDir = join(defaultDataDir(), "auth");
  if (!existsSync(authDir)) return undefined;
  try {
    return await mintDevToken(authDir, {
      sub: process.env.USER ?? "dev-user",
      roles: ["developer"],
      ttlSeconds: 600,
      issuer: DEV_ISSUER,
      audience: DEV_AUDIENCE,
    });
  } catch {
    return undefined;
  }
}

export async function clientFrom(c: Common): Promise<McpClient> {
  const protocol = c.protocol ?? "connect";
  if (protocol !== "connect" && protocol !== "grpc" && protocol !== "grpc-web") {
    throw new UsageError(`--protocol ${protocol}: use connect, grpc or grpc-web`);
  }
  const token = await resolveToken(c.token);
  return createMcpClient({
    baseUrl: c.url ?? process.env.MCP_GATEWAY_URL ?? "http://127.0.0.1:8081",
    protocol,
    ...(token ? { token } : {}),
  });
}

const STATUS_NAME = (s: TaskStatus) => (TaskStatus[s] ?? "UNSPECIFIED").toLowerCase();

/** Exit codes for tasks that did not complete: like timeout(1) and shells. */
export function exitCodeOf(status: TaskStatus, exitCode: number): number {
  switch (status) {
    case TaskStatus.COMPLETED:
      return exitCode >= 0 && exitCode <= 255 ? exitCode : 1;
    case TaskStatus.TIMED_OUT:
      return 124;
    case TaskStatus.CANCELLED:
      return 130;
    default:
      return 125;
  }
}

/** A spinner on stderr while nothing has arrived yet (only on a terminal). */
function progress(label: string): { stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let i = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    const s = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`\r${frames[i++ % frames.length]} ${label} ${s}s`);
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      process.stderr.write("\r\x1b[K");
    },
  };
}

/** Streams a task's output to stdout/stderr; resolves to the CLI exit code. */
async function follow(client: McpClient, taskId: string, json: boolean): Promise<number> {
  const spinner = json ? { stop() {} } : progress(`waiting for ${taskId}`);
  const out = createTaskWriter({
    stdout: process.stdout,
    stderr: process.stderr,
    endLine: process.stderr.isTTY === true,
  });
  let stopped = false;
  const stop = () => {
    if (!stopped) spinner.stop();
    stopped = true;
  };
  try {
    for await (const chunk of client.streamTaskOutput({ taskId })) {
      stop();
      if (json) {
        process.stdout.write(
          `${JSON.stringify({
            seq: Number(chunk.seq),
            kind: (OutputKind[chunk.kind] ?? "").toLowerCase(),
            data:
              chunk.kind === OutputKind.STDOUT || chunk.kind === OutputKind.STDERR
                ? Buffer.from(chunk.data).toString("utf8")
                : undefined,
            status: chunk.kind === OutputKind.EXIT ? STATUS_NAME(chunk.status) : undefined,
            exit_code: chunk.kind === OutputKind.EXIT ? chunk.exitCode : undefined,
            message: chunk.message || undefined,
          })}\n`,
        );
      } else if (chunk.kind === OutputKind.STDOUT) {
        out.stdout(chunk.data);
      } else if (chunk.kind === OutputKind.STDERR) {
        out.stderr(chunk.data);
      } else if (chunk.kind === OutputKind.EVENT) {
        out.note(`[mcp] ${chunk.message}`);
      }
      if (chunk.kind === OutputKind.EXIT) {
        if (!json && chunk.status !== TaskStatus.COMPLETED) {
          out.note(
            `[mcp] task ${STATUS_NAME(chunk.status)}${chunk.message ? `: ${chunk.message}` : ""}`,
          );
        }
        out.end();
        return exitCodeOf(chunk.status, chunk.exitCode);
      }
    }
  } finally {
    stop();
  }
  throw new ConnectError("the stream ended before the task finished", Code.Unavailable);
}

function parseEnv(list: string[] | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list ?? []) {
    const i = item.indexOf("=");
    if (i <= 0) throw new UsageError(`--env ${item}: expected NAME=value`);
    env[item.slice(0, i)] = item.slice(i + 1);
  }
  return env;
}

/** Parses "512M", "1G", "64k" or plain bytes (binary units) for --memory. */
export function parseSize(flag: string, text: string): bigint {
  const m = /^(\d+)([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${flag} ${text}: a size such as 512M, 1G or 1048576`);
  const unit = { "": 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n }[
    (m[2] ?? "").toLowerCase() as "" | "k" | "m" | "g" | "t"
  ];
  return BigInt(m[1] ?? "0") * unit;
}

/**
 * `mcp-gateway exec [--timeout s] [--cwd d] [--env K=V]… [--network none|host|restricted]
 * [--allow-host h]… [--memory size] [--pids n] [--detach] -- cmd args…`
 *
 * @example
 * // Only allowed.test, through the runner's egress proxy (policy must allow it):
 * await execCommand(["--network", "restricted", "--allow-host", "allowed.test", "--", "curl", "https://allowed.test"]);
 */
export async function execCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...COMMON,
    timeout: { type: "string" },
    cwd: { type: "string" },
    env: { type: "string", multiple: true, short: "e" },
    network: { type: "string" },
    "allow-host": { type: "string", multiple: true },
    memory: { type: "string" },
    pids: { type: "string" },
    detach: { type: "boolean", short: "d" },
  });
  const [command, ...args] = positionals;
  if (!command) throw new UsageError("exec needs a command: mcp-gateway exec -- ls -la");
  const timeout = values.timeout === undefined ? 0 : Number(values.timeout);
  if (!Number.isInteger(timeout) || timeout < 0)
    throw new UsageError(`--timeout ${values.timeout}: whole seconds`);
  const networks: Record<string, NetworkMode> = {
    none: NetworkMode.NONE,
    host: NetworkMode.HOST,
    restricted: NetworkMode.RESTRICTED,
  };
  const network = values.network === undefined ? NetworkMode.UNSPECIFIED : networks[values.network];
  if (network === undefined)
    throw new UsageError(`--network ${values.network}: use none, host or restricted`);
  const allowHosts = values["allow-host"] ?? [];
  if (allowHosts.length > 0 && network !== NetworkMode.RESTRICTED)
    throw new UsageError("--allow-host needs --network restricted");
  // Memory of the whole task (its cgroup) and its processes; policy may only lower them.
  const memoryBytes = values.memory === undefined ? 0n : parseSize("--memory", values.memory);
  const maxProcesses = values.pids === undefined ? 0 : Number(values.pids);
  if (!Number.isInteger(maxProcesses) || maxProcesses < 0 || maxProcesses > 2 ** 31)
    throw new UsageError(`--pids ${values.pids}: a whole number of processes`);
  const client = await clientFrom(values);
  const res = await client.executeCommand({
    command,
    args,
    env: parseEnv(values.env),
    cwd: values.cwd ?? "",
    timeout,
    workspace: values.workspace ?? "",
    sandbox: { network, allowHosts, limits: { memoryBytes, maxProcesses } },
  });
  if (values.detach) {
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ task_id: res.taskId, status: STATUS_NAME(res.status) })}\n`
        : `${res.taskId}\n`,
    );
    return 0;
  }
  if (!values.json) process.stderr.write(`[mcp] ${res.taskId}\n`);
  return follow(client, res.taskId, values.json ?? false);
}

/** `mcp-gateway status <task-id>` */
export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON);
  const taskId = positionals[0];
  if (!taskId) throw new UsageError("status needs a task id");
  const { task } = await (await clientFrom(values)).getTaskStatus({ taskId });
  if (!task) throw new ConnectError("empty response", Code.Internal);
  const view = {
    task_id: task.taskId,
    status: STATUS_NAME(task.status),
    command: [task.command, ...task.args].join(" "),
    workspace: task.workspace,
    owner: task.owner,
    runner: task.runnerId,
    created_at: task.createdAt ? timestampDate(task.createdAt).toISOString() : undefined,
    started_at: task.startedAt ? timestampDate(task.startedAt).toISOString() : undefined,
    finished_at: task.finishedAt ? timestampDate(task.finishedAt).toISOString() : undefined,
    message: task.statusMessage || undefined,
    exit_code: task.result?.exitCode,
    execution_time_ms: task.result ? Number(task.result.executionTimeMs) : undefined,
    stdout_truncated: task.result?.stdoutTruncated,
    stderr_truncated: task.result?.stderrTruncated,
  };
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ ...view, stdout: task.result?.stdout, stderr: task.result?.stderr })}\n`,
    );
  } else {
    for (const [k, v] of Object.entries(view))
      if (v !== undefined && v !== "") process.stdout.write(`${k.padEnd(18)} ${v}\n`);
  }
  return 0;
}

/** `mcp-gateway logs [-f] <task-id>`: replays output (and follows with -f; without it, too, until the task ends). */
export async function logsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...COMMON,
    follow: { type: "boolean", short: "f" },
  });
  const taskId = positionals[0];
  if (!taskId) throw new UsageError("logs needs a task id");
  const client = await clientFrom(values);
  return follow(client, taskId, values.json ?? false);
}

/** `mcp-gateway cancel <task-id>` */
export async function cancelCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON);
  const taskId = positionals[0];
  if (!taskId) throw new UsageError("cancel needs a task id");
  const res = await (await clientFrom(values)).cancelTask({ taskId });
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ task_id: res.taskId, status: STATUS_NAME(res.status) })}\n`
      : `${res.taskId} ${STATUS_NAME(res.status)}\n`,
  );
  return 0;
}

/** `mcp-gateway cat <path>` */
export async function catCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON);
  const path = positionals[0];
  if (!path) throw new UsageError("cat needs a path");
  const res = await (await clientFrom(values)).readFile({
    workspace: values.workspace ?? "",
    path,
  });
  process.stdout.write(res.content);
  return 0;
}

/** `mcp-gateway put <local-file|-> <path> [--parents] [--mode 0644]` */
export async function putCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...COMMON,
    parents: { type: "boolean", short: "p" },
    mode: { type: "string" },
  });
  const [local, path] = positionals;
  if (!local || !path) throw new UsageError("put needs a local file (or -) and a workspace path");
  const content = local === "-" ? readFileSync(0) : readFileSync(local);
  const mode = values.mode === undefined ? 0 : Number.parseInt(values.mode, 8);
  if (Number.isNaN(mode)) throw new UsageError(`--mode ${values.mode}: octal, e.g. 0644`);
  const res = await (await clientFrom(values)).writeFile({
    workspace: values.workspace ?? "",
    path,
    content,
    createParents: values.parents ?? false,
    mode,
  });
  if (values.json)
    process.stdout.write(`${JSON.stringify({ bytes_written: Number(res.bytesWritten) })}\n`);
  return 0;
}

/** `mcp-gateway rm [-r] <path>` */
export async function rmCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...COMMON,
    recursive: { type: "boolean", short: "r" },
  });
  const path = positionals[0];
  if (!path) throw new UsageError("rm needs a path");
  await (await clientFrom(values)).deleteFile({
    workspace: values.workspace ?? "",
    path,
    recursive: values.recursive ?? false,
  });
  return 0;
}

/** `mcp-gateway ls [path]` */
export async function lsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMMON);
  const res = await (await clientFrom(values)).listDirectory({
    workspace: values.workspace ?? "",
    path: positionals[0] ?? "",
  });
  const typeName = (t: FileType) => (FileType[t] ?? "OTHER").toLowerCase();
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify(res.entries.map((e) => ({ name: e.name, type: typeName(e.type), size: Number(e.size), mode: e.mode.toString(8) })))}\n`,
    );
  } else {
    for (const e of res.entries) {
      const suffix = e.type === FileType.DIRECTORY ? "/" : e.type === FileType.SYMLINK ? "@" : "";
      process.stdout.write(
        `${e.mode.toString(8).padStart(4, "0")} ${String(e.size).padStart(10)} ${e.name}${suffix}\n`,
      );
    }
  }
  return 0;
}
