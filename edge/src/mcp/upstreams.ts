import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  type CallToolResult,
  ErrorCode,
  McpError,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import canonicalize from "canonicalize";
import type { Logger } from "pino";
import { z } from "zod";

/** A remote MCP server reached over Streamable HTTP with the gateway's own credentials. */
export const httpUpstreamSchema = z.object({
  /** Name used in namespaced tool names (`<name>__<tool>`), policy and audit. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "upstream name: 1-32 lowercase letters, digits or '-'"),
  kind: z.literal("http"),
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

/** Configuration of one upstream MCP server. */
export type UpstreamConfig = z.infer<typeof httpUpstreamSchema>;

/** A tool an upstream serves, with the digest of its definition. */
export interface UpstreamTool {
  server: string;
  /** The tool's definition as the upstream serves it. */
  definition: Tool;
  /** "sha256:<hex>" of the RFC 8785 form of name, title, description, schemas and annotations. */
  digest: string;
  /** That canonical JSON text. */
  canonical: string;
}

/** A failure to reach or use an upstream, with a message fit for clients. */
export class UpstreamError extends Error {
  override readonly name = "UpstreamError";
  /** Always "unavailable" (mapped to the wire by common/errors). */
  readonly code = "unavailable" as const;
}

/** Options of one call to an upstream tool. */
export interface UpstreamCallOptions {
  signal: AbortSignal;
  /** Progress notifications of the upstream, passed through. */
  onProgress?: (progress: number, total: number | undefined, message: string | undefined) => void;
}

/** The configured upstream MCP servers. */
export interface Upstreams {
  /** Names of the configured upstreams. */
  names(): readonly string[];
  /** The tools an upstream serves now (cached briefly). */
  tools(server: string): Promise<UpstreamTool[]>;
  /** Calls a tool on an upstream with the gateway's credentials. */
  call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    options: UpstreamCallOptions,
  ): Promise<CallToolResult>;
  close(): Promise<void>;
}

/** Options for {@link createUpstreams}. */
export interface UpstreamsOptions {
  upstreams: readonly UpstreamConfig[];
  logger: Logger;
  /** How long a tool list is reused before it is fetched again, ms. */
  toolsTtlMs?: number;
}

/** The digest of a tool definition: what pinning compares. */
export function toolDigest(t: Tool): { digest: string; canonical: string } {
  const pinned = {
    name: t.name,
    title: t.title ?? null,
    description: t.description ?? null,
    inputSchema: t.inputSchema,
    outputSchema: t.outputSchema ?? null,
    annotations: t.annotations ?? null,
  };
  const canonical = canonicalize(pinned) ?? "null";
  return { digest: `sha256:${createHash("sha256").update(canonical).digest("hex")}`, canonical };
}

function credentialHeader(c: NonNullable<UpstreamConfig["credential"]>): [string, string] {
  let secret: string | undefined;
  if (c.fromEnv) secret = process.env[c.fromEnv];
  else if (c.fromFile) secret = readFileSync(c.fromFile, "utf8").trim();
  if (!secret) throw new UpstreamError("its credential is empty or missing");
  return [c.header, `${c.prefix}${secret}`];
}

/**
 * Clients of the upstream MCP servers: one SDK client (and MCP session) per
 * upstream, connected on first use and again after a failure; every request
 * has the upstream's deadline; a tool list is reused for `toolsTtlMs`. The
 * gateway's configured credential is sent, never the caller's token.
 */
export function createUpstreams(options: UpstreamsOptions): Upstreams {
  const byName = new Map(options.upstreams.map((u) => [u.name, u]));
  const clients = new Map<string, Promise<Client>>();
  const lists = new Map<string, { at: number; tools: UpstreamTool[] }>();
  const ttl = options.toolsTtlMs ?? 5000;

  function config(server: string): UpstreamConfig {
    const u = byName.get(server);
    if (!u) throw new UpstreamError(`no upstream server named "${server.slice(0, 40)}"`);
    return u;
  }

  function describe(server: string, err: unknown): UpstreamError {
    if (err instanceof UpstreamError)
      return new UpstreamError(`upstream ${server}: ${err.message}`);
    const msg = err instanceof Error ? err.message : String(err);
    // SDK errors say what failed (HTTP status, timeout, connection refused); keep them short.
    return new UpstreamError(`upstream ${server}: ${msg.slice(0, 300)}`, { cause: err });
  }

  async function connect(u: UpstreamConfig): Promise<Client> {
    const headers: Record<string, string> = {};
    if (u.credential) {
      const [k, v] = credentialHeader(u.credential);
      headers[k] = v;
    }
    const client = new Client({ name: "mcp-security-gateway", version: "1" });
    const transport = new StreamableHTTPClientTransport(new URL(u.url), {
      requestInit: { headers },
      reconnectionOptions: {
        maxReconnectionDelay: 5000,
        initialReconnectionDelay: 500,
        reconnectionDelayGrowFactor: 2,
        maxRetries: 2,
      },
    });
    transport.onerror = (err) =>
      options.logger.debug({ err: String(err), upstream: u.name }, "upstream transport");
    client.onclose = () => clients.delete(u.name);
    await client.connect(transport, { timeout: u.timeoutMs });
    return client;
  }

  async function client(server: string): Promise<Client> {
    const u = config(server);
    let c = clients.get(server);
    if (!c) {
      c = connect(u);
      clients.set(server, c);
      c.catch(() => clients.delete(server));
    }
    return c;
  }

  /** Drops a client after a failure so that the next call reconnects. */
  function reset(server: string): void {
    const c = clients.get(server);
    clients.delete(server);
    lists.delete(server);
    c?.then((cl) => cl.close()).catch(() => undefined);
  }

  return {
    names: () => [...byName.keys()],

    async tools(server) {
      const cached = lists.get(server);
      if (cached && Date.now() - cached.at < ttl) return cached.tools;
      const u = config(server);
      try {
        const c = await client(server);
        const defs: Tool[] = [];
        let cursor: string | undefined;
        do {
          const page = await c.listTools(cursor ? { cursor } : {}, { timeout: u.timeoutMs });
          defs.push(...page.tools);
          cursor = page.nextCursor;
        } while (cursor && defs.length < 1000);
        const tools = defs.map((d) => ({ server, definition: d, ...toolDigest(d) }));
        lists.set(server, { at: Date.now(), tools });
        return tools;
      } catch (err) {
        reset(server);
        throw describe(server, err);
      }
    },

    async call(server, tool, args, callOptions) {
      const u = config(server);
      try {
        const c = await client(server);
        const result = await c.callTool({ name: tool, arguments: args }, undefined, {
          signal: callOptions.signal,
          timeout: u.timeoutMs,
          ...(callOptions.onProgress
            ? {
                onprogress: (p) => callOptions.onProgress?.(p.progress, p.total, p.message),
                resetTimeoutOnProgress: false,
              }
            : {}),
        });
        return result as CallToolResult;
      } catch (err) {
        if (callOptions.signal.aborted) throw describe(server, new Error("the call was cancelled"));
        // A JSON-RPC error of the upstream (e.g. -32602) is its answer, not a broken link;
        // anything else (closed connection, timeout, HTTP failure) reconnects next time.
        const answered =
          err instanceof McpError &&
          err.code !== ErrorCode.ConnectionClosed &&
          err.code !== ErrorCode.RequestTimeout;
        if (!answered) reset(server);
        throw describe(server, err);
      }
    },

    async close() {
      const all = [...clients.values()];
      clients.clear();
      await Promise.all(all.map((c) => c.then((cl) => cl.close()).catch(() => undefined)));
    },
  };
}
