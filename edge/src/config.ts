import { connectionLimitsSchema } from "@mcp-gateway/common/connection-guard";
import { z } from "zod";
import { upstreamSchema } from "./mcp/upstream-config.js";

/** A runner the edge may dispatch to. */
export const runnerTargetSchema = z.object({
  /** Runner identity; its certificate must carry spiffe://mcp-gateway/runner/<id>. */
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "runner id: letters, digits, '.', '_', '-'"),
  /** https URL of the runner's internal service. */
  url: z.url({ protocol: /^https$/, error: "runner url must be https:// (mTLS only)" }),
});

/** Where live audit export goes (see edge/src/audit/export.ts). */
export const auditExportTargetSchema = z.object({
  /** `file`: JSON lines appended to `path`; `stdout`: JSON lines; `otlp`: OpenTelemetry logs over OTLP/HTTP JSON. */
  type: z.enum(["file", "stdout", "otlp"]),
  /** File to append to (type file). */
  path: z.string().optional(),
  /** OTLP/HTTP base URL, e.g. http://collector:4318 (type otlp; /v1/logs is appended). */
  endpoint: z.url().optional(),
  /** Extra headers for OTLP requests (e.g. an API key). */
  headers: z.record(z.string(), z.string()).default({}),
  /**
   * Resume position file: the last delivered seq, written after each delivered
   * batch, so a restart continues there (at-least-once). Default:
   * <dataDir>/audit/export-<index>.pos.
   */
  positionFile: z.string().optional(),
});

/** The audit section of the edge configuration. */
export const auditConfigSchema = z.object({
  /** Signed checkpoints of the chain head, written outside the database. */
  checkpoints: z
    .object({
      /** Ed25519 key (PKCS#8 PEM, 0600); default <dataDir>/audit/checkpoint.key, created with <file>.pub. */
      keyFile: z.string().optional(),
      /** Checkpoint after this many records appended by this edge. */
      everyRecords: z.number().int().min(1).default(1000),
      /** And at least this often while the chain grows, ms. */
      everyMs: z.number().int().min(100).default(60_000),
      /** Append-only JSON lines file; default <dataDir>/audit/checkpoints.jsonl; "" disables. */
      file: z.string().optional(),
      /** Also write each checkpoint as a JSON line to stdout (journald/syslog, log shippers). */
      stdout: z.boolean().default(false),
      /** HTTP(S) endpoint receiving each checkpoint (`{seq}` in the URL is replaced), e.g. object storage with object lock. */
      webhook: z
        .object({
          url: z.url({ protocol: /^https?$/ }),
          method: z.enum(["POST", "PUT"]).default("POST"),
          headers: z.record(z.string(), z.string()).default({}),
        })
        .optional(),
    })
    .prefault({}),
  /** Live export of every record as it is appended (at-least-once, resumable). */
  export: z.array(auditExportTargetSchema).default([]),
  /** Bounds on refusal records (authentication failures, rate limits, origin and mTLS refusals). */
  securityEvents: z
    .object({
      /** Aggregation window, ms. */
      windowMs: z.number().int().min(100).default(10_000),
      /** Events of one kind from one source recorded one by one per window; the rest are counted. */
      perSource: z.number().int().min(0).default(3),
      /** Events recorded one by one per window in total; the rest are counted. */
      maxRecords: z.number().int().min(1).default(100),
      /** Sources counted separately per window; the rest are counted together as source "*". */
      maxSources: z.number().int().min(1).default(100),
    })
    .prefault({}),
});

/**
 * The edge's whole configuration, parsed once at start. Every field has an
 * embedded default so that `mcp-gateway dev` runs with no file at all.
 */
