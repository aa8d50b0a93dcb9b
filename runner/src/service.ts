import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { buildPolicyInput, type OperationInput } from "@mcp-gateway/common/authz";
import { toConnectError } from "@mcp-gateway/common/errors";
import { applyObligations, type Decision, type PolicyEngine } from "@mcp-gateway/common/policy";
import {
  type Context,
  contextFromTraceparent,
  endSpan,
  SpanKind,
  startSpan,
  type Tracer,
} from "@mcp-gateway/common/tracing";
import { VERSION } from "@mcp-gateway/common/version";
import { FileType, NetworkMode } from "@mcp-gateway/proto/mcp";
import type {
  Authorization,
  ExecuteRequest,
  RunnerService,
  TaskSpec,
} from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import { execPolicyOf } from "./exec-policy.js";
import type { McpServerHost } from "./mcp-servers.js";
import type { PeerRefusals } from "./peer-refusals.js";
import type { SandboxLimits, SandboxReadiness } from "./sandbox/index.js";
import { DEFAULT_SANDBOX_LIMITS } from "./sandbox/index.js";
import type { TaskManager } from "./task-manager.js";
import type { WorkspaceFs } from "./workspace/index.js";

/** Dependencies of the runner's service. */
export interface RunnerServiceDeps {
  runnerId: string;
  /** Refused connections, handed to the edge that probes (`Info`) for its audit chain. */
  refusals?: PeerRefusals;
  /** Random id of this runner process, reported so edges can tell a restart. */
  bootId: string;
  tasks: TaskManager;
  /** The workspaces of a tenant (each tenant has its own directory tree). */
  workspaces: (tenant: string) => WorkspaceFs;
  policy: PolicyEngine;
  logger: Logger;
  tracer: Tracer;
  /** False while draining: new tasks are refused with Unavailable. */
  accepting: () => boolean;
  /** The sandbox self-check's latest result (refreshed by the runner). */
  readiness: () => SandboxReadiness;
  /** Workspace quota description ("loop-image <bytes> bytes, <inodes> inodes" or "none"). */
  workspaceQuota: string;
  /** Empties a workspace directory (runner/src/workspace/reset.ts); absent: no ResetWorkspace. */
  cleanWorkspace?: (dir: string) => Promise<void>;
  /** Sandboxed stdio MCP servers (RunnerService.McpServer). */
  mcpServers: McpServerHost;
}

const FILE_TYPE = {
  file: FileType.FILE,
  directory: FileType.DIRECTORY,
  symlink: FileType.SYMLINK,
  other: FileType.OTHER,
} as const;

/** The workspace size the decision obliges (applied when the runner creates the workspace). */
function sizeOf(decision: Decision): { bytes: number; inodes: number } | undefined {
  const w = decision.obligations.workspace;
  return w ? { bytes: w.max_bytes, inodes: w.max_inodes } : undefined;
}

/** A limit after obligations: 0 (not set) means the sandbox default. */
function orDefault(value: number, fallback: number): number {
  return value > 0 ? value : fallback;
}

/**
 * The runner's internal service. Every call re-checks the edge's decision with
 * the runner's own copy of the policy (same bundle revision required) before
 * it touches the sandbox or a workspace: defence in depth against a
 * compromised or misconfigured edge.
 */
