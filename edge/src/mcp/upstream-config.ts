import { posix } from "node:path";
import { z } from "zod";

/*
 * The configuration schemas of upstream MCP servers, apart from the code that talks to them:
 * the edge validates its configuration at start without loading the MCP SDK, which it loads
 * only when MCP is first used (cold start, issue 17).
 */

const absolutePath = z
  .string()
  .max(4096)
  .refine((p) => p.startsWith("/") && p !== "/" && posix.normalize(p) === p, {
    message: "must be an absolute, normalized directory other than /",
  });

/**
 * A stdio MCP server run by a runner inside the task sandbox: one process per tenant and
 * server, started on first use, stopped when idle, restarted after a crash with backoff.
 */
export const stdioUpstreamSchema = z.object({
  /** Name used in namespaced tool names (`<name>__<tool>`), policy and audit. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "upstream name: 1-32 lowercase letters, digits or '-'"),
  kind: z.literal("stdio"),
  /** Offer the tools as `<name><separator><tool>` (default); as for remote upstreams. */
  namespace: z.boolean().default(true),
  /** Program inside the sandbox (a name on the sandbox PATH or an absolute path). */
  command: z.string().min(1).max(4096),
  /** Its arguments (no shell). */
  args: z.array(z.string().max(65_536)).max(256).default([]),
  /** Environment added to the sandbox's minimal one (loader variables are refused by the runner). */
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/), z.string().max(65_536))
    .default({}),
  /** The tenant's workspace the server sees at /workspace (its only writable directory). */
  workspace: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .refine((w) => w !== "." && w !== "..")
    .default("mcp"),
  /** "none" (default): no network at all; "host" only where policy grants it. */
  network: z.enum(["none", "host"]).default("none"),
  /** Requested limits; 0 or absent takes the policy's cap (never above it). */
  limits: z
    .object({
      memoryBytes: z.number().int().min(0),
      maxProcesses: z.number().int().min(0),
      maxFileSizeBytes: z.number().int().min(0),
      maxOpenFiles: z.number().int().min(0),
      cpuSeconds: z.number().int().min(0),
      maxOutputBytes: z.number().int().min(0),
    })
    .partial()
    .default({}),
  /**
   * Host directories bound read-only at the same path (the server's code); the runner refuses
   * any outside its own `mcpServerReadOnlyPaths`.
   */
  readOnlyPaths: z.array(absolutePath).max(16).default([]),
  /** Deadline of each call (and of the start), ms. */
  timeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
  /** The process is stopped after this long without calls, ms. */
  idleTimeoutMs: z.number().int().min(500).max(86_400_000).default(300_000),
  /** Lifetime of one process, ms (0: the policy's max_timeout_seconds, which also caps it). */
  lifetimeMs: z.number().int().min(0).max(86_400_000).default(0),
});

/** Configuration of one stdio upstream. */
export type StdioUpstreamConfig = z.infer<typeof stdioUpstreamSchema>;

/** A remote MCP server reached over Streamable HTTP with the gateway's own credentials. */
export const httpUpstreamSchema = z.object({
  /** Name used in namespaced tool names (`<name>__<tool>`), policy and audit. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "upstream name: 1-32 lowercase letters, digits or '-'"),
  kind: z.literal("http"),
  /**
   * Offer the tools as `<name><separator><tool>` (default). With false they keep their own
   * names — for an agent that uses one upstream through the gateway; at most one upstream may
   * do so, and a tool named like one of the gateway's own is not offered.
   */
  namespace: z.boolean().default(true),
  /** The server's MCP endpoint. */
  url: z.url({ protocol: /^https?$/, error: "upstream url must be http:// or https://" }),
  /**
   * The gateway's credential for this server, sent as a header (never the client's token):
   * the value comes from an environment variable or a file (trimmed), never from the config.
   */
  credential: z
    .object({
      header: z
        .string()
        .regex(/^[A-Za-z0-9-]{1,64}$/)
        .default("authorization"),
      /** Prefix of the header value, e.g. "Bearer ". */
      prefix: z.string().default("Bearer "),
      fromEnv: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
        .optional(),
      fromFile: z.string().optional(),
    })
    .refine((c) => (c.fromEnv === undefined) !== (c.fromFile === undefined), {
      message: "credential needs exactly one of fromEnv or fromFile",
    })
    .optional(),
  /** Deadline of each call to this server, ms. */
  timeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
});

/** One upstream MCP server: remote (`kind: "http"`) or sandboxed on a runner (`kind: "stdio"`). */
export const upstreamSchema = z.discriminatedUnion("kind", [
  httpUpstreamSchema,
  stdioUpstreamSchema,
]);

/** Configuration of one upstream MCP server. */
export type UpstreamConfig = z.infer<typeof upstreamSchema>;
export type HttpUpstreamConfig = z.infer<typeof httpUpstreamSchema>;
