import { realpathSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { isAbsolute, posix } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { OperationInput } from "@mcp-gateway/common/authz";
import { toConnectError } from "@mcp-gateway/common/errors";
import { applyObligations, type Decision } from "@mcp-gateway/common/policy";
import { NetworkMode, TaskStatus } from "@mcp-gateway/proto/mcp";
import {
  type Authorization,
  ExitedSchema,
  type McpServerLaunch,
  type McpServerRequest,
  type McpServerResponse,
  McpServerResponseSchema,
} from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import { execPolicyOf } from "./exec-policy.js";
import {
  DEFAULT_SANDBOX_LIMITS,
  type Sandbox,
  type SandboxProcess,
  type SandboxResult,
  type SandboxSpec,
} from "./sandbox/index.js";

/** Options of {@link createMcpServerHost}. */
export interface McpServerHostOptions {
  /** The runner's sandbox: servers run exactly like tasks, with stdin as a pipe. */
  sandbox: Sandbox;
  runnerId: string;
  logger: Logger;
  /**
   * Host directories a server may see read-only (its code, e.g. a node_modules tree); every
   * path an edge asks to bind must lie under one of them (after resolving symlinks). Empty:
   * servers get only what tasks get.
   */
  readOnlyPaths: readonly string[];
  /**
   * Host paths no allowed read-only path may contain (the runner's data directory, workspace
   * root, TLS key): creating the host fails if one does.
   */
  protectedPaths: readonly string[];
  /** Servers running at once on this runner; more are refused with ResourceExhausted. */
  maxServers: number;
  /** Bytes of server output queued for a slow edge before the server is stopped (default 8 MiB). */
  maxQueuedBytes?: number;
}

/** What the runner's service supplies for one launch. */
export interface McpServerLaunchContext {
  /** Re-checks the edge's decision with the runner's own policy (throws on refusal). */
  recheck(authz: Authorization | undefined, op: OperationInput): Decision;
  /** The tenant's workspace directory on the host (created if missing). */
  workspaceDir(authz: Authorization | undefined, workspace: string): Promise<string>;
  /** False while draining. */
  accepting(): boolean;
  /** Aborts when the edge goes away. */
  signal: AbortSignal;
}

/** Stdio MCP servers on this runner: one sandboxed process per RunnerService.McpServer stream. */
export interface McpServerHost {
  /** Runs the server the first request launches, for as long as the stream lasts. */
  serve(
    requests: AsyncIterable<McpServerRequest>,
    ctx: McpServerLaunchContext,
  ): AsyncGenerator<McpServerResponse>;
  /** Servers running now. */
  running(): number;
  /** Kills every server and waits until their trees are gone (shutdown). */
  stopAll(): Promise<void>;
}

const STATUS: { readonly [K in SandboxResult["status"]]: TaskStatus } = {
  completed: TaskStatus.COMPLETED,
  timed_out: TaskStatus.TIMED_OUT,
  cancelled: TaskStatus.CANCELLED,
  failed: TaskStatus.FAILED,
};

const NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** Host trees never bound into a sandbox (as for the sandbox's extraReadOnlyPaths). */
const SYSTEM_PRIVATE = ["/etc", "/root", "/home", "/proc", "/sys", "/dev", "/run", "/var"];

/** A limit after obligations: 0 (not set) means the sandbox default. */
const orDefault = (value: number, fallback: number) => (value > 0 ? value : fallback);

/** Whether `path` is `dir` or lies beneath it. */
const under = (path: string, dir: string) =>
  path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);

/**
 * Host pid of the deepest process below `root` (the launcher → bwrap → the sandbox's PID 1 →
 * the server): the server's own process, found by walking /proc once.
 */
export async function deepestDescendant(root: number): Promise<number> {
  const children = new Map<number, number[]>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  let pid = root;
  for (let depth = 0; depth < 16; depth++) {
    const next = children.get(pid);
    if (!next || next.length === 0) break;
    pid = Math.max(...next);
  }
  return pid;
}

/** Creates the runner's host of sandboxed stdio MCP servers. */
export function createMcpServerHost(options: McpServerHostOptions): McpServerHost {
  const { sandbox, logger } = options;
  const maxQueued = options.maxQueuedBytes ?? 8 * 1024 * 1024;
  const allowed = options.readOnlyPaths.map((p) => {
    try {
      return realpathSync(p);
    } catch {
      return posix.normalize(p);
    }
  });
  for (const a of allowed) {
    const hit = [...SYSTEM_PRIVATE, ...options.protectedPaths].find(
      (p) => under(a, p) || under(p, a),
    );
    if (hit !== undefined) {
      throw new Error(
        `mcpServerReadOnlyPaths: ${a} may not be exposed to MCP servers (it overlaps ${hit})`,
      );
    }
  }
  const live = new Set<SandboxProcess>();

  /** Checks the requested read-only host paths against the runner's allowlist. */
  /** Directories the sandbox mounts its own (empty or private) over: a host path below one is hidden. */
  const SANDBOX_OWN_MOUNTS = ["/tmp", "/dev", "/proc", "/workspace"];

  function readOnlyPaths(requested: readonly string[]): string[] {
    return requested.map((p) => {
      if (!isAbsolute(p) || posix.normalize(p) !== p || p.includes("\0")) {
        throw new ConnectError(
          `read-only path ${JSON.stringify(p.slice(0, 200))} must be absolute and normalized`,
          Code.InvalidArgument,
        );
      }
      let real: string;
      try {
        real = realpathSync(p);
      } catch {
        throw new ConnectError(
          `read-only path ${p} does not exist on runner ${options.runnerId}`,
          Code.FailedPrecondition,
        );
      }
      const hidden = SANDBOX_OWN_MOUNTS.find((m) => under(p, m) || under(real, m));
      if (hidden !== undefined) {
        throw new ConnectError(
          `read-only path ${p} is under ${hidden}, which the sandbox replaces with its own; install the server elsewhere (e.g. /opt)`,
          Code.FailedPrecondition,
        );
      }
      if (!allowed.some((a) => under(p, a) && under(real, a))) {
        throw new ConnectError(
          `read-only path ${p} is not under this runner's mcpServerReadOnlyPaths (${allowed.join(", ") || "none configured"})`,
          Code.PermissionDenied,
        );
      }
      return p;
    });
  }

  /** Re-checks the launch and builds the sandbox spec with the obligations applied. */
  async function prepare(launch: McpServerLaunch, ctx: McpServerLaunchContext) {
    const spec = launch.spec;
    if (!spec || !NAME.test(launch.server)) {
      throw new ConnectError("launch needs a server name and a spec", Code.InvalidArgument);
    }
    const l = spec.limits;
    const requested = {
      memory_bytes: Number(l?.memoryBytes ?? 0n),
      max_processes: l?.maxProcesses ?? 0,
      max_file_size_bytes: Number(l?.maxFileSizeBytes ?? 0n),
      max_open_files: l?.maxOpenFiles ?? 0,
      cpu_seconds: l?.cpuSeconds ?? 0,
      max_output_bytes: Number(l?.maxOutputBytes ?? 0n),
    };
    const network = spec.network === NetworkMode.HOST ? "host" : "none";
    const timeoutSeconds = Math.ceil(Number(spec.timeoutMs) / 1000);
    const decision = ctx.recheck(launch.authorization, {
      operation: "mcp_server",
      workspace: spec.workspace,
      mcp_server: {
        server: launch.server,
        command: spec.command,
        args: spec.args,
        read_only_paths: launch.readOnlyPaths,
      },
      network,
      sandbox: { limits: requested },
    });
    // The runner enforces the obligations itself, exactly as for tasks.
    const applied = applyObligations(
      { timeout_seconds: timeoutSeconds, network, limits: requested },
      decision.obligations,
    );
    const d = DEFAULT_SANDBOX_LIMITS;
    const sandboxSpec: SandboxSpec = {
      command: spec.command,
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      workspaceDir: await ctx.workspaceDir(launch.authorization, spec.workspace),
      network: applied.network,
      timeoutMs: applied.timeout_seconds * 1000,
      limits: {
        memoryBytes: orDefault(applied.limits.memory_bytes, d.memoryBytes),
        maxProcesses: orDefault(applied.limits.max_processes, d.maxProcesses),
        maxFileSizeBytes: orDefault(applied.limits.max_file_size_bytes, d.maxFileSizeBytes),
        maxOpenFiles: orDefault(applied.limits.max_open_files, d.maxOpenFiles),
        cpuSeconds: orDefault(applied.limits.cpu_seconds, d.cpuSeconds),
        maxOutputBytes: orDefault(applied.limits.max_output_bytes, d.maxOutputBytes),
        tmpBytes: d.tmpBytes,
      },
      stdin: "pipe",
      readOnlyPaths: readOnlyPaths(launch.readOnlyPaths),
    };
    // What the kernel (Landlock) lets the server's processes execute: the tenant's exec
    // rules, as for its tasks — a server can run nothing a task could not.
    const exec = execPolicyOf(decision.obligations, launch.authorization?.principal?.tenant ?? "");
    if (exec !== undefined) sandboxSpec.exec = exec;
    return sandboxSpec;
  }

  async function* serve(
    requests: AsyncIterable<McpServerRequest>,
    ctx: McpServerLaunchContext,
  ): AsyncGenerator<McpServerResponse> {
    const iterator = requests[Symbol.asyncIterator]();
    const first = await iterator.next();
    if (first.done || first.value.message.case !== "launch") {
      throw new ConnectError("the first request must launch the server", Code.InvalidArgument);
    }
    const launch = first.value.message.value;
    if (!ctx.accepting()) {
      throw new ConnectError(
        `runner ${options.runnerId} is draining; start the server elsewhere`,
        Code.Unavailable,
      );
    }
    if (live.size >= options.maxServers) {
      throw new ConnectError(
        `runner ${options.runnerId} runs its maximum of ${options.maxServers} MCP servers`,
        Code.ResourceExhausted,
      );
    }
    let spec: SandboxSpec;
    try {
      spec = await prepare(launch, ctx);
    } catch (err) {
      throw toConnectError(err);
    }

    // Events for the edge, in order; bounded in bytes (a slow edge stops the server).
    const queue: McpServerResponse[] = [];
    let queued = 0;
    let wake: (() => void) | null = null;
    const push = (message: McpServerResponse["message"], bytes = 0) => {
      queue.push(create(McpServerResponseSchema, { message }));
      queued += bytes;
      wake?.();
      wake = null;
    };
    let overflow = false;
    let started = false;
    let proc: SandboxProcess;
    try {
      proc = await sandbox.spawn(spec, {
        onStarted: () => {
          started = true;
          wake?.();
          wake = null;
        },
        onOutput: (stream, data) => {
          push({ case: stream, value: data }, data.length);
          if (queued > maxQueued && !overflow) {
            overflow = true;
            proc.cancel();
          }
        },
      });
    } catch (err) {
      throw toConnectError(err);
    }
    live.add(proc);
    let exit: SandboxResult | null = null;
    void proc.result.then((r) => {
      exit = r;
      live.delete(proc);
      wake?.();
      wake = null;
    });
    const stop = () => proc.cancel();
    ctx.signal.addEventListener("abort", stop, { once: true });

    // stdin: every later request's bytes, with backpressure; the stream's end stops the server.
    void (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) break;
          if (next.value.message.case !== "stdin") continue;
          const stdin = proc.stdin;
          if (!stdin || stdin.destroyed) break;
          if (!stdin.write(next.value.message.value)) {
            await new Promise<void>((r) => {
              stdin.once("drain", r);
              void proc.result.then(() => r());
            });
          }
        }
      } catch {
        // the edge went away
      }
      stop();
    })();

    try {
      // Started first (with the server's host pid), then output, then Exited.
      while (!started && exit === null) await new Promise<void>((r) => (wake = r));
      if (started) {
        const pid = await deepestDescendant(proc.pid).catch(() => proc.pid);
        logger.info(
          {
            server: launch.server,
            pid,
            tenant: launch.authorization?.principal?.tenant,
            network: spec.network,
          },
          "mcp server started",
        );
        yield create(McpServerResponseSchema, {
          message: {
            case: "started",
            value: {
              runnerId: options.runnerId,
              pid,
              network: spec.network === "host" ? NetworkMode.HOST : NetworkMode.NONE,
              limits: {
                memoryBytes: BigInt(spec.limits.memoryBytes),
                maxProcesses: spec.limits.maxProcesses,
                maxFileSizeBytes: BigInt(spec.limits.maxFileSizeBytes),
                maxOpenFiles: spec.limits.maxOpenFiles,
                cpuSeconds: spec.limits.cpuSeconds,
                maxOutputBytes: BigInt(spec.limits.maxOutputBytes),
              },
              lifetimeMs: BigInt(spec.timeoutMs),
            },
          },
        });
      }
      for (;;) {
        const next = queue.shift();
        if (next) {
          const m = next.message;
          if (m.case === "stdout" || m.case === "stderr") queued -= m.value.length;
          yield next;
          continue;
        }
        if (exit !== null) break;
        await new Promise<void>((r) => (wake = r));
      }
      const r = exit as SandboxResult | null;
      if (r) {
        const message = overflow
          ? `stopped: the edge did not read the server's output (over ${maxQueued} bytes queued)`
          : r.message;
        logger.info(
          { server: launch.server, status: r.status, exitCode: r.exitCode, signal: r.signal },
          "mcp server exited",
        );
        yield create(McpServerResponseSchema, {
          message: {
            case: "exited",
            value: create(ExitedSchema, {
              status: STATUS[r.status],
              exitCode: r.exitCode,
              signal: r.signal,
              executionTimeMs: BigInt(Math.round(r.executionTimeMs)),
              stderrTruncated: r.stderrTruncated,
              message,
            }),
          },
        });
      }
    } finally {
      // The edge closed the stream or the runner stops: the whole tree goes.
      ctx.signal.removeEventListener("abort", stop);
      stop();
      await proc.result;
    }
  }

  return {
    serve,
    running: () => live.size,
    async stopAll() {
      const all = [...live];
      for (const p of all) p.cancel();
      await Promise.all(all.map((p) => p.result));
    },
  };
}