export const edgeConfigSchema = z.object({
  /** Edge identity, written into its client certificate (spiffe://mcp-gateway/edge/<id>). */
  id: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default("edge-local"),
  /** Address of the one public port. */
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(8081),
  /**
   * How the Node server serves Connect and gRPC-Web calls: "node" through Connect's Node adapter
   * (as native gRPC; fewer conversions per call — the default since issue 13), "fetch" through
   * `app.fetch` exactly as a fetch runtime would (ADR 0007). Both run the same routes,
   * interceptors and limits.
   */
  rpcPath: z.enum(["node", "fetch"]).default("node"),
  /** Directory for the SQLite store, dev keys and dev PKI. */
  dataDir: z.string().default(".data"),
  /** SQLite file (default: <dataDir>/gateway.db). */
  databasePath: z.string().optional(),
  /** PostgreSQL URL for HA (several edges share it); wins over databasePath. Env: DATABASE_URL. */
  databaseUrl: z.string().optional(),
  /**
   * Audit key file (one base64 secret per line, the first signs; mode 0600):
   * every audit record's hash is an HMAC under it, so database access alone
   * cannot rewrite the trail. Default: <dataDir>/audit/audit.key, created on
   * first start. Edges sharing one PostgreSQL database must share the file.
   */
  auditKeyFile: z.string().optional(),
  /** Audit trail: signed checkpoints, live export, security-event bounds (docs/security/audit.md). */
  audit: auditConfigSchema.prefault({}),
  /** Optional TLS for the public port (h2 + HTTP/1.1 via ALPN). Plaintext h2c + HTTP/1.1 otherwise. */
  publicTls: z.object({ certPath: z.string(), keyPath: z.string() }).optional(),
  /** mTLS material for talking to runners (default: the dev PKI in <dataDir>/pki). */
  runnerTls: z.object({ caPath: z.string(), certPath: z.string(), keyPath: z.string() }).optional(),
  /** Runners, by configuration. */
  runners: z.array(runnerTargetSchema).default([]),
  /** Milliseconds between runner probes and registry reads. */
  runnerProbeIntervalMs: z.number().int().min(100).default(1000),
  /**
   * Internal mTLS port where runners register themselves with heartbeats
   * (RegistryService). Off unless set; runners from `runners` are probed instead.
   */
  internalHost: z.string().optional(),
  internalPort: z.number().int().min(0).max(65535).optional(),
  /** A registered runner silent for this long is taken out and its running tasks fail "runner lost", ms. */
  heartbeatTimeoutMs: z.number().int().min(500).default(3000),
  /** Interval runners are asked to heartbeat at, ms. */
  heartbeatIntervalMs: z.number().int().min(100).default(1000),
  /**
   * Retention of task output in the store: output of finished tasks older than maxAgeMs goes,
   * then the oldest finished tasks' output until at most maxTotalBytes remain; pruned in the
   * background every intervalMs. Task records stay; audit records are never pruned.
   */
  outputRetention: z
    .object({
      maxAgeMs: z
        .number()
        .int()
        .min(60_000)
        .default(7 * 24 * 3_600_000),
      maxTotalBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(2 * 1024 * 1024 * 1024),
      intervalMs: z.number().int().min(1000).default(60_000),
    })
    .prefault({}),
  /** How long an accepted task may wait for a runner with room before it fails, ms. */
  queueTimeoutMs: z.number().int().min(0).default(30_000),
  /**
   * Active-passive: start as a standby that serves nothing until it holds the
   * "edge-active" lease in PostgreSQL (needs databaseUrl).
   */
  standby: z.boolean().default(false),
  /** TTL of the active lease, ms: a dead active is replaced within about this long. */
  activeLeaseTtlMs: z.number().int().min(500).default(2000),
  /** TTL of each edge's liveness lease, ms: tasks of a dead edge are adopted after it. */
  edgeLeaseTtlMs: z.number().int().min(500).default(4000),
  /** Policy bundle built by `opa build -t wasm` (default: policies/build/bundle.tar.gz). */
  policyBundle: z.string().default("policies/build/bundle.tar.gz"),
  /** JWT verification. Default: a local JWKS created in <dataDir>/auth on first start. */
  auth: z
    .object({
      jwksUrl: z.string().optional(),
      jwksFile: z.string().optional(),
      issuer: z.string().default("mcp-gateway-dev"),
      audience: z.string().default("mcp-gateway"),
      algorithms: z.array(z.string()).default(["ES256", "RS256", "EdDSA"]),
      clockToleranceSec: z.number().int().min(0).max(300).default(30),
      /** Longest accepted token lifetime (`exp - iat`), seconds; default 24 h. */
      maxTokenLifetimeSec: z.number().int().positive().default(86_400),
      /** Accepted JOSE `typ` values (case-insensitive, `application/` optional); add "JWT" if the IdP types access tokens so. */
      tokenTypes: z.array(z.string().min(1)).min(1).default(["at+jwt"]),
      /** Refuse tokens without a `typ` header. */
      requireTokenType: z.boolean().default(false),
      /** Audiences a token may name besides `audience` (default none: strict audience). */
      extraAudiences: z.array(z.string().min(1)).default([]),
      /**
       * Verified tokens remembered so a caller's next request skips the signature check (0: off).
       * Never past a token's `exp`; forgotten when the verification keys change.
       */
      verifiedTokenCacheSize: z.number().int().min(0).max(1_000_000).default(1024),
      /** How long a verified token is remembered, ms (a removed remote key stops working after it). */
      verifiedTokenTtlMs: z.number().int().min(0).max(600_000).default(30_000),
      rolesClaim: z.string().default("roles"),
      tenantClaim: z.string().default("tenant"),
      scopesClaim: z.string().default("scope"),
    })
    .prefault({}),
  /** Token bucket per principal. */
  rateLimit: z
    .object({
      ratePerSecond: z.number().positive().default(50),
      burst: z.number().int().positive().default(100),
    })
    .prefault({}),
  /**
   * gRPC server reflection (grpc.reflection.v1 and v1alpha) on the public port,
   * which grpcurl, grpcui, Postman and Kreya use to discover the API without
   * .proto files. It lists mcp.McpService, grpc.health.v1.Health and the
   * reflection services themselves, never an internal service.
   * `public` (default): no token needed — it reveals only the public schema;
   * `authenticated`: a valid bearer token is required; `off`: not served
   * (reflection calls get UNIMPLEMENTED). grpc.health.v1.Health is always public.
   */
  grpcReflection: z.enum(["public", "authenticated", "off"]).default("public"),
  /**
   * Connection discipline of the public port and the internal (registry) port:
   * total and per-address caps, header/request/keep-alive/idle deadlines,
   * HTTP/2 settings (see `connectionLimitsSchema`).
   */
  connections: connectionLimitsSchema.prefault({}),
  /** Origins allowed to call from browsers (exact match). Empty: no CORS. */
  corsOrigins: z.array(z.string()).default([]),
  /** Largest request body of any method (WriteFile), per message, in bytes; see requestLimits. */
  maxRequestBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 1024 * 1024),
  /**
   * Request bodies per method (issue 21): the limit applies to the declared
   * `content-length` before the body is read and to every message after
   * decompression. Methods not named get `defaultBytes`; none exceeds
   * `maxRequestBytes`.
   */
  /**
   * Authentication failures (bad, expired or missing tokens) answered at once per client address
   * and second; beyond the budget a refusal is answered after `failureDelayMs` (the socket is
   * held, no CPU): an unauthenticated flood in a closed loop then runs at the delay's pace
   * instead of taking the CPU authenticated callers need (issue 21). `failureDelayMs` 0 turns it
   * off. Behind a NAT every client shares an address: only failures are ever delayed.
   */
  authFailures: z
    .object({
      perAddressPerSecond: z.number().positive().default(20),
      burstPerAddress: z.number().int().min(1).default(40),
      failureDelayMs: z.number().int().min(0).max(10_000).default(250),
    })
    .prefault({}),
  requestLimits: z
    .object({
      /** Limit of every method not in `methods`, bytes (task ids, paths, filters). */
      defaultBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024),
      /** Limits by method name, bytes. */
      methods: z
        .record(z.string(), z.number().int().positive())
        .default({ ExecuteCommand: 1024 * 1024, WriteFile: 8 * 1024 * 1024 }),
      /** A compressed message may inflate to at most this many times its size (plus 4 KiB). */
      maxDecompressionRatio: z.number().int().min(1).default(32),
    })
    .prefault({}),
  /**
   * Bounds on what reads return (issue 21): GetTaskStatus returns a tail of
   * each stream (StreamTaskOutput has everything), audit pages have a server
   * maximum and a size cap, output followers are bounded, and every read
   * spends a per-principal byte budget next to the call-count rate limit.
   */
  reads: z
    .object({
      /** Bytes of stdout and of stderr GetTaskStatus returns (the last ones). */
      statusTailBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024),
      /** Most records per ListAuditEvents page (a larger page_size is lowered to it). */
      auditPageMax: z.number().int().positive().default(200),
      /** A ListAuditEvents page ends before its records exceed this many bytes. */
      auditResponseMaxBytes: z
        .number()
        .int()
        .positive()
        .default(4 * 1024 * 1024),
      /** Most concurrent StreamTaskOutput followers of one task on this edge. */
      followersPerTask: z.number().int().positive().default(32),
      /** Most concurrent StreamTaskOutput followers of one principal on this edge. */
      followersPerPrincipal: z.number().int().positive().default(16),
      /** Response bytes a principal may read per second, sustained. */
      bytesPerSecond: z
        .number()
        .int()
        .positive()
        .default(8 * 1024 * 1024),
      /** Response bytes a principal may read at once. */
      burstBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024 * 1024),
    })
    .prefault({}),
  /**
   * Concurrent-task quotas moved to the policy data (`gateway.defaults.tasks`,
   * `gateway.tenants.<tenant>.tasks`): the key is refused with that hint rather than
   * silently ignored.
   */
  quotas: z
    .never({
      error:
        "quotas moved to the policy data: set gateway.defaults.tasks / gateway.tenants.<tenant>.tasks {per_principal, per_tenant} (docs/policy/README.md)",
    })
    .optional(),
  /** Default and maximum wall-clock deadline for tasks, in seconds. */
  defaultTimeoutSeconds: z.number().int().positive().default(60),
  maxTimeoutSeconds: z.number().int().positive().default(3600),
  /** How long shutdown waits for in-flight work before closing, in ms. */
  drainTimeoutMs: z.number().int().min(0).default(10_000),
  /** The MCP endpoint (`/mcp`, Streamable HTTP) on the public port. */
  mcp: z
    .object({
      /** Serve `/mcp` and the protected-resource metadata. */
      enabled: z.boolean().default(true),
      /**
       * Base URL clients use to reach the edge (e.g. https://gateway.example.com), for the
       * resource named in the RFC 9728 metadata and in 401 challenges. Default: the request's own
       * origin — set it in production, behind proxies.
       */
      publicUrl: z.url().optional(),
      /** Authorization servers named in the protected-resource metadata (your IdP's issuer URL). */
      authorizationServers: z.array(z.url()).default([]),
      /** Scopes a token must carry to use `/mcp` (403 insufficient_scope otherwise). */
      requiredScopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).default([]),
      /** Scopes advertised in the metadata (default: the required ones). */
      scopesSupported: z.array(z.string()).optional(),
      /** Largest JSON-RPC request body, bytes (413 beyond). */
      maxBodyBytes: z
        .number()
        .int()
        .positive()
        .default(4 * 1024 * 1024),
      /**
       * Upstream MCP servers whose tools the endpoint offers as `<name><toolSeparator><tool>`,
       * each call decided by policy on its full arguments and audited (docs/mcp.md).
       */
      upstreams: z
        .array(upstreamSchema)
        .default([])
        .refine((list) => new Set(list.map((u) => u.name)).size === list.length, {
          message: "upstream names must be unique",
        })
        .refine((list) => list.filter((u) => !u.namespace).length <= 1, {
          message:
            "at most one upstream may offer its tools without a namespace (namespace: false)",
        }),
      /** Separator of namespaced upstream tool names. */
      toolSeparator: z
        .string()
        .regex(/^[A-Za-z0-9_.-]{1,4}$/)
        .default("__"),
      /** Send upstream tool descriptions to the policy (to refuse instructions hidden in them). */
      policySeesDescriptions: z.boolean().default(false),
      /** Audit upstream call arguments in full, or only their digest (default). */
      auditArguments: z.enum(["digest", "full"]).default("digest"),
      /** Largest output per stream returned in a tool result, bytes (flagged truncated beyond). */
      maxResultBytes: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024),
    })
    .prefault({}),
  logLevel: z.string().default("info"),
  /** OTLP/HTTP traces endpoint; spans are exported only when set. */
  otlpEndpoint: z.url().optional(),
});

/** Parsed edge configuration. */
export type EdgeConfig = z.infer<typeof edgeConfigSchema>;
/** Edge configuration as written by a person (defaults filled in by parsing). */
export type EdgeConfigInput = z.input<typeof edgeConfigSchema>;
/** Parsed audit configuration. */
export type AuditConfig = z.infer<typeof auditConfigSchema>;
/** A runner target. */
export type RunnerTarget = z.infer<typeof runnerTargetSchema>;
