/**
 * The input document of the gateway policy. The edge builds one for every
 * request; the runner rebuilds the same document for its re-check. Documented
 * with a JSON Schema in docs/policy/input.schema.json.
 */

/** Operations the policy decides. */
export const POLICY_OPERATIONS = [
  "execute",
  "read_file",
  "write_file",
  "delete_file",
  "list_directory",
  "get_task",
  "stream_task",
  "cancel_task",
  "list_audit",
  "list_tools",
  "call_tool",
  "list_resources",
  "read_resource",
  "list_prompts",
  "get_prompt",
  "complete",
  "manage_tools",
  "mcp_server",
  "reset_workspace",
] as const;

/** One of {@link POLICY_OPERATIONS}. */
export type PolicyOperation = (typeof POLICY_OPERATIONS)[number];

/**
 * Network mode requested by the client. "unspecified" means the policy's default ("none");
 * "restricted" is the runner's filtering egress proxy only (see {@link PolicyInput.allow_hosts}).
 */
export type RequestedNetwork = "unspecified" | "none" | "host" | "restricted";

/** Sandbox resource limits. In a request, 0 means "use the policy's cap". */
export interface SandboxLimits {
  /** Memory of the whole task in bytes: its cgroup's limit (incl. shmem/memfd/tmpfs), and RLIMIT_AS per process. */
  memory_bytes: number;
  /** Maximum number of processes of the task (cgroup pids.max and RLIMIT_NPROC). */
  max_processes: number;
  /** Largest file the task may write, in bytes (RLIMIT_FSIZE). */
  max_file_size_bytes: number;
  /** Maximum open file descriptors (RLIMIT_NOFILE). */
  max_open_files: number;
  /** CPU time in seconds (RLIMIT_CPU). */
  cpu_seconds: number;
  /** Bytes of stdout+stderr kept before output is cut. */
  max_output_bytes: number;
}

/** The authenticated caller, from the verified JWT. */
export interface PolicyPrincipal {
  /** JWT `sub`. */
  sub: string;
  /** Roles claimed by the token (e.g. "viewer", "developer", "admin"). */
  roles: string[];
  /** Tenant the principal belongs to. */
  tenant: string;
  /** OAuth scopes of the token. */
  scopes: string[];
}

/** The command of an "execute" request. */
export interface PolicyCommand {
  /** Program to run (a name looked up on PATH, or an absolute path). */
  command: string;
  /** Arguments, without the program. */
  args: string[];
  /** Environment variables requested by the client. */
  env: Record<string, string>;
  /** Working directory relative to the workspace ("" = workspace root). */
  cwd: string;
  /** Requested wall-clock timeout in seconds (0 = the policy's cap). */
  timeout_seconds: number;
}

/** The file of a file operation. */
export interface PolicyFile {
  /** Path relative to the workspace. */
  path: string;
  /** Access mode; must match the operation (read_file ↔ read, …). */
  mode: "read" | "write" | "delete" | "list";
}

/** The task addressed by get_task, stream_task and cancel_task. */
export interface PolicyTask {
  /** Task id. */
  id: string;
  /** `sub` of the principal that created the task. */
  owner: string;
  /** Tenant of the principal that created the task. */
  tenant: string;
}

/** The upstream MCP tool call of a call_tool request. */
export interface PolicyUpstreamCall {
  /** Upstream server name (from the edge configuration). */
  server: string;
  /** Tool name as the upstream knows it. */
  tool: string;
  /** The call's full arguments. */
  arguments: Record<string, unknown>;
  /** The tool's annotations as the upstream declares them (hints, not guarantees). */
  annotations: Record<string, unknown>;
  /** Digest of the pinned tool definition ("sha256:<hex>"). */
  definition_digest: string;
  /** The tool's description, only with the option mcp.policySeesDescriptions. */
  description?: string;
}

/** The upstream resource of a read_resource request. */
export interface PolicyUpstreamResource {
  /** Upstream server name (from the edge configuration). */
  server: string;
  /** The resource's URI as the upstream knows it. */
  resource: string;
}

/** The upstream prompt of a get_prompt request. */
export interface PolicyUpstreamPrompt {
  /** Upstream server name (from the edge configuration). */
  server: string;
  /** Prompt name as the upstream knows it. */
  prompt: string;
  /** The request's full arguments. */
  arguments: Record<string, string>;
}

/** What a complete request asks completions for: an argument of a prompt or of a resource template. */
export interface PolicyUpstreamCompletion {
  /** Upstream server name (from the edge configuration). */
  server: string;
  /** The prompt whose argument is completed (ref/prompt). */
  prompt?: string;
  /** The resource template (its URI template) whose variable is completed (ref/resource). */
  resource?: string;
  /** The argument being completed and what the user typed so far. */
  argument: { name: string; value: string };
}

/** The stdio MCP server of an mcp_server request (started in the sandbox on a runner). */
export interface PolicyMcpServer {
  /** Server name (from the edge configuration). */
  server: string;
  /** Program to run inside the sandbox. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Host directories bound read-only into the sandbox at the same path. */
  read_only_paths: string[];
}

/**
 * An upstream entry offered in a discovery request: a tool (list_tools), a resource or
 * resource template (list_resources, its URI or URI template), or a prompt (list_prompts).
 */
export interface PolicyCatalogEntry {
  server: string;
  tool?: string;
  resource?: string;
  prompt?: string;
}

/** The document passed to the policy as `input`. */
export interface PolicyInput {
  /** Who asks. */
  principal: PolicyPrincipal;
  /** What is asked. */
  operation: PolicyOperation;
  /** Present for "execute". */
  command?: PolicyCommand;
  /** Present for file operations. */
  file?: PolicyFile;
  /** Present for task operations. */
  task?: PolicyTask;
  /** Present for call_tool, read_resource, get_prompt and complete. */
  upstream?:
    | PolicyUpstreamCall
    | PolicyUpstreamResource
    | PolicyUpstreamPrompt
    | PolicyUpstreamCompletion;
  /** Present for mcp_server. */
  mcp_server?: PolicyMcpServer;
  /**
   * For list_tools, list_resources and list_prompts: the upstream entries to filter (the
   * decision's `tools` names those allowed, as "<server>/<tool, URI or prompt>").
   */
  catalog?: PolicyCatalogEntry[];
  /** Workspace id the request acts in. */
  workspace: string;
  /** Requested network mode. */
  network: RequestedNetwork;
  /**
   * With network "restricted": the hosts the request narrows the policy's egress allowlist
   * to (absent or empty: the policy's whole list).
   */
  allow_hosts?: string[];
  /** Requested sandbox options. */
  sandbox: { limits: SandboxLimits };
  /** Free-form client metadata (string values). */
  metadata: Record<string, string>;
  /**
   * Transport facts: protocol ("grpc" | "grpc-web" | "connect" | "mcp" | "runner"), trace id,
   * client address; for calls through the MCP endpoint also `interface: "mcp"` and the tool name.
   */
  request: {
    protocol: string;
    trace_id: string;
    source: string;
    interface?: "rpc" | "mcp";
    tool?: string;
  };
  /** Time of the request: Unix nanoseconds and RFC 3339. */
  time: { now_ns: number; rfc3339: string };
}
