import type { SandboxLimits } from "./input.js";

/** Caps returned with a decision. The runner applies min(requested, cap); they never loosen a request. */
export interface Obligations {
  /** Largest wall-clock timeout in seconds. */
  max_timeout_seconds: number;
  /**
   * Network mode the sandbox must use. "restricted": an empty network namespace whose only
   * way out is the runner's egress proxy, admitting {@link Obligations.egress}'s hosts.
   */
  network: "none" | "host" | "restricted";
  /** Resource caps. */
  limits: SandboxLimits;
  /**
   * What the egress proxy of a "restricted" task admits (absent from bundles older than
   * network "restricted"; empty list and zero caps for other modes).
   */
  egress?: EgressObligation;
  /**
   * What the kernel lets an execute request's processes run (the runner applies it with
   * Landlock inside the sandbox). Only execute decisions carry it.
   */
  exec?: ExecObligation;
  /**
   * Size of a workspace's own filesystem, applied by the runner when it creates the workspace
   * (kernel-enforced bytes and inodes). Absent from policies that do not set it.
   */
  workspace?: WorkspaceObligation;
}

/** The egress allowlist and caps of a network "restricted" task (docs/security/sandbox.md). */
export interface EgressObligation {
  /**
   * Entries the proxy admits: "host", "host:port", "*.domain[:port]", IP literals
   * ("203.0.113.7", "[2001:db8::1]:443") and CIDR ranges ("10.0.0.0/8"); a range is also
   * what lets a name resolve into private, loopback or link-local addresses.
   */
  allow_hosts: readonly string[];
  /** Bytes the task may move through the proxy, both directions together (0: none). */
  max_bytes: number;
  /** Proxy connections the task may hold open at once (0: none). */
  max_connections: number;
}

/** Quota of a workspace (see docs/adr/0012-resource-isolation-cgroups-and-workspace-images.md). */
export interface WorkspaceObligation {
  /** Bytes the workspace may hold. */
  max_bytes: number;
  /** Files and directories the workspace may hold. */
  max_inodes: number;
}

/** Execution rules of an execute decision, enforced by the kernel (see docs/security/sandbox.md). */
export interface ExecObligation {
  /** The only programs that may be executed (with their interpreters); [] = any but the denied. */
  allowed_programs: readonly string[];
  /** Program names never executable (nor readable in the PATH directories) → reason. */
  denied_programs: Readonly<Record<string, string>>;
  /** Program name prefixes handled like denied_programs → reason. */
  denied_prefixes: Readonly<Record<string, string>>;
  /** Programs in the workspace and /tmp may be executed. */
  workspace_exec: boolean;
  /** The workspace's `.git` directory is mounted read-only for the task (tenant setting). */
  git_read_only?: boolean;
}

/**
 * The outcome of a policy evaluation, as used by TypeScript callers. Read-only:
 * the engine hands out the same frozen Decision for identical policy results.
 */
export interface Decision {
  /** True only when the policy allowed the request. */
  readonly allow: boolean;
  /** Human sentences explaining a denial (empty when allowed). They reach the client. */
  readonly denyReasons: readonly string[];
  /** Human sentences about adjustments (e.g. clamped limits). */
  readonly warnings: readonly string[];
  /** Caps to enforce when allowed. */
  readonly obligations: Readonly<Obligations> & { readonly limits: Readonly<SandboxLimits> };
  /** Revision of the bundle that decided ("" when no bundle was loaded). */
  readonly revision: string;
  /**
   * Operations the principal's roles permit: filled only by an allowed
   * `list_tools` decision (MCP `tools/list` shows those tools), empty otherwise.
   */
  readonly operations: readonly string[];
  /**
   * Upstream MCP tools ("<server>/<tool>") of the request's catalog that the
   * principal may call: filled only by an allowed `list_tools` decision.
   */
  readonly tools: readonly string[];
  /**
   * Whose directory the request's workspace name refers to: "principal" (the default
   * policy: each member has their own) or "tenant" (a workspace the tenant shares). Absent
   * in decisions of bundles older than this field: the runner then uses the tenant's.
   */
  readonly workspaceScope?: "principal" | "tenant";
}

/** Names of the numeric sandbox limits, in a fixed order. */
export const LIMIT_NAMES: readonly (keyof SandboxLimits)[] = [
  "memory_bytes",
  "max_processes",
  "max_file_size_bytes",
  "max_open_files",
  "cpu_seconds",
  "max_output_bytes",
];

/** Limits of all zeros: "the default" in a request, nothing allowed in a denial's obligations. */
export const ZERO_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  memory_bytes: 0,
  max_processes: 0,
  max_file_size_bytes: 0,
  max_open_files: 0,
  cpu_seconds: 0,
  max_output_bytes: 0,
});

/**
 * Obligations attached to fail-closed denials: no network and zero caps. A denied
 * request is never run, so these only keep the Decision shape total.
 */
export const DENY_OBLIGATIONS: Readonly<Obligations> = Object.freeze({
  max_timeout_seconds: 0,
  network: "none",
  limits: ZERO_LIMITS,
});

/** Builds a denial with one reason (used for every fail-closed path). */
export function denyDecision(reason: string, revision: string): Decision {
  return {
    allow: false,
    denyReasons: [reason],
    warnings: [],
    obligations: { ...DENY_OBLIGATIONS, limits: { ...DENY_OBLIGATIONS.limits } },
    revision,
    operations: [],
    tools: [],
  };
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === "string");
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return isRecord(v) && Object.values(v).every((s) => typeof s === "string");
}

