import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { GatewayError } from "@mcp-gateway/common/errors";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import canonicalize from "canonicalize";
import type { UpstreamLogMessage } from "../mcp/http-call.js";
import type { UpstreamCaller } from "../mcp/stdio-upstream.js";
import type { Upstreams, UpstreamTool } from "../mcp/upstreams.js";
import type { Pipeline } from "../pipeline/authorize.js";
import { principalOf, type RequestContext } from "../pipeline/context.js";
import { type PinChange, pinApproved, type ToolPin } from "../store/tool-pins.js";
import type { TaskStore } from "../store/types.js";

/** Dependencies of the upstream-tool operations. */
export interface UpstreamOperationsDeps {
  pipeline: Pipeline;
  store: TaskStore;
  /** The configured upstream MCP servers (none: no upstream tools). */
  upstreams?: Upstreams | undefined;
  /** Send tool descriptions to the policy (to refuse instructions hidden in them). */
  policySeesDescriptions?: boolean;
  /** Audit the full arguments of upstream calls ("full") or only their digest ("digest"). */
  auditArguments?: "digest" | "full";
  /** How long this edge trusts a pin state it read, ms (approvals on other edges show after it). */
  pinCacheMs?: number;
  /** The active lease's fencing token for runner calls (0 when not active-passive). */
  fencingToken?: () => bigint;
}

/** What `tools/list` may show: gateway operations and approved, permitted upstream tools. */
export interface ToolDiscovery {
  /** Operations the caller's roles permit. */
  operations: readonly string[];
  /** Upstream tools the caller may call, whose definitions are approved. */
  upstream: readonly UpstreamTool[];
  /** Upstreams that could not be listed, with the reason (their tools are left out). */
  unavailable: readonly string[];
}

/** The upstream-tool operations (part of the operations layer). */
export interface UpstreamOperations {
  /**
   * The tools the caller may see: one `list_tools` decision (audited) over the
   * gateway's operations and the upstream tools whose pinned definitions are
   * approved. New and changed definitions are recorded (pinned, or held for
   * approval) and audited on the way.
   */
  discoverTools(rc: RequestContext): Promise<ToolDiscovery>;
  /**
   * Calls a tool of an upstream: refused while its definition awaits approval;
   * decided as `call_tool` on the full arguments (audited with their digest);
   * the outcome (duration, result digest) is audited too.
   */
  callUpstreamTool(
    rc: RequestContext,
    call: { server: string; tool: string; arguments: Record<string, unknown> },
    options: {
      signal: AbortSignal;
      onProgress?: (
        progress: number,
        total: number | undefined,
        message: string | undefined,
      ) => void;
      /** Log messages the upstream sends on the call's stream (remote upstreams). */
      onLog?: (message: UpstreamLogMessage) => void;
    },
  ): Promise<CallToolResult>;
  /** Pinned definitions (admin): all, or of one server, or only those awaiting approval. */
  listToolDefinitions(
    rc: RequestContext,
    req: { server: string; pendingOnly: boolean },
  ): Promise<ToolPin[]>;
  /** Approves the definition an upstream serves now (admin), by its digest. */
  approveToolDefinition(
    rc: RequestContext,
    req: { server: string; tool: string; digest: string },
  ): Promise<ToolPin>;
}

/**
 * The caller as stdio upstreams see it: its tenant, and the decision to start the tenant's
 * server. One process serves the whole tenant, so the start is decided (mcp_server) and
 * audited as the tenant's server principal — its limits and network never depend on which
 * user called first — with the user who triggered it in the audit params.
 */
export function upstreamCaller(
  deps: Pick<UpstreamOperationsDeps, "pipeline" | "fencingToken">,
  rc: RequestContext,
): UpstreamCaller {
  const { pipeline } = deps;
  const user = principalOf(rc);
  return {
    tenant: user.tenant,
    async authorizeLaunch(l) {
      const principal = {
        sub: `mcp-server:${l.server}`,
        roles: ["mcp-server"],
        tenant: user.tenant,
        scopes: [],
      };
      const decision = await pipeline.authorize(
        { ...rc, principal },
        {
          operation: "mcp_server",
          workspace: l.workspace,
          mcp_server: l.mcpServer,
          network: l.network,
          sandbox: { limits: l.limits },
        },
        {
          params: {
            server: l.server,
            command: l.mcpServer.command,
            args: l.mcpServer.args,
            workspace: l.workspace,
            network: l.network,
            requested_by: user.sub,
          },
        },
      );
      return {
        $typeName: "mcp.runner.v1.Authorization",
        principal: { $typeName: "mcp.runner.v1.Principal", ...principal },
        policyRevision: decision.revision,
        metadata: {},
        traceparent: rc.traceparent,
        fencingToken: deps.fencingToken?.() ?? 0n,
      };
    },
  };
}

/** "sha256:<hex>" of the RFC 8785 form of a value (arguments and results in the audit chain). */
export function digestOf(value: unknown): string {
  const text = canonicalize(value) ?? "null";
  return `sha256:${createHash("sha256").update(text).digest("hex")}`;
}