export function createRunnerService(deps: RunnerServiceDeps): ServiceImpl<typeof RunnerService> {
  const { tasks, workspaces, policy } = deps;

  /** Highest fencing token seen from an active edge: lower ones come from a deposed active. */
  let fence = 0n;

  /** Refuses a call from a deposed active edge; remembers the highest token seen. */
  function checkFence(token: bigint): void {
    if (token === 0n) return;
    if (token < fence) {
      throw new ConnectError(
        `stale fencing token ${token} (current ${fence}): the calling edge is no longer active`,
        Code.FailedPrecondition,
      );
    }
    fence = token;
  }

  function recheck(authz: Authorization | undefined, op: OperationInput): Decision {
    if (authz) checkFence(authz.fencingToken);
    if (!authz?.principal) {
      throw new ConnectError(
        "authorization missing: the edge must forward its decision",
        Code.InvalidArgument,
      );
    }
    const input = buildPolicyInput(authz.principal, op, {
      protocol: "runner",
      traceId: authz.metadata.trace_id ?? "",
      source: "edge",
      metadata: authz.metadata,
    });
    const decision = policy.decide(input);
    if (!decision.allow) {
      throw new ConnectError(
        `runner policy re-check denied the operation: ${decision.denyReasons.join("; ") || "denied"}`,
        Code.PermissionDenied,
      );
    }
    if (decision.revision !== authz.policyRevision) {
      throw new ConnectError(
        `policy revision mismatch: the edge decided with "${authz.policyRevision}", this runner holds "${decision.revision}"`,
        Code.FailedPrecondition,
      );
    }
    return decision;
  }

  function limitsOf(spec: TaskSpec): SandboxLimits & { timeoutMs: number } {
    const l = spec.limits;
    return {
      memoryBytes: Number(l?.memoryBytes ?? 0n),
      maxProcesses: l?.maxProcesses ?? 0,
      maxFileSizeBytes: Number(l?.maxFileSizeBytes ?? 0n),
      maxOpenFiles: l?.maxOpenFiles ?? 0,
      cpuSeconds: l?.cpuSeconds ?? 0,
      maxOutputBytes: Number(l?.maxOutputBytes ?? 0n),
      tmpBytes: 0,
      timeoutMs: Number(spec.timeoutMs),
    };
  }

  async function* stream(id: string, afterSeq: bigint, ctx: HandlerContext) {
    for await (const event of tasks.events(id, afterSeq, ctx.signal)) yield { event };
  }

  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw toConnectError(err);
    }
  };

  async function startTask(req: ExecuteRequest, spec: TaskSpec, parent: Context): Promise<void> {
    const requested = limitsOf(spec);
    const requestedLimits = {
      memory_bytes: requested.memoryBytes,
      max_processes: requested.maxProcesses,
      max_file_size_bytes: requested.maxFileSizeBytes,
      max_open_files: requested.maxOpenFiles,
      cpu_seconds: requested.cpuSeconds,
      max_output_bytes: requested.maxOutputBytes,
    };
    const network =
      spec.network === NetworkMode.HOST
        ? "host"
        : spec.network === NetworkMode.RESTRICTED
          ? "restricted"
          : "none";
    const decision = recheck(req.authorization, {
      allow_hosts: spec.allowHosts,
      operation: "execute",
      workspace: spec.workspace,
      command: {
        command: spec.command,
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        timeout_seconds: Math.ceil(requested.timeoutMs / 1000),
      },
      network,
      sandbox: { limits: requestedLimits },
    });
    // The runner enforces the obligations itself: it never trusts the edge to have applied them.
    const applied = applyObligations(
      { timeout_seconds: Math.ceil(requested.timeoutMs / 1000), network, limits: requestedLimits },
      decision.obligations,
    );
    const d = DEFAULT_SANDBOX_LIMITS;
    // What the kernel lets the task execute (Landlock), from the same decision.
    const exec = execPolicyOf(decision.obligations, tenantOf(req.authorization));
    await guard(async () => {
      const workspaceDir = await workspaces(ownerOf(req.authorization, decision)).ensure(
        spec.workspace,
        sizeOf(decision),
      );
      await tasks.start(
        req.taskId,
        {
          command: spec.command,
          args: spec.args,
          env: spec.env,
          cwd: spec.cwd,
          workspaceDir,
          network: applied.network,
          timeoutMs: Math.min(
            orDefault(requested.timeoutMs, 60_000),
            applied.timeout_seconds * 1000,
          ),
          limits: {
            memoryBytes: orDefault(applied.limits.memory_bytes, d.memoryBytes),
            maxProcesses: orDefault(applied.limits.max_processes, d.maxProcesses),
            maxFileSizeBytes: orDefault(applied.limits.max_file_size_bytes, d.maxFileSizeBytes),
            maxOpenFiles: orDefault(applied.limits.max_open_files, d.maxOpenFiles),
            cpuSeconds: orDefault(applied.limits.cpu_seconds, d.cpuSeconds),
            maxOutputBytes: orDefault(applied.limits.max_output_bytes, d.maxOutputBytes),
            tmpBytes: d.tmpBytes,
          },
          ...(exec === undefined ? {} : { exec }),
        },
        parent,
        // The egress allowlist and caps of this runner's own decision, never the edge's word.
        applied.egress,
      );
    });
  }

  /** A file operation: policy re-check, then the operation inside the (created if missing) workspace. */
  async function fileOp<T>(
    req: { workspace: string; path: string; authorization?: Authorization | undefined },
    operation: "read_file" | "write_file" | "delete_file" | "list_directory",
    mode: "read" | "write" | "delete" | "list",
    act: (fs: WorkspaceFs) => Promise<T>,
  ): Promise<T> {
    const decision = recheck(req.authorization, {
      operation,
      workspace: req.workspace,
      file: { path: req.path, mode },
    });
    const fs = workspaces(ownerOf(req.authorization, decision));
    return guard(async () => {
      await fs.ensure(req.workspace, sizeOf(decision));
      return act(fs);
    });
  }

  /**
   * Whose workspaces a request uses: the principal's own (the default policy) or, for a
   * workspace the tenant shares (decision.workspaceScope "tenant", or a bundle without the
   * field), the tenant's. Different keys are different directories (hashed by the caller).
   */
  function ownerOf(authz: Authorization | undefined, decision: Decision): string {
    const tenant = tenantOf(authz);
    if (decision.workspaceScope !== "principal") return tenant;
    return `${tenant}\u0000principal\u0000${authz?.principal?.sub ?? ""}`;
  }

  /** The tenant a request acts for (recheck() already refused requests without a principal). */
  function tenantOf(authz: Authorization | undefined): string {
    const tenant = authz?.principal?.tenant ?? "";
    if (tenant === "") throw new ConnectError("the principal has no tenant", Code.InvalidArgument);
    return tenant;
  }

  return {
    async info() {
      const r = deps.readiness();
      return {
        runnerId: deps.runnerId,
        version: VERSION,
        sandboxReady: r.ready,
        sandboxProblem: r.problem,
        runningTasks: tasks.running(),
        policyRevision: policy.revision(),
        limitLayers: [
          ...r.limitLayers,
          ...(deps.workspaceQuota === "none" ? [] : ["workspace-quota"]),
        ],
        bootId: deps.bootId,
        cgroup: r.cgroup,
        workspaceQuota: deps.workspaceQuota,
        refusals: deps.refusals?.drain() ?? [],
      };
    },

    async *execute(req, ctx) {
      const spec = req.spec;
      if (!spec || !/^task-[0-9a-f-]{36}$/.test(req.taskId)) {
        throw new ConnectError("task_id and spec are required", Code.InvalidArgument);
      }
      if (req.expectedBootId !== "" && req.expectedBootId !== deps.bootId) {
        throw new ConnectError(
          `runner ${deps.runnerId} restarted since the task was sent to it; refusing to run it again`,
          Code.FailedPrecondition,
        );
      }
      if (!tasks.has(req.taskId)) {
        if (!deps.accepting()) {
          throw new ConnectError(
            `runner ${deps.runnerId} is draining; send the task elsewhere`,
            Code.Unavailable,
          );
        }
        const span = startSpan(
          deps.tracer,
          "runner.execute",
          contextFromTraceparent(req.authorization?.traceparent),
          { "mcp.task_id": req.taskId, "mcp.runner_id": deps.runnerId },
          SpanKind.SERVER,
        );
        try {
          await startTask(req, spec, span.context);
          endSpan(span.span);
        } catch (err) {
          endSpan(span.span, err);
          throw err;
        }
      }
      yield* stream(req.taskId, 0n, ctx);
    },

    async *attach(req, ctx) {
      if (!tasks.has(req.taskId) && tasks.seen(req.taskId)) {
        throw new ConnectError(
          `task ${req.taskId} ran on this runner but its record expired`,
          Code.FailedPrecondition,
        );
      }
      if (!tasks.has(req.taskId)) {
        throw new ConnectError(`task ${req.taskId} is not known to this runner`, Code.NotFound);
      }
      yield* stream(req.taskId, req.afterSeq, ctx);
    },

    async cancel(req) {
      checkFence(req.fencingToken);
      return { cancelled: tasks.cancel(req.taskId) };
    },

    async release(req) {
      checkFence(req.fencingToken);
      return { released: tasks.release(req.taskId) };
    },

    mcpServer(requests, ctx) {
      // Re-checked as the mcp_server operation, obligations applied, then run like a task.
      return deps.mcpServers.serve(requests, {
        recheck,
        workspaceDir: (authz, workspace) =>
          guard(() => workspaces(tenantOf(authz)).ensure(workspace)),
        accepting: deps.accepting,
        signal: ctx.signal,
      });
    },

    async readFile(req) {
      return fileOp(req, "read_file", "read", async (fs) => {
        const r = await fs.readFile(req.workspace, req.path);
        return { content: r.content, size: BigInt(r.size) };
      });
    },

    async writeFile(req) {
      return fileOp(req, "write_file", "write", async (fs) => {
        const r = await fs.writeFile(req.workspace, req.path, req.content, {
          createParents: req.createParents,
          mode: req.mode === 0 ? 0o644 : req.mode,
        });
        return { bytesWritten: BigInt(r.bytesWritten) };
      });
    },

    async deleteFile(req) {
      return fileOp(req, "delete_file", "delete", async (fs) => {
        await fs.deleteFile(req.workspace, req.path, { recursive: req.recursive });
        return {};
      });
    },

    async resetWorkspace(req) {
      const decision = recheck(req.authorization, {
        operation: "reset_workspace",
        workspace: req.workspace,
      });
      const clean = deps.cleanWorkspace;
      if (clean === undefined) {
        throw new ConnectError("this runner cannot reset workspaces", Code.Unimplemented);
      }
      // An admin resets a member's own workspace by naming the member; "" = the caller's own
      // (or the tenant's, for a shared workspace).
      const owner =
        req.owner === "" || decision.workspaceScope !== "principal"
          ? ownerOf(req.authorization, decision)
          : `${tenantOf(req.authorization)}\u0000principal\u0000${req.owner}`;
      const fs = workspaces(owner);
      await guard(async () => {
        await clean(await fs.ensure(req.workspace, sizeOf(decision)));
        await fs.ensure(req.workspace, sizeOf(decision));
      });
      deps.logger.info(
        { workspace: req.workspace, owner: req.owner, by: req.authorization?.principal?.sub },
        "workspace reset",
      );
      return {};
    },

    async listDirectory(req) {
      return fileOp(req, "list_directory", "list", async (fs) => {
        const entries = await fs.listDirectory(req.workspace, req.path);
        const usage = await fs.usage(req.workspace);
        return {
          ...(usage === null
            ? {}
            : {
                usage: {
                  bytesUsed: BigInt(usage.bytesUsed),
                  bytesLimit: BigInt(usage.bytesLimit),
                  inodesUsed: BigInt(usage.inodesUsed),
                  inodesLimit: BigInt(usage.inodesLimit),
                },
              }),
          entries: entries.map((e) => ({
            name: e.name,
            type: FILE_TYPE[e.type],
            size: BigInt(e.size),
            mode: e.mode,
            modifiedAt: timestampFromMs(e.modifiedAtMs),
          })),
        };
      });
    },
  };
}
