import { connectionLimitsSchema } from "@mcp-gateway/common/connection-guard";
import { z } from "zod";

/**
 * The runner's whole configuration, parsed once at start. Defaults make
 * `mcp-gateway dev` work with no file.
 */
export const runnerConfigSchema = z.object({
  /** Runner identity: its certificate carries spiffe://mcp-gateway/runner/<id>. */
  id: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default("runner-local"),
  /** Address of the internal mTLS port. */
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(9443),
  /** Directory for workspaces and, in development, the dev PKI. */
  dataDir: z.string().default(".data"),
  /** Where workspaces live (default: <dataDir>/workspaces). */
  workspaceRoot: z.string().optional(),
  /** mTLS material (default: the dev PKI in <dataDir>/pki). */
  tls: z.object({ caPath: z.string(), certPath: z.string(), keyPath: z.string() }).optional(),
  /** Edge identities allowed to call (their certificates' spiffe ids are derived from these). */
  allowedEdges: z.array(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/)).default(["edge-local"]),
  /**
   * Monitoring clients (e.g. Prometheus) allowed to read GET /metrics and
   * GET /health on the runner port with a certificate naming
   * spiffe://mcp-gateway/monitor/<id>; they can call nothing else.
   */
  allowedMonitors: z.array(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/)).default([]),
  /** Policy bundle for the re-check (same revision as the edge's). */
  policyBundle: z.string().default("policies/build/bundle.tar.gz"),
  /** Tasks running at once; more are refused with ResourceExhausted. */
  maxConcurrentTasks: z.number().int().positive().default(32),
  /**
   * Connection discipline of the runner port (caps, handshake/first-stream/idle
   * deadlines, HTTP/2 settings); only edges and monitors connect, so the
   * per-address cap is low.
   */
  connections: connectionLimitsSchema.prefault({ maxConnectionsPerAddress: 64 }),
  /**
   * Bytes of task events the runner holds at most: running tasks reserve 2 × their output cap,
   * finished ones hold their events until the edge releases them (or retentionMs passes). A
   * task that does not fit is refused with ResourceExhausted (the edge tries another runner).
   */
  maxRetainedOutputBytes: z
    .number()
    .int()
    .min(1024 * 1024)
    .default(512 * 1024 * 1024),
  /** How long finished tasks stay attachable unless the edge released them earlier, ms. */
  retentionMs: z
    .number()
    .int()
    .positive()
    .default(15 * 60_000),
  /** Largest file read or written through the file API, bytes. */
  maxFileBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 1024 * 1024),
  /** Path of bwrap (default: looked up on PATH). */
  bwrapPath: z.string().optional(),
  /** Path of the seccomp/file helper built from runner/native (default: runner/native/build/mcp-sandbox-helper). */
  helperPath: z.string().optional(),
  /**
   * Per-task cgroups (memory incl. shmem/memfd/tmpfs, swap 0, pids): "auto" uses a delegated
   * cgroup v2 subtree, else the cgroup v1 memory and pids controllers; "off" never does.
   */
  cgroups: z.enum(["auto", "off"]).default("auto"),
  /**
   * Refuse tasks unless per-task memory and pids cgroups are enforced (readiness reports the
   * problem). Recommended for production; false keeps the rlimit layers alone on hosts without
   * a usable cgroup and says so in Info and /health/ready.
   */
  requireCgroups: z.boolean().default(false),
  /**
   * Landlock (what a task may execute and write, enforced by the kernel from the decision's
   * obligations): "auto" applies it when the kernel offers it; "off" never does.
   */
  landlock: z.enum(["auto", "off"]).default("auto"),
  /**
   * Refuse tasks unless Landlock is applied to them (readiness reports the problem).
   * Recommended for production; false runs tasks without the layer on kernels without it
   * and says so in Info and /health/ready.
   */
  requireLandlock: z.boolean().default(false),
  /**
   * Most prepared sandbox launchers held ready (forked, in a fresh cgroup, waiting for exactly
   * one task; ADR 0020). The pool adapts between one and this; 0 turns it off (every task
   * starts its own launcher, ~10 ms slower).
   */
  preparedSandboxes: z.number().int().min(0).max(64).default(4),
  /**
   * Whether pool members also run bwrap ahead of their task, the workspace mounted on a slot
   * when one is taken (ADR 0028; needs root; ~8 ms faster per task). Tasks whose sandbox
   * cannot be prepared (stdin, network "restricted", read-only paths, git_read_only) use
   * prepared launchers either way.
   */
  preparedNamespaces: z.boolean().default(true),
  /** Memory limit of all tasks of this runner together (their parent cgroup), bytes; 0 = none. */
  tasksMemoryBytes: z.number().int().min(0).default(0),
  /**
   * Kernel-enforced quota per workspace: "loop-image" makes each workspace its own ext4
   * filesystem in a sparse image, loop-mounted (needs root and e2fsprogs); "none" has no quota
   * beyond the host disk. Recommended for production: "loop-image".
   */
  workspaceQuota: z
    .object({
      mode: z.enum(["loop-image", "none"]).default("none"),
      /** Bytes one workspace may hold at most (the policy's workspace obligation may set less). */
      bytes: z
        .number()
        .int()
        .min(16 * 1024 * 1024)
        .default(1024 * 1024 * 1024),
      /** Files and directories one workspace may hold at most (the policy may set less). */
      inodes: z.number().int().min(64).default(100_000),
    })
    .default({ mode: "none", bytes: 1024 * 1024 * 1024, inodes: 100_000 }),
  /**
   * Host directories stdio MCP servers may have bound read-only (their code, e.g. a
   * node_modules tree): an edge's request to bind a path outside them is refused. Never list
   * the runner's data directory or the workspace root.
   */
  mcpServerReadOnlyPaths: z
    .array(
      z
        .string()
        .refine((p) => p.startsWith("/") && p !== "/", "an absolute directory other than /"),
    )
    .default([]),
  /** Stdio MCP servers running at once; more are refused with ResourceExhausted. */
  maxMcpServers: z.number().int().min(0).default(16),
  /**
   * Network "restricted" (docs/adr/0018-egress-proxy.md): each such task gets its own egress
   * proxy on a unix socket in a fresh directory under socketRoot (keep the path short: a
   * socket path has at most 107 bytes).
   */
  egress: z
    .object({
      /** Parent directory of the per-task socket directories (default: the OS temp dir). */
      socketRoot: z.string().optional(),
      /** Milliseconds the proxy waits for a request head or an upstream connection. */
      timeoutMs: z.number().int().positive().default(10_000),
      /**
       * TEST ONLY: the proxy's resolver answers from `hosts` (name → addresses) instead of
       * DNS, and connects to `dial["<address>:<port>"]` ("127.0.0.1:<port>") instead of the
       * address, so tests reach local servers under names like allowed.test. Refused unless
       * the runner's environment has MCP_GATEWAY_TESTING=1: a production config cannot turn
       * it on.
       */
      testResolver: z
        .object({
          hosts: z.record(z.string(), z.array(z.string())).default({}),
          dial: z.record(z.string(), z.string().regex(/^127\.0\.0\.1:[0-9]{1,5}$/)).default({}),
        })
        .optional()
        .refine((v) => v === undefined || process.env.MCP_GATEWAY_TESTING === "1", {
          message:
            "egress.testResolver is for tests only: it is refused unless MCP_GATEWAY_TESTING=1",
        }),
    })
    .default({ timeoutMs: 10_000 }),
  /** Host uid/gid the sandbox runs as when the runner is root. */
  sandboxUid: z.number().int().min(1).default(65534),
  sandboxGid: z.number().int().min(1).default(65534),
  /**
   * Internal mTLS URLs of the edges to register with (heartbeats to each);
   * empty: edges must list this runner in their configuration instead.
   */
  edges: z
    .array(z.url({ protocol: /^https$/, error: "edge urls must be https:// (mTLS)" }))
    .default([]),
  /** URL edges should dial, as registered (default: the listening address). */
  advertiseUrl: z.url({ protocol: /^https$/ }).optional(),
  /** Interval between heartbeats, ms (edges may ask for another). */
  heartbeatIntervalMs: z.number().int().min(100).default(1000),
  /** On SIGTERM, how long running tasks may finish before they are killed, ms. */
  drainTimeoutMs: z.number().int().min(0).default(10_000),
  logLevel: z.string().default("info"),
  /** OTLP/HTTP traces endpoint; spans are exported only when set. */
  otlpEndpoint: z.url().optional(),
});

/** Parsed runner configuration. */
export type RunnerConfig = z.infer<typeof runnerConfigSchema>;
/** Runner configuration as written by a person. */
export type RunnerConfigInput = z.input<typeof runnerConfigSchema>;