/** The outcome of an upstream request, for {@link auditUpstreamOutcome}. */
export interface UpstreamOutcome {
  operation: string;
  params: Record<string, unknown>;
  /** Policy revision of the decision that allowed the request. */
  revision: string;
  /** performance.now() when the request was forwarded. */
  started: number;
  outcome: "completed" | "tool_error" | "failed";
  failure?: unknown;
  /** The upstream's answer (its digest is recorded), when there is one. */
  result?: unknown;
}

/**
 * Appends the outcome record of an upstream request (duration, result digest) after the
 * answer has left: the decision was recorded, durably, before the request was forwarded;
 * this record is sealed on setImmediate, so not even its digest, HMAC and insert hold the
 * answer back. Not awaited: a failure to append is logged.
 */
export function auditUpstreamOutcome(
  pipeline: Pipeline,
  rc: RequestContext,
  o: UpstreamOutcome,
): void {
  const time = Date.now();
  const durationMs = Math.round(performance.now() - o.started);
  let done: () => void = () => undefined;
  const pending = new Promise<void>((resolve) => {
    done = resolve;
  });
  pendingOutcomes.add(pending);
  void pending.then(() => pendingOutcomes.delete(pending));
  setImmediate(() =>
    pipeline
      .audit({
        time,
        traceId: rc.traceId,
        principal: principalOf(rc),
        operation: o.operation,
        params: o.params,
        decision: "none",
        reasons: o.failure ? [String((o.failure as Error).message ?? o.failure).slice(0, 300)] : [],
        policyRevision: o.revision,
        taskId: "",
        runnerId: "",
        outcome: o.outcome,
        details: {
          protocol: rc.protocol,
          ...(rc.tool ? { tool: rc.tool } : {}),
          duration_ms: durationMs,
          ...(o.result !== undefined ? { result_digest: digestOf(o.result) } : {}),
        },
      })
      .catch((err: unknown) =>
        rc.logger.error({ err: String(err) }, "the outcome of an upstream request was not audited"),
      )
      .finally(done),
  );
}

/** Outcome records scheduled and not yet appended (see {@link settleUpstreamOutcomes}). */
const pendingOutcomes = new Set<Promise<void>>();

/** Waits for every scheduled outcome record: the edge calls it before closing the store. */
export async function settleUpstreamOutcomes(): Promise<void> {
  await Promise.all([...pendingOutcomes]);
}

