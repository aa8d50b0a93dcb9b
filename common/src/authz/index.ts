import { ZERO_LIMITS } from "../policy/decision.js";
import type { PolicyInput } from "../policy/input.js";

/** Who is asking, as authenticated by the edge. */
export interface PrincipalLike {
  sub: string;
  roles: string[];
  tenant: string;
  scopes: string[];
}

/** The operation-specific part of a policy input. */
export type OperationInput = Pick<PolicyInput, "operation" | "workspace"> &
  Partial<
    Pick<
      PolicyInput,
      | "command"
      | "file"
      | "task"
      | "upstream"
      | "catalog"
      | "mcp_server"
      | "network"
      | "allow_hosts"
      | "sandbox"
    >
  >;

/** Where the request came from, for policy and audit. */
export interface RequestFacts {
  protocol: string;
  /** The door of the call ("rpc" or "mcp"); absent in the runner's re-check. */
  interface?: "rpc" | "mcp";
  /** MCP tool name, for calls through the MCP endpoint. */
  tool?: string;
  traceId: string;
  source: string;
  metadata: Record<string, string>;
}

const NO_LIMITS: PolicyInput["sandbox"] = { limits: { ...ZERO_LIMITS } };

/**
 * Builds the policy input document. The edge and the runner's re-check both
 * build it here, so the same request always produces the same document.
 */
export function buildPolicyInput(
  principal: PrincipalLike,
  op: OperationInput,
  facts: RequestFacts,
  now: number = Date.now(),
): PolicyInput {
  const input: PolicyInput = {
    principal: {
      sub: principal.sub,
      roles: [...principal.roles],
      tenant: principal.tenant,
      scopes: [...principal.scopes],
    },
    operation: op.operation,
    workspace: op.workspace,
    network: op.network ?? "unspecified",
    sandbox: op.sandbox ?? NO_LIMITS,
    metadata: { ...facts.metadata },
    request: { protocol: facts.protocol, trace_id: facts.traceId, source: facts.source },
    time: { now_ns: now * 1_000_000, rfc3339: new Date(now).toISOString() },
  };
  if (facts.interface) input.request.interface = facts.interface;
  if (facts.tool) input.request.tool = facts.tool;
  if (op.command) input.command = op.command;
  if (op.file) input.file = op.file;
  if (op.task) input.task = op.task;
  if (op.upstream) input.upstream = op.upstream;
  if (op.catalog) input.catalog = op.catalog;
  if (op.mcp_server) input.mcp_server = op.mcp_server;
  if (op.allow_hosts && op.allow_hosts.length > 0) input.allow_hosts = [...op.allow_hosts];
  return input;
}