function parseExec(v: unknown): ExecObligation {
  if (!isRecord(v)) throw new DecisionShapeError("obligations.exec is not an object");
  const { allowed_programs, denied_programs, denied_prefixes, workspace_exec, git_read_only } = v;
  if (!isStringArray(allowed_programs)) {
    throw new DecisionShapeError("obligations.exec.allowed_programs is not a string array");
  }
  if (!isStringRecord(denied_programs) || !isStringRecord(denied_prefixes)) {
    throw new DecisionShapeError("obligations.exec denied_programs/denied_prefixes are not maps");
  }
  if (typeof workspace_exec !== "boolean") {
    throw new DecisionShapeError("obligations.exec.workspace_exec is not a boolean");
  }
  if (git_read_only !== undefined && typeof git_read_only !== "boolean") {
    throw new DecisionShapeError("obligations.exec.git_read_only is not a boolean");
  }
  return {
    allowed_programs,
    denied_programs,
    denied_prefixes,
    workspace_exec,
    ...(git_read_only === undefined ? {} : { git_read_only }),
  };
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function parseEgress(v: unknown): EgressObligation {
  if (
    !isRecord(v) ||
    !isStringArray(v.allow_hosts) ||
    !isNonNegativeInt(v.max_bytes) ||
    !isNonNegativeInt(v.max_connections)
  ) {
    throw new DecisionShapeError(
      "obligations.egress needs allow_hosts (strings) and non-negative max_bytes, max_connections",
    );
  }
  return { allow_hosts: v.allow_hosts, max_bytes: v.max_bytes, max_connections: v.max_connections };
}

function parseWorkspace(v: unknown): WorkspaceObligation {
  if (!isRecord(v) || !isPositiveInt(v.max_bytes) || !isPositiveInt(v.max_inodes)) {
    throw new DecisionShapeError(
      "obligations.workspace needs positive integers max_bytes and max_inodes",
    );
  }
  return { max_bytes: v.max_bytes, max_inodes: v.max_inodes };
}

/** Thrown by {@link parseDecision} when the policy result has the wrong shape. */
export class DecisionShapeError extends Error {
  /** Stable error code. */
  readonly code = "POLICY_DECISION_SHAPE" as const;
}

/**
 * Validates the raw result of the policy entrypoint and converts it into a
 * {@link Decision}. Hand-written rather than zod because it runs on every
 * request (see test/bench/policy.bench.ts).
 *
 * @throws DecisionShapeError when any field is missing or of the wrong type,
 * when caps are not positive integers, or when allow=true comes with deny reasons.
 */
export function parseDecision(raw: unknown, revision: string): Decision {
  if (!isRecord(raw)) throw new DecisionShapeError("the policy result is not an object");
  const { allow, deny_reasons, warnings, obligations, operations, tools, workspace_scope } = raw;
  if (
    workspace_scope !== undefined &&
    workspace_scope !== "principal" &&
    workspace_scope !== "tenant"
  ) {
    throw new DecisionShapeError('workspace_scope is not "principal" or "tenant"');
  }
  if (typeof allow !== "boolean") throw new DecisionShapeError("allow is not a boolean");
  if (!isStringArray(deny_reasons))
    throw new DecisionShapeError("deny_reasons is not a string array");
  if (!isStringArray(warnings)) throw new DecisionShapeError("warnings is not a string array");
  if (!isRecord(obligations)) throw new DecisionShapeError("obligations is not an object");
  const { max_timeout_seconds, network, limits, exec, workspace, egress } = obligations;
  if (!isPositiveInt(max_timeout_seconds)) {
    throw new DecisionShapeError("obligations.max_timeout_seconds is not a positive integer");
  }
  if (network !== "none" && network !== "host" && network !== "restricted") {
    throw new DecisionShapeError('obligations.network is not "none", "host" or "restricted"');
  }
  if (!isRecord(limits)) throw new DecisionShapeError("obligations.limits is not an object");
  const out: SandboxLimits = { ...DENY_OBLIGATIONS.limits };
  for (const name of LIMIT_NAMES) {
    const v = limits[name];
    if (!isPositiveInt(v)) {
      throw new DecisionShapeError(`obligations.limits.${name} is not a positive integer`);
    }
    out[name] = v;
  }
  if (operations !== undefined && !isStringArray(operations)) {
    throw new DecisionShapeError("operations is not a string array");
  }
  if (tools !== undefined && !isStringArray(tools)) {
    throw new DecisionShapeError("tools is not a string array");
  }
  if (allow && deny_reasons.length > 0) {
    throw new DecisionShapeError("allow is true but deny_reasons is not empty");
  }
  return {
    allow,
    denyReasons:
      !allow && deny_reasons.length === 0
        ? ["the policy denied the request without a reason"]
        : deny_reasons,
    warnings,
    obligations: {
      max_timeout_seconds,
      network,
      limits: out,
      ...(exec === undefined ? {} : { exec: parseExec(exec) }),
      ...(workspace === undefined ? {} : { workspace: parseWorkspace(workspace) }),
      ...(egress === undefined ? {} : { egress: parseEgress(egress) }),
    },
    revision,
    operations: allow && operations !== undefined ? operations : [],
    tools: allow && tools !== undefined ? tools : [],
    ...(workspace_scope === undefined ? {} : { workspaceScope: workspace_scope }),
  };
}