/** Creates the upstream-tool operations. */
export function createUpstreamOperations(deps: UpstreamOperationsDeps): UpstreamOperations {
  const { pipeline, store } = deps;
  const pinCacheMs = deps.pinCacheMs ?? 5000;
  /** Pin state by "<server>/<tool>", as last read or written by this edge. */
  const pins = new Map<string, { digest: string; approved: boolean; at: number }>();

  /** Records the definition an upstream serves; resolves to whether it is approved. */
  async function observe(rc: RequestContext | null, t: UpstreamTool): Promise<boolean> {
    const key = `${t.server}/${t.definition.name}`;
    const memo = pins.get(key);
    if (memo && memo.digest === t.digest && Date.now() - memo.at < pinCacheMs) return memo.approved;
    const { pin, change } = await store.observeToolDefinition(
      t.server,
      t.definition.name,
      t.digest,
      t.canonical,
      Date.now(),
    );
    const approved = pinApproved(pin);
    pins.set(key, { digest: t.digest, approved, at: Date.now() });
    if (change !== "unchanged") await auditPinChange(rc, pin, change);
    return approved;
  }

  async function auditPinChange(rc: RequestContext | null, pin: ToolPin, change: PinChange) {
    const outcome =
      change === "pinned" ? "pinned" : change === "changed" ? "pending_approval" : "restored";
    await pipeline.audit({
      time: Date.now(),
      traceId: rc?.traceId ?? "",
      principal: rc?.principal ?? null,
      operation: "tool_definition",
      params: { server: pin.server, tool: pin.tool },
      decision: "none",
      reasons:
        change === "changed"
          ? [
              `the definition of ${pin.server}/${pin.tool} changed since it was approved; hidden and refused until an admin approves ${pin.seenDigest}`,
            ]
          : [],
      policyRevision: "",
      taskId: "",
      runnerId: "",
      outcome,
      details: {
        approved_digest: pin.approvedDigest,
        seen_digest: pin.seenDigest,
        approved_by: pin.approvedBy,
      },
    });
  }

  const callerOf = (rc: RequestContext) => upstreamCaller(deps, rc);

  async function upstreamTool(
    rc: RequestContext,
    server: string,
    tool: string,
  ): Promise<UpstreamTool> {
    const upstreams = deps.upstreams;
    if (!upstreams?.names().includes(server)) {
      throw new GatewayError(
        "invalid_argument",
        `no upstream MCP server named "${server.slice(0, 40)}"`,
      );
    }
    const found = (await upstreams.tools(server, callerOf(rc))).find(
      (t) => t.definition.name === tool,
    );
    if (!found) {
      throw new GatewayError(
        "invalid_argument",
        `upstream ${server} has no tool "${tool.slice(0, 80)}" (call tools/list)`,
      );
    }
    return found;
  }

  return {
    async discoverTools(rc) {
      const candidates: UpstreamTool[] = [];
      const unavailable: string[] = [];
      for (const server of deps.upstreams?.names() ?? []) {
        try {
          for (const t of (await deps.upstreams?.tools(server, callerOf(rc))) ?? []) {
            if (await observe(rc, t)) candidates.push(t);
          }
        } catch (err) {
          unavailable.push(err instanceof Error ? err.message : String(err));
          rc.logger.warn({ err: String(err), upstream: server }, "upstream tools not listed");
        }
      }
      let operations: readonly string[] = [];
      let visible: ReadonlySet<string> = new Set();
      try {
        const d = await pipeline.authorize(
          rc,
          {
            operation: "list_tools",
            workspace: "",
            ...(candidates.length > 0
              ? { catalog: candidates.map((t) => ({ server: t.server, tool: t.definition.name })) }
              : {}),
          },
          { params: { upstream_tools: candidates.length } },
        );
        operations = d.operations;
        visible = new Set(d.tools);
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.PermissionDenied)) throw err;
      }
      return {
        operations,
        upstream: candidates.filter((t) => visible.has(`${t.server}/${t.definition.name}`)),
        unavailable,
      };
    },

    async callUpstreamTool(rc, call, options) {
      const t = await upstreamTool(rc, call.server, call.tool);
      const argsDigest = digestOf(call.arguments);
      const params: Record<string, unknown> = {
        server: call.server,
        tool: call.tool,
        arguments_digest: argsDigest,
        ...(deps.auditArguments === "full" ? { arguments: call.arguments } : {}),
      };
      if (!(await observe(rc, t))) {
        const reason = `the definition of tool ${call.tool} of server ${call.server} changed since it was approved; an admin must approve ${t.digest} (mcp-gateway tools approve ${call.server} ${call.tool} ${t.digest})`;
        await pipeline.audit({
          time: Date.now(),
          traceId: rc.traceId,
          principal: principalOf(rc),
          operation: "call_tool",
          params,
          decision: "deny",
          reasons: [reason],
          policyRevision: "",
          taskId: "",
          runnerId: "",
          outcome: "denied",
          details: { protocol: rc.protocol, source: rc.source, definition_digest: t.digest },
        });
        throw new ConnectError(`permission denied: ${reason}`, Code.PermissionDenied);
      }
      const d = t.definition;
      const decision = await pipeline.authorize(
        rc,
        {
          operation: "call_tool",
          workspace: "",
          upstream: {
            server: call.server,
            tool: call.tool,
            arguments: call.arguments,
            annotations: { ...(d.annotations ?? {}) },
            definition_digest: t.digest,
            ...(deps.policySeesDescriptions && d.description !== undefined
              ? { description: d.description }
              : {}),
          },
        },
        { params },
      );
      const started = performance.now();
      let result: CallToolResult | undefined;
      let failure: unknown;
      try {
        result = await deps.upstreams?.call(call.server, call.tool, call.arguments, {
          ...options,
          caller: callerOf(rc),
          definition: t.definition,
          listedFrom: t.config,
        });
        return result ?? { content: [], isError: true };
      } catch (err) {
        failure = err;
        throw err;
      } finally {
        auditUpstreamOutcome(pipeline, rc, {
          operation: "call_tool",
          params,
          revision: decision.revision,
          started,
          outcome: failure ? "failed" : result?.isError ? "tool_error" : "completed",
          failure,
          ...(result ? { result } : {}),
        });
      }
    },

    async listToolDefinitions(rc, req) {
      await pipeline.authorize(
        rc,
        { operation: "manage_tools", workspace: "" },
        { params: { action: "list", server: req.server, pending_only: req.pendingOnly } },
      );
      const all = await store.listToolPins(req.server === "" ? undefined : req.server);
      return req.pendingOnly ? all.filter((p) => !pinApproved(p)) : all;
    },

    async approveToolDefinition(rc, req) {
      if (!/^sha256:[0-9a-f]{64}$/.test(req.digest)) {
        throw new GatewayError("invalid_argument", "digest must be sha256:<64 hex digits>");
      }
      await pipeline.authorize(
        rc,
        { operation: "manage_tools", workspace: "" },
        { params: { action: "approve", server: req.server, tool: req.tool, digest: req.digest } },
      );
      const pin = await store.approveToolDefinition(
        req.server,
        req.tool,
        req.digest,
        principalOf(rc).sub,
        Date.now(),
      );
      if (!pin) {
        throw new GatewayError(
          "failed_precondition",
          `${req.server}/${req.tool} does not currently serve a definition with digest ${req.digest}`,
        );
      }
      pins.delete(`${req.server}/${req.tool}`);
      await pipeline.audit({
        time: Date.now(),
        traceId: rc.traceId,
        principal: principalOf(rc),
        operation: "tool_definition",
        params: { server: req.server, tool: req.tool },
        decision: "none",
        reasons: [],
        policyRevision: "",
        taskId: "",
        runnerId: "",
        outcome: "approved",
        details: { approved_digest: pin.approvedDigest, approved_by: pin.approvedBy },
      });
      return pin;
    },
  };
}
