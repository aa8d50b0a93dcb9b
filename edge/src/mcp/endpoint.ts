import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, type ConnectError } from "@connectrpc/connect";
import { toConnectError } from "@mcp-gateway/common/errors";
import {
  clientTraceLink,
  endSpan,
  ROOT_CONTEXT,
  SpanKind,
  startSpan,
  type Tracer,
  traceparentOf,
} from "@mcp-gateway/common/tracing";
import { VERSION } from "@mcp-gateway/common/version";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  CancelledNotificationSchema,
  CompleteRequestSchema,
  type ContentBlock,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  type LoggingLevel,
  McpError,
  type PromptMessage,
  ReadResourceRequestSchema,
  type RequestId,
  type ServerCapabilities,
  SUPPORTED_PROTOCOL_VERSIONS,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Logger } from "pino";
import { z } from "zod";
import type { AuthFailurePacer } from "../http/pre-auth.js";
import type { EdgeMetrics } from "../metrics.js";
import type { Operations } from "../operations/operations.js";
import type { RequestContext } from "../pipeline/context.js";
import type { PrincipalRecord } from "../store/types.js";
import { LOGGING_LEVELS, type UpstreamLogMessage } from "./http-call.js";
import { MCP_PATH, RESOURCE_METADATA_PATH } from "./paths.js";
import {
  describeIssues,
  GATEWAY_TOOLS,
  type GatewayTool,
  gatewayToolDefinitions,
  type ToolCallContext,
} from "./tools.js";

/** Options for {@link createMcpEndpoint}. */
export interface McpEndpointOptions {
  /** The operations layer: every tool call goes through it. */
  ops: Operations;
  /** Verifies the Authorization header (the same authenticator as the RPC API). */
  authenticate: (authorization: string | null) => Promise<PrincipalRecord>;
  /** Token bucket per principal (issuer + tenant + subject), shared with the RPC API: 0 = allowed, else ms to wait. */
  rateLimit: (principal: PrincipalRecord) => number;
  /** Paces authentication failures per client address, shared with the RPC API (issue 21). */
  failurePacer?: AuthFailurePacer;
  /** Browser origins allowed to call (exact match); any other `Origin` gets 403. */
  allowedOrigins: ReadonlySet<string>;
  /** Scopes a token must carry to use the endpoint (empty: none required). */
  requiredScopes: readonly string[];
  /** Scopes advertised in the protected-resource metadata. */
  scopesSupported: readonly string[];
  /** Authorization servers advertised in the protected-resource metadata. */
  authorizationServers: readonly string[];
  /** Base URL clients reach the edge at (e.g. https://gw.example.com); default: from the request. */
  publicUrl: string | undefined;
  /** Largest request body, bytes; larger ones get 413. */
  maxBodyBytes: number;
  /** Largest output per stream in a tool result, bytes. */
  maxResultBytes: number;
  /** Between server and tool name in an upstream tool's namespaced name (`<server>__<tool>`). */
  toolSeparator: string;
  /** The upstream whose tools keep their own names (namespace: false), if any (read per call: the list may be reloaded). */
  unprefixedUpstream: () => string | undefined;
  /** False while draining or waiting as a standby: calls get 503. */
  accepting: () => boolean;
  /** Called when a browser Origin is refused (recorded as a security event in the audit chain). */
  onOriginRefused?: (origin: string, peer: string) => void;
  metrics: EdgeMetrics;
  logger: Logger;
  tracer: Tracer;
}

/** A request and response of Node's HTTP/1.1 or HTTP/2 (compatibility) servers. */
type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

/** The MCP door of the edge, as web-standard fetch handlers (and a Node fast path). */
export interface McpEndpoint {
  /**
   * Serves `/mcp` (Streamable HTTP, stateless). `peer` is the client address for policy and
   * audit; `incoming` the Node request it came from, if {@link McpEndpoint.handleNode} passed
   * it on (then it is already admitted and its body read).
   */
  handle(req: Request, peer: string, incoming?: object): Promise<Response>;
  /**
   * Serves a `POST /mcp` on Node's request and response: a single `tools/call` without
   * progress is answered here, without the fetch adaption or an SDK server; anything else is
   * admitted and read here, then passed to `next` (which reaches {@link McpEndpoint.handle}).
   */
  handleNode(req: NodeRequest, res: NodeResponse, peer: string, next: () => void): Promise<void>;
  /** Serves the RFC 9728 protected-resource metadata document. */
  resourceMetadata(req: Request): Response;
  /** Ends the standing streams and the resource subscriptions (the edge is stopping). */
  close(): void;
}

export { MCP_PATH, RESOURCE_METADATA_PATH };

const SERVER_INFO = {
  name: "mcp-security-gateway",
  title: "MCP Security Gateway",
  version: VERSION,
};
const INSTRUCTIONS =
  "Tools of the MCP Security Gateway. Commands run in a kernel sandbox (bubblewrap + seccomp, no network unless policy allows it) on a runner host, in a workspace whose files the file tools read and write. Every call is authorized by policy and recorded in an audit trail; a denial says why.";

/**
 * Prefix of the gateway's name for an upstream resource: `mcp-gateway://<server>/<uri>`, the
 * upstream's own URI (or URI template) kept verbatim after the server name.
 */
export const RESOURCE_URI_PREFIX = "mcp-gateway://";

/** JSON-RPC error code of a request the policy denied (server-defined range). */
export const RPC_PERMISSION_DENIED = -32003;

/** Host names that only this machine can reach. */
const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** A run_command call that a `notifications/cancelled` may reach. */
interface InFlight {
  /** The principal who made the call (only they may cancel it). */
  owner: string;
  /** The task, once accepted. */
  taskId?: string;
  /** Set when a cancellation arrived before the task was accepted. */
  cancelled?: RequestContext;
  /** For upstream calls: aborting it cancels the call upstream. */
  abort?: AbortController;
}

/** The JSON-RPC error body of a refusal (no request id: the message was not read). */
function refusalBody(r: Refusal) {
  return { jsonrpc: "2.0", id: null, error: { code: r.code, message: r.message } };
}

/** A refusal as the fetch door answers it. */
function jsonRpcError(r: Refusal): Response {
  return new Response(JSON.stringify(refusalBody(r)), {
    status: r.status,
    headers: { "content-type": "application/json", ...r.headers },
  });
}

/** A body larger than `max` bytes. */
function bodyTooLarge(max: number): Refusal {
  return { status: 413, code: -32000, message: `request body exceeds ${max} bytes` };
}

/** A body that is not JSON. */
const NOT_JSON: Refusal = {
  status: 400,
  code: ErrorCode.ParseError,
  message: "parse error: the body is not valid JSON",
};

/** Reads a body up to `max` bytes; undefined when it is larger. */
async function readBounded(req: Request, max: number): Promise<string | undefined> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > max) return undefined;
  if (!req.body) return "";
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString("utf8");
}

function isJsonContentType(ct: string | null): boolean {
  return (ct ?? "").split(";")[0]?.trim().toLowerCase() === "application/json";
}

/** True when some request in the body asked for progress (then the answer streams as SSE). */
function wantsProgress(body: unknown): boolean {
  const msgs = Array.isArray(body) ? body : [body];
  return msgs.some((m) => {
    const meta = (m as { params?: { _meta?: { progressToken?: unknown } } } | null)?.params?._meta;
    return meta?.progressToken !== undefined && meta.progressToken !== null;
  });
}

/** `logging/setLevel` (its params are checked by the handler, which names a bad level). */
const SetLevelRequest = z.object({
  method: z.literal("logging/setLevel"),
  params: z.unknown().optional(),
});
/** Principals whose log level this edge remembers (the oldest is forgotten beyond). */
const MAX_LOG_LEVELS = 10_000;
/** Upstream log messages relayed per call; the rest are dropped (and the drop logged once). */
const MAX_LOGS_PER_CALL = 1000;
/** Bytes of upstream log messages relayed per call (their `data` as JSON), and per message. */
const MAX_LOG_BYTES_PER_CALL = 1024 * 1024;
const MAX_LOG_MESSAGE_BYTES = 64 * 1024;

/** Resource subscriptions one principal may hold on one edge. */
const MAX_SUBSCRIPTIONS = 100;
/** Standing streams (GET) one principal may hold open on one edge (more: 429). */
const MAX_STANDING_STREAMS = 4;
/**
 * A standing stream is ended after this long, ms: the client opens a new one, with its token
 * checked again (a revoked or expired token stops getting updates).
 */
const STANDING_MAX_AGE_MS = 10 * 60_000;
/** A principal's subscriptions end after this long without a standing stream on this edge, ms. */
const SUBSCRIPTION_IDLE_MS = 10 * 60_000;
/** A comment on every standing stream this often, so that idle links are not cut, ms. */
const KEEPALIVE_MS = 25_000;
/** Bytes queued on a standing stream beyond which updates are dropped (a client not reading). */
const STANDING_QUEUE_BYTES = 64 * 1024;

/** The JSON-RPC error answer to a single `tools/call` whose params are malformed, if it is one. */
function malformedToolCall(body: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(body) || body.method !== "tools/call") return;
  const id = body.id;
  if (!isRequestId(id)) return;
  const parsed = CallToolRequestSchema.safeParse(body);
  if (parsed.success) return;
  return {
    jsonrpc: "2.0",
    id,
    error: {
      code: ErrorCode.InvalidParams,
      message: `invalid params of tools/call: ${describeIssues(parsed.error as unknown as z.ZodError)}`,
    },
  };
}

/** Schemas that match only a request's method, one per method (built once). */
const methodOnly = new Map<string, z.ZodType>();

/**
 * The SDK's server, whose handlers answer malformed params with -32602 naming the field. The
 * SDK parses a request with its schema before the handler runs and answers a failed parse
 * with -32603 and zod's JSON dump: here each handler is registered under a schema that only
 * matches the method, and the request is checked against the real one inside. The SDK's own
 * handlers (`initialize`, `ping`) are registered through this method too.
 */
class GatewayServer extends Server {
  override setRequestHandler<T extends Parameters<Server["setRequestHandler"]>[0]>(
    schema: T,
    handler: Parameters<Server["setRequestHandler"]>[1],
  ): void {
    const method = (schema as unknown as { shape: { method: { value: string } } }).shape.method
      .value;
    const checked = schema as unknown as z.ZodType;
    let loose = methodOnly.get(method);
    if (!loose) {
      loose = z.looseObject({ method: z.literal(method) });
      methodOnly.set(method, loose);
    }
    super.setRequestHandler(loose as unknown as T, (request, extra) => {
      const parsed = checked.safeParse(request);
      if (!parsed.success)
        throw new McpError(
          ErrorCode.InvalidParams,
          `invalid params of ${method}: ${describeIssues(parsed.error)}`,
        );
      return handler(parsed.data as never, extra);
    });
  }
}

/** How long the rest of a refused body is read and dropped before the link is cut, ms. */
const DROP_MS = 5000;
/** How much of the body of a request refused before its body (401, 403, 429, 503) is drained. */
const REFUSED_DROP_BYTES = 256 * 1024;
/** A Host header: a name or an address, and a port (what `new URL` may safely be given). */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::\d{1,5})?$/;

/** The Host header of a request is not a host (answered 400 before anything else). */
class BadHost extends Error {
  override readonly name = "BadHost";
}

/** A refusal before the JSON-RPC message is read: HTTP status, JSON-RPC code, message. */
interface Refusal {
  status: number;
  code: number;
  message: string;
  headers?: Record<string, string>;
}

/** What admission needs of a request, from a fetch `Request` or a Node request. */
interface RequestFacts {
  header(name: string): string | null;
  /** The request's URL (built only when needed: origin checks, challenges). */
  url(): URL;
}

/** A request admitted on the Node path and passed on to {@link McpEndpoint.handle}. */
interface Admitted {
  principal: PrincipalRecord;
  /** The parsed body; undefined when it was not JSON (the SDK transport answers that). */
  parsedBody: unknown;
}

/** A JSON-RPC id the SDK's schema accepts: a string or a safe integer. */
function isRequestId(id: unknown): id is RequestId {
  return typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** What a tools/call carries besides its name and arguments, whichever door took it. */
interface ToolCallExtra {
  /** Aborted when the call is cancelled or its client went away. */
  signal: AbortSignal;
  requestId: RequestId;
  progressToken: string | number | undefined;
  /** Sends a progress notification (a no-op without a progress token). */
  notify: (progress: number, message: string, total?: number) => void;
  /** Sends a log message on the call's stream; absent when the answer is a JSON body. */
  log?: (message: UpstreamLogMessage) => void;
  /** Which door answered: the Node fast path or the SDK server (logged). */
  door: "node" | "sdk";
}

/**
 * A single JSON-RPC `tools/call` request without progress or task augmentation, in the
 * shape the SDK's schemas accept: what the Node fast path answers itself.
 */
function fastToolCall(
  body: unknown,
): { id: RequestId; name: string; args: unknown; meta: unknown } | undefined {
  if (!isPlainObject(body) || body.jsonrpc !== "2.0" || body.method !== "tools/call") return;
  // The SDK's JSON-RPC request schema is strict: any other member goes to the SDK path.
  for (const key in body) {
    if (key !== "jsonrpc" && key !== "id" && key !== "method" && key !== "params") return;
  }
  const id = body.id;
  if (!isRequestId(id)) return;
  const params = body.params;
  if (!isPlainObject(params) || typeof params.name !== "string" || params.task !== undefined) {
    return;
  }
  if (params.arguments !== undefined && !isPlainObject(params.arguments)) return;
  const meta = params._meta;
  if (meta !== undefined && (!isPlainObject(meta) || meta.progressToken !== undefined)) return;
  return { id, name: params.name, args: params.arguments, meta };
}

/** The JSON response the SDK's stateless transport gives in JSON mode, written to Node. */
function writeJson(res: NodeResponse, status: number, body: unknown, headers = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** A refusal as the Node door answers it. */
function writeRefusal(res: NodeResponse, r: Refusal): void {
  writeJson(res, r.status, refusalBody(r), r.headers);
}

/**
 * The MCP endpoint: Streamable HTTP on the official SDK, stateless (no MCP
 * session; any edge answers any request). Before the body is read it checks
 * the `Origin` (DNS rebinding), authenticates the bearer token with the same
 * authenticator as the RPC API (401 names the resource metadata, 403 for
 * missing scopes) and applies the shared rate limit. Each tool is one call of
 * the operations layer — validate, decide → audit, act — with
 * `request.interface = "mcp"` and the tool name in the policy input;
 * `tools/list` shows only the tools whose operation the caller's roles permit.
 *
 * @example
 * const mcp = createMcpEndpoint({ ops, authenticate, rateLimit, ... });
 * app.all("/mcp", (c) => mcp.handle(c.req.raw, peerOf(c)));
 */
export function createMcpEndpoint(options: McpEndpointOptions): McpEndpoint {
  const { ops, metrics } = options;
  const definitions = gatewayToolDefinitions();
  const byName = new Map(GATEWAY_TOOLS.map((t) => [t.name, t]));
  /** run_command calls in flight on this edge, by principal and JSON-RPC request id. */
  const inFlight = new Map<string, InFlight>();
  /**
   * Whose per-edge state this is (calls in flight, log level, subscriptions, standing
   * streams): the tenant and the subject, as the rate limit keys a principal (one issuer).
   */
  const ownerOf = (p: PrincipalRecord) => JSON.stringify([p.tenant, p.sub]);
  const keyOf = (owner: string, id: RequestId) => `${owner}\u0000${typeof id}:${String(id)}`;
  /**
   * The least severe level of upstream log messages each principal asked for
   * (`logging/setLevel`), on this edge: the endpoint has no sessions (ADR 0006), so the level
   * is the principal's. A principal that set one gets its upstream calls answered as a stream,
   * so that their log messages can travel with them.
   */
  const logLevels = new Map<string, LoggingLevel>();
  function setLogLevel(sub: string, level: LoggingLevel): void {
    logLevels.delete(sub);
    logLevels.set(sub, level);
    if (logLevels.size > MAX_LOG_LEVELS) {
      const oldest = logLevels.keys().next().value;
      if (oldest !== undefined) logLevels.delete(oldest);
    }
  }
  /**
   * Resource subscriptions on this edge, by principal: the gateway URI the client subscribed
   * to, and the end of its subscription. Updates go to the principal's standing streams (GET)
   * on this edge; subscriptions end with `resources/unsubscribe`, or after
   * {@link SUBSCRIPTION_IDLE_MS} without a standing stream.
   */
  const subscriptions = new Map<
    string,
    { uris: Map<string, () => void>; pending: number; idleSince: number }
  >();
  /** Standing streams (GET /mcp) open on this edge, by principal, with their opening time. */
  const standing = new Map<string, Map<ReadableStreamDefaultController<Uint8Array>, number>>();
  let stopped = false;
  const encoder = new TextEncoder();
  /** Writes one SSE event or comment to a standing stream, unless its client stopped reading. */
  function pushTo(c: ReadableStreamDefaultController<Uint8Array>, text: string): void {
    if ((c.desiredSize ?? 0) <= 0) return;
    try {
      c.enqueue(encoder.encode(text));
    } catch {
      // closed meanwhile
    }
  }
  /** A resource the principal subscribed to changed: told on its standing streams. */
  function resourceUpdated(sub: string, uri: string): void {
    const event = `event: message\ndata: ${JSON.stringify({
      jsonrpc: "2.0",
      method: "notifications/resources/updated",
      params: { uri },
    })}\n\n`;
    for (const c of standing.get(sub)?.keys() ?? []) pushTo(c, event);
  }
  /** Ends a stream: after what is queued, or at once (`abort`: a stream nobody reads ends too). */
  function closeStream(c: ReadableStreamDefaultController<Uint8Array>, abort = false): void {
    try {
      if (abort) c.error(new Error("the edge is stopping"));
      else c.close();
    } catch {
      // already closed
    }
  }
  /** Ends a principal's standing streams (their cancel callbacks do not run: removed here). */
  function closeStanding(sub: string, abort = false): void {
    const streams = standing.get(sub);
    standing.delete(sub);
    for (const c of streams?.keys() ?? []) closeStream(c, abort);
    const held = subscriptions.get(sub);
    if (held) held.idleSince = Date.now();
  }
  function endSubscriptions(sub: string): void {
    const held = subscriptions.get(sub);
    subscriptions.delete(sub);
    for (const end of held?.uris.values() ?? []) end();
  }
  /**
   * Keep-alive comments; streams past their age, or on an edge that stopped serving them
   * (draining, standby, no upstreams any more), ended; subscriptions nobody listens to ended.
   */
  const housekeeping = setInterval(() => {
    const now = Date.now();
    const serving = options.accepting() && ops.upstreamServers().length > 0;
    for (const [sub, streams] of standing) {
      for (const [c, opened] of streams) {
        if (!serving || now - opened > STANDING_MAX_AGE_MS) {
          streams.delete(c);
          closeStream(c);
        } else {
          pushTo(c, ": keep-alive\n\n");
        }
      }
      if (streams.size === 0) closeStanding(sub);
    }
    for (const [sub, held] of subscriptions) {
      if (held.pending === 0 && !standing.has(sub) && now - held.idleSince > SUBSCRIPTION_IDLE_MS) {
        options.logger.info(
          { principal: sub, subscriptions: held.uris.size },
          "resource subscriptions ended: no standing stream",
        );
        endSubscriptions(sub);
      }
    }
  }, KEEPALIVE_MS);
  housekeeping.unref();
  /** A standing stream for the principal: notifications not tied to a request (GET /mcp). */
  function openStanding(sub: string): Response {
    if ((standing.get(sub)?.size ?? 0) >= MAX_STANDING_STREAMS) {
      return jsonRpcError({
        status: 429,
        code: -32000,
        message: `at most ${MAX_STANDING_STREAMS} standing streams per caller on an edge: close one first`,
        headers: { "retry-after": "30" },
      });
    }
    let own: ReadableStreamDefaultController<Uint8Array> | undefined;
    const drop = () => {
      const streams = standing.get(sub);
      if (!own || !streams?.delete(own)) return;
      if (streams.size === 0) closeStanding(sub);
    };
    const body = new ReadableStream<Uint8Array>(
      {
        start(c) {
          own = c;
          const streams = standing.get(sub) ?? new Map();
          standing.set(sub, streams);
          streams.set(c, Date.now());
          // A first comment sends the headers now and tells the client the stream is up.
          c.enqueue(encoder.encode(": mcp-security-gateway standing stream\n\n"));
        },
        cancel: drop,
      },
      new ByteLengthQueuingStrategy({ highWaterMark: STANDING_QUEUE_BYTES }),
    );
    return new Response(body, {
      status: 200,
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
      },
    });
  }
  /** True when the body calls an upstream tool for a principal that set a log level. */
  function wantsLogs(body: unknown, principal: PrincipalRecord): boolean {
    if (!logLevels.has(ownerOf(principal))) return false;
    return (Array.isArray(body) ? body : [body]).some((m) => {
      const msg = m as { method?: unknown; params?: { name?: unknown } } | null;
      return (
        msg?.method === "tools/call" &&
        typeof msg.params?.name === "string" &&
        !byName.has(msg.params.name)
      );
    });
  }

  function baseUrl(facts: RequestFacts): string {
    if (options.publicUrl) return options.publicUrl.replace(/\/+$/, "");
    return facts.url().origin;
  }
  /**
   * DNS rebinding: a browser `Origin` must be on the allowlist, or be the
   * gateway's own origin — the configured public URL, or (without one) the
   * request's origin when it names a loopback host. A rebound name
   * (evil.example → 127.0.0.1) is neither.
   */
  function originAllowed(facts: RequestFacts, origin: string): boolean {
    if (options.allowedOrigins.has(origin)) return true;
    if (options.publicUrl) return origin === new URL(options.publicUrl).origin;
    const own = facts.url();
    return origin === own.origin && LOOPBACK.test(own.hostname);
  }
  function metadataUrl(facts: RequestFacts): string {
    return `${baseUrl(facts)}${RESOURCE_METADATA_PATH}${MCP_PATH}`;
  }

  /** Per-call context, as the RPC interceptor builds it: span, trace id, logger. */
  function callContext(
    principal: PrincipalRecord,
    peer: string,
    tool: string,
    traceparent: string | null,
  ) {
    // The gateway's own trace; the caller's traceparent is linked and kept apart (issue 21).
    const client = clientTraceLink(traceparent);
    const rpc = startSpan(
      options.tracer,
      `mcp/tools/call ${tool}`,
      ROOT_CONTEXT,
      { "rpc.system": "mcp", "rpc.method": tool, "rpc.protocol": "mcp" },
      SpanKind.SERVER,
      client.links,
    );
    const traceId = rpc.span.spanContext().traceId;
    const rc: RequestContext = {
      principal,
      traceId,
      protocol: "mcp",
      interface: "mcp",
      tool,
      source: peer,
      logger: options.logger.child({ traceId, method: tool, protocol: "mcp" }),
      traceContext: rpc.context,
      traceparent: traceparentOf(rpc.span),
      clientTraceparent: client.traceparent,
    };
    return { rc, span: rpc.span };
  }

  async function cancelInFlight(entry: InFlight, rc: RequestContext): Promise<void> {
    if (entry.abort) {
      entry.abort.abort(new Error("cancelled by the client"));
      return;
    }
    if (!entry.taskId) {
      entry.cancelled = rc;
      return;
    }
    await ops
      .cancelTask(rc, { $typeName: "mcp.CancelTaskRequest", taskId: entry.taskId })
      .catch((err: unknown) =>
        rc.logger.info({ err: String(err), taskId: entry.taskId }, "mcp cancellation refused"),
      );
  }

  async function callTool(
    tool: GatewayTool,
    args: unknown,
    principal: PrincipalRecord,
    peer: string,
    traceparent: string | null,
    extra: ToolCallExtra,
  ): Promise<CallToolResult> {
    const parsed = tool.input.safeParse(args ?? {});
    if (!parsed.success) {
      metrics.requests.inc({
        method: `mcp.${tool.name}`,
        protocol: "mcp",
        code: "InvalidArgument",
      });
      throw new McpError(
        ErrorCode.InvalidParams,
        `invalid arguments for tool ${tool.name}: ${describeIssues(parsed.error)}`,
      );
    }
    const { rc, span } = callContext(principal, peer, tool.name, traceparent);
    const started = performance.now();
    const ctx: ToolCallContext = { signal: extra.signal, maxResultBytes: options.maxResultBytes };
    let entry: InFlight | undefined;
    const key = keyOf(ownerOf(principal), extra.requestId);
    if (tool.name === "run_command") {
      entry = { owner: ownerOf(principal) };
      inFlight.set(key, entry);
      const e = entry;
      ctx.onTask = (taskId) => {
        e.taskId = taskId;
        if (extra.progressToken !== undefined) extra.notify(0, `task ${taskId} accepted`);
        if (e.cancelled) void cancelInFlight(e, e.cancelled);
      };
      if (extra.progressToken !== undefined) {
        let sent = 0;
        const decoder = new TextDecoder();
        ctx.onOutput = (_kind, data) => {
          sent += data.byteLength;
          extra.notify(sent, decoder.decode(data, { stream: true }));
        };
      }
    }
    let code = "OK";
    try {
      const structured = await tool.call(ops, rc, parsed.data as never, ctx);
      return {
        content: [{ type: "text", text: JSON.stringify(structured) }],
        structuredContent: structured,
        ...(tool.name === "run_command" &&
        (structured as { status?: string }).status !== "completed"
          ? { isError: true }
          : {}),
      };
    } catch (err) {
      const ce = toConnectError(err);
      code = Code[ce.code];
      return toolError(ce, rc);
    } finally {
      if (entry) inFlight.delete(key);
      metrics.requests.inc({ method: `mcp.${tool.name}`, protocol: "mcp", code });
      endSpan(span);
      rc.logger.info(
        { code, ms: Math.round(performance.now() - started), door: extra.door },
        "call",
      );
    }
  }

  /** A call of an upstream server's tool, through the operations layer (decided, audited). */
  async function callUpstream(
    server: string,
    toolName: string,
    fullName: string,
    args: unknown,
    principal: PrincipalRecord,
    peer: string,
    traceparent: string | null,
    extra: {
      signal: AbortSignal;
      requestId: RequestId;
      progress: boolean;
      notify: (progress: number, message: string, total?: number) => void;
      log: ((message: UpstreamLogMessage) => void) | undefined;
    },
  ): Promise<CallToolResult> {
    const method = `mcp.upstream.${server}`;
    if (args !== undefined && (typeof args !== "object" || args === null || Array.isArray(args))) {
      metrics.requests.inc({ method, protocol: "mcp", code: "InvalidArgument" });
      throw new McpError(ErrorCode.InvalidParams, `arguments of ${fullName} must be an object`);
    }
    const { rc, span } = callContext(principal, peer, fullName, traceparent);
    const abort = new AbortController();
    const onClientGone = () => abort.abort(new Error("the client went away"));
    extra.signal.addEventListener("abort", onClientGone, { once: true });
    const key = keyOf(ownerOf(principal), extra.requestId);
    inFlight.set(key, { owner: ownerOf(principal), abort });
    let code = "OK";
    const log = extra.log;
    const least = LOGGING_LEVELS.indexOf(logLevels.get(ownerOf(principal)) ?? "debug");
    let logged = 0;
    let logBytes = 0;
    let logDropped = false;
    try {
      const result = await ops.callUpstreamTool(
        rc,
        { server, tool: toolName, arguments: (args ?? {}) as Record<string, unknown> },
        {
          signal: abort.signal,
          ...(extra.progress
            ? {
                onProgress: (p: number, total: number | undefined, message: string | undefined) =>
                  extra.notify(p, message ?? "", total),
              }
            : {}),
          ...(log
            ? {
                // Relayed under the upstream's name, at the caller's level, up to a bound.
                onLog: (m: UpstreamLogMessage) => {
                  if (LOGGING_LEVELS.indexOf(m.level) < least) return;
                  const bytes = (JSON.stringify(m.data) ?? "").length + (m.logger?.length ?? 0);
                  // Only relayed messages count: dropped ones never reach the client.
                  const relay =
                    bytes <= MAX_LOG_MESSAGE_BYTES &&
                    logged < MAX_LOGS_PER_CALL &&
                    logBytes + bytes <= MAX_LOG_BYTES_PER_CALL;
                  if (!relay) {
                    if (!logDropped) {
                      logDropped = true;
                      rc.logger.warn(
                        {
                          upstream: server,
                          maxMessages: MAX_LOGS_PER_CALL,
                          maxBytes: MAX_LOG_BYTES_PER_CALL,
                          maxMessageBytes: MAX_LOG_MESSAGE_BYTES,
                        },
                        "upstream log messages beyond the bounds of a call dropped",
                      );
                    }
                    return;
                  }
                  logged++;
                  logBytes += bytes;
                  log({ ...m, logger: m.logger ? `${server}/${m.logger}` : server });
                },
              }
            : {}),
        },
      );
      // Resources named in the result get the gateway's names, so the client can read them here.
      return Array.isArray(result.content)
        ? { ...result, content: result.content.map((c) => renameContent(server, c)) }
        : result;
    } catch (err) {
      const ce = toConnectError(err);
      code = Code[ce.code];
      return toolError(ce, rc);
    } finally {
      inFlight.delete(key);
      extra.signal.removeEventListener("abort", onClientGone);
      metrics.requests.inc({ method, protocol: "mcp", code });
      endSpan(span);
    }
  }

  /**
   * One tools/call, routed: the gateway's own tool, an upstream's namespaced tool, or (with an
   * unprefixed upstream) that upstream's; an unknown name is -32602 (the spec's protocol error).
   */
  function dispatchToolCall(
    name: string,
    args: unknown,
    principal: PrincipalRecord,
    peer: string,
    traceparent: string | null,
    extra: ToolCallExtra,
  ): Promise<CallToolResult> {
    const tool = byName.get(name);
    const upstream = {
      signal: extra.signal,
      requestId: extra.requestId,
      notify: extra.notify,
      progress: extra.progressToken !== undefined,
      log: extra.log,
    };
    const sep = name.indexOf(options.toolSeparator);
    const unprefixed = options.unprefixedUpstream();
    const prefixed = sep > 0 && name.slice(0, sep) !== unprefixed;
    if (!tool && !prefixed && unprefixed) {
      return callUpstream(unprefixed, name, name, args, principal, peer, traceparent, upstream);
    }
    if (!tool && sep > 0) {
      return callUpstream(
        name.slice(0, sep),
        name.slice(sep + options.toolSeparator.length),
        name,
        args,
        principal,
        peer,
        traceparent,
        upstream,
      );
    }
    if (!tool) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `unknown tool "${name.slice(0, 80)}": call tools/list for the tools you may use`,
      );
    }
    return callTool(tool, args, principal, peer, traceparent, extra);
  }

  /** The upstream a namespaced prompt name belongs to, and the name the upstream knows. */
  function routePrompt(name: string): { server: string; name: string } {
    const sep = name.indexOf(options.toolSeparator);
    const prefix = sep > 0 ? name.slice(0, sep) : "";
    const unprefixed = options.unprefixedUpstream();
    if (prefix && prefix !== unprefixed && ops.upstreamServers().includes(prefix)) {
      return { server: prefix, name: name.slice(sep + options.toolSeparator.length) };
    }
    if (unprefixed) return { server: unprefixed, name };
    throw new McpError(
      ErrorCode.InvalidParams,
      `unknown prompt "${name.slice(0, 80)}": call prompts/list for the prompts you may get`,
    );
  }
  /** The gateway's name of an upstream prompt. */
  function promptName(server: string, name: string): string {
    return server === options.unprefixedUpstream()
      ? name
      : `${server}${options.toolSeparator}${name}`;
  }
  /** The upstream a gateway resource URI (or URI template) belongs to, and its own URI. */
  function routeUri(uri: string): { server: string; uri: string } {
    if (uri.startsWith(RESOURCE_URI_PREFIX)) {
      const rest = uri.slice(RESOURCE_URI_PREFIX.length);
      const slash = rest.indexOf("/");
      if (slash > 0) return { server: rest.slice(0, slash), uri: rest.slice(slash + 1) };
    }
    const unprefixed = options.unprefixedUpstream();
    if (unprefixed) return { server: unprefixed, uri };
    throw new McpError(
      ErrorCode.InvalidParams,
      `unknown resource "${uri.slice(0, 120)}": resources are named ${RESOURCE_URI_PREFIX}<server>/<uri> (call resources/list)`,
    );
  }
  /** The gateway's URI of an upstream resource (or URI template). */
  function resourceUri(server: string, uri: string): string {
    return server === options.unprefixedUpstream() ? uri : `${RESOURCE_URI_PREFIX}${server}/${uri}`;
  }
  /** Embedded resources and resource links of a prompt, renamed to the gateway's URIs. */
  function renameMessage(server: string, m: PromptMessage): PromptMessage {
    return { ...m, content: renameContent(server, m.content) };
  }
  /** An embedded resource or resource link of an upstream, renamed to the gateway's URI. */
  function renameContent<C extends ContentBlock>(server: string, c: C): C {
    if (server === options.unprefixedUpstream()) return c;
    if (c.type === "resource") {
      return { ...c, resource: { ...c.resource, uri: resourceUri(server, c.resource.uri) } };
    }
    if (c.type === "resource_link") return { ...c, uri: resourceUri(server, c.uri) };
    return c;
  }

  /**
   * One resources/prompts/completion request: a span and request context, the operation,
   * the metrics, and its failure as a JSON-RPC error ({@link rpcError}).
   */
  async function content<T>(
    method: string,
    principal: PrincipalRecord,
    peer: string,
    traceparent: string | null,
    run: (rc: RequestContext) => Promise<T>,
  ): Promise<T> {
    const { rc, span } = callContext(principal, peer, method, traceparent);
    let code = "OK";
    try {
      return await run(rc);
    } catch (err) {
      if (err instanceof McpError) {
        code = "InvalidArgument";
        throw err;
      }
      const ce = toConnectError(err);
      code = Code[ce.code];
      throw rpcError(ce, rc);
    } finally {
      metrics.requests.inc({ method: `mcp.${method}`, protocol: "mcp", code });
      endSpan(span);
    }
  }

  /** Capabilities: resources, prompts and completions are offered when upstreams are configured. */
  function capabilities(): ServerCapabilities {
    if (ops.upstreamServers().length === 0) return { tools: { listChanged: false } };
    return {
      tools: { listChanged: false },
      logging: {},
      resources: { subscribe: true, listChanged: false },
      prompts: { listChanged: false },
      completions: {},
    };
  }

  /** Registers the proxied resources, prompts and completion handlers (upstreams only). */
  function registerContent(
    server: Server,
    principal: PrincipalRecord,
    peer: string,
    traceparent: string | null,
  ): void {
    server.setRequestHandler(ListResourcesRequestSchema, (_req, extra) =>
      content("resources/list", principal, peer, traceparent, async (rc) => {
        const found = await ops.discoverResources(rc, extra.signal);
        return {
          resources: found.resources.map((r) => ({
            ...r.item,
            uri: resourceUri(r.server, r.item.uri),
          })),
        };
      }),
    );
    server.setRequestHandler(ListResourceTemplatesRequestSchema, (_req, extra) =>
      content("resources/templates/list", principal, peer, traceparent, async (rc) => {
        const found = await ops.discoverResources(rc, extra.signal);
        return {
          resourceTemplates: found.templates.map((t) => ({
            ...t.item,
            uriTemplate: resourceUri(t.server, t.item.uriTemplate),
          })),
        };
      }),
    );
    server.setRequestHandler(ReadResourceRequestSchema, (req, extra) => {
      const target = routeUri(req.params.uri);
      return content("resources/read", principal, peer, traceparent, async (rc) => {
        const res = await ops.readUpstreamResource(rc, target, extra.signal);
        return {
          ...res,
          contents: res.contents.map((c) => ({ ...c, uri: resourceUri(target.server, c.uri) })),
        };
      });
    });
    server.setRequestHandler(SubscribeRequestSchema, (req, extra) => {
      const uri = req.params.uri;
      const target = routeUri(uri);
      const owner = ownerOf(principal);
      return content("resources/subscribe", principal, peer, traceparent, async (rc) => {
        const held = subscriptions.get(owner) ?? {
          uris: new Map<string, () => void>(),
          pending: 0,
          idleSince: Date.now(),
        };
        subscriptions.set(owner, held);
        // Subscriptions on their way count too, so that concurrent requests cannot pass the bound.
        if (!held.uris.has(uri) && held.uris.size + held.pending >= MAX_SUBSCRIPTIONS) {
          throw new McpError(
            ErrorCode.InvalidParams,
            `at most ${MAX_SUBSCRIPTIONS} resource subscriptions per caller: unsubscribe first`,
          );
        }
        held.pending++;
        let end: () => void;
        try {
          end = await ops.subscribeUpstreamResource(
            rc,
            target,
            () => resourceUpdated(owner, uri),
            extra.signal,
          );
        } finally {
          held.pending--;
          if (held.uris.size === 0 && held.pending === 0 && subscriptions.get(owner) === held) {
            subscriptions.delete(owner);
          }
        }
        if (stopped) {
          end();
          throw new McpError(ErrorCode.InternalError, "the edge is stopping: subscribe again");
        }
        if (extra.signal.aborted) {
          // The client gave up on the request: it does not know it is subscribed.
          end();
          throw new McpError(ErrorCode.RequestTimeout, "the subscription request was cancelled");
        }
        // Decided and made: held (a repeated subscription replaces the earlier one).
        const now = subscriptions.get(owner) ?? held;
        subscriptions.set(owner, now);
        now.uris.get(uri)?.();
        now.uris.set(uri, end);
        return {};
      });
    });
    server.setRequestHandler(UnsubscribeRequestSchema, (req) => {
      const uri = req.params.uri;
      const owner = ownerOf(principal);
      const held = subscriptions.get(owner);
      held?.uris.get(uri)?.();
      held?.uris.delete(uri);
      if (held?.uris.size === 0 && held.pending === 0) subscriptions.delete(owner);
      metrics.requests.inc({ method: "mcp.resources/unsubscribe", protocol: "mcp", code: "OK" });
      return {};
    });
    server.setRequestHandler(ListPromptsRequestSchema, (_req, extra) =>
      content("prompts/list", principal, peer, traceparent, async (rc) => {
        const found = await ops.discoverPrompts(rc, extra.signal);
        return {
          prompts: found.prompts.map((p) => ({
            ...p.item,
            name: promptName(p.server, p.item.name),
          })),
        };
      }),
    );
    server.setRequestHandler(GetPromptRequestSchema, (req, extra) => {
      const target = routePrompt(req.params.name);
      return content("prompts/get", principal, peer, traceparent, async (rc) => {
        const res = await ops.getUpstreamPrompt(
          rc,
          { server: target.server, prompt: target.name, arguments: req.params.arguments ?? {} },
          extra.signal,
        );
        return { ...res, messages: res.messages.map((m) => renameMessage(target.server, m)) };
      });
    });
    server.setRequestHandler(CompleteRequestSchema, (req, extra) => {
      const ref = req.params.ref;
      const target =
        ref.type === "ref/prompt"
          ? (() => {
              const p = routePrompt(ref.name);
              return { server: p.server, ref: { type: "ref/prompt" as const, name: p.name } };
            })()
          : (() => {
              const r = routeUri(ref.uri);
              return { server: r.server, ref: { type: "ref/resource" as const, uri: r.uri } };
            })();
      return content("completion/complete", principal, peer, traceparent, (rc) =>
        ops.completeUpstream(
          rc,
          {
            ...target,
            argument: req.params.argument,
            ...(req.params.context?.arguments
              ? { context: { arguments: req.params.context.arguments } }
              : {}),
          },
          extra.signal,
        ),
      );
    });
  }

  // One JSON Schema validator for every per-request server: the SDK builds a new Ajv
  // instance per Server otherwise (~0.6 ms a request), for elicitation the gateway never uses.
  const jsonSchemaValidator = new AjvJsonSchemaValidator();

  /** One request's SDK server; `stream`: the answer is an SSE stream (notifications can travel). */
  function createServer(
    principal: PrincipalRecord,
    peer: string,
    traceparent: string | null,
    stream: boolean,
  ) {
    const server = new GatewayServer(SERVER_INFO, {
      capabilities: capabilities(),
      instructions: INSTRUCTIONS,
      jsonSchemaValidator,
    });
    if (ops.upstreamServers().length > 0) {
      registerContent(server, principal, peer, traceparent);
      server.setRequestHandler(SetLevelRequest, (req) => {
        const level = (req.params as { level?: unknown } | undefined)?.level;
        if (!LOGGING_LEVELS.includes(level as LoggingLevel)) {
          metrics.requests.inc({
            method: "mcp.logging/setLevel",
            protocol: "mcp",
            code: "InvalidArgument",
          });
          throw new McpError(
            ErrorCode.InvalidParams,
            `level must be one of ${LOGGING_LEVELS.join(", ")}`,
          );
        }
        setLogLevel(ownerOf(principal), level as LoggingLevel);
        metrics.requests.inc({ method: "mcp.logging/setLevel", protocol: "mcp", code: "OK" });
        return {};
      });
    }
    server.setRequestHandler(ListToolsRequestSchema, async () => {
      const { rc, span } = callContext(principal, peer, "tools/list", traceparent);
      try {
        const found = await ops.discoverTools(rc);
        const permitted = new Set(found.operations);
        metrics.requests.inc({ method: "mcp.tools/list", protocol: "mcp", code: "OK" });
        const own = GATEWAY_TOOLS.filter((t) => permitted.has(t.operation)).flatMap((t) => {
          const d = definitions.get(t.name);
          return d ? [d] : [];
        });
        const upstream = found.upstream.flatMap((t) => {
          if (t.server !== options.unprefixedUpstream()) {
            return [
              { ...t.definition, name: `${t.server}${options.toolSeparator}${t.definition.name}` },
            ];
          }
          // Unprefixed: the gateway's own tools win a name clash.
          return byName.has(t.definition.name) ? [] : [t.definition];
        });
        return { tools: [...own, ...upstream] };
      } catch (err) {
        const ce = toConnectError(err);
        metrics.requests.inc({ method: "mcp.tools/list", protocol: "mcp", code: Code[ce.code] });
        throw new McpError(
          ErrorCode.InternalError,
          ce.code === Code.Internal ? "internal error" : ce.rawMessage,
        );
      } finally {
        endSpan(span);
      }
    });
    server.setRequestHandler(CallToolRequestSchema, (req, extra) => {
      const progressToken = req.params._meta?.progressToken;
      return dispatchToolCall(req.params.name, req.params.arguments, principal, peer, traceparent, {
        door: "sdk",
        signal: extra.signal,
        requestId: extra.requestId,
        progressToken,
        notify: (progress: number, message: string, total?: number) => {
          if (progressToken === undefined) return;
          extra
            .sendNotification({
              method: "notifications/progress",
              params: {
                progressToken,
                progress,
                message,
                ...(total === undefined ? {} : { total }),
              },
            })
            .catch(() => undefined);
        },
        ...(stream
          ? {
              log: (params: UpstreamLogMessage) =>
                void extra
                  .sendNotification({ method: "notifications/message", params })
                  .catch(() => undefined),
            }
          : {}),
      });
    });
    // Stateless: a cancellation arrives in its own HTTP request, so it is
    // matched to the call by principal and request id on this edge.
    server.setNotificationHandler(CancelledNotificationSchema, async (n) => {
      const id = n.params.requestId;
      if (id === undefined) return;
      const entry = inFlight.get(keyOf(ownerOf(principal), id));
      if (!entry || entry.owner !== ownerOf(principal)) return;
      const { rc, span } = callContext(principal, peer, "notifications/cancelled", traceparent);
      try {
        await cancelInFlight(entry, rc);
      } finally {
        endSpan(span);
      }
    });
    return server;
  }

  function unauthorized(facts: RequestFacts, err: unknown): Refusal {
    const ce = toConnectError(err);
    metrics.authFailures.inc({ reason: String((err as { code?: unknown }).code ?? "unknown") });
    const base = ce.metadata.get("www-authenticate") ?? 'Bearer realm="mcp-gateway"';
    const headers = { "www-authenticate": `${base}, resource_metadata="${metadataUrl(facts)}"` };
    if (ce.code !== Code.Unauthenticated) {
      return { status: 503, code: -32000, message: ce.rawMessage, headers };
    }
    return { status: 401, code: -32001, message: ce.rawMessage, headers };
  }

  /**
   * Everything before the body is read, for both doors: serving at all, the browser `Origin`
   * (DNS rebinding), the bearer token, the required scopes, the rate limit.
   */
  async function admit(
    facts: RequestFacts,
    peer: string,
    method: string,
  ): Promise<PrincipalRecord | Refusal> {
    if (!options.accepting()) {
      return {
        status: 503,
        code: -32000,
        message: "the edge is not serving (draining or standby)",
        headers: { "retry-after": "1" },
      };
    }
    const origin = facts.header("origin");
    if (origin !== null && !originAllowed(facts, origin)) {
      options.onOriginRefused?.(origin, peer);
      return {
        status: 403,
        code: -32000,
        message: `origin ${origin.slice(0, 200)} is not allowed`,
      };
    }
    // No session to end (DELETE). A standing stream (GET) carries resource updates, so it is
    // served where subscriptions are: with upstreams.
    const standingServed = ops.upstreamServers().length > 0;
    if (method !== "POST" && !(method === "GET" && standingServed)) {
      return {
        status: 405,
        code: -32000,
        message: `method ${method} is not allowed: use ${standingServed ? "GET or POST" : "POST"}`,
        headers: { allow: standingServed ? "GET, POST" : "POST" },
      };
    }
    let principal: PrincipalRecord;
    try {
      principal = await options.authenticate(facts.header("authorization"));
    } catch (err) {
      await options.failurePacer?.pace(peer);
      return unauthorized(facts, err);
    }
    const missing = options.requiredScopes.filter((s) => !principal.scopes.includes(s));
    if (missing.length > 0) {
      const scope = options.requiredScopes.join(" ");
      return {
        status: 403,
        code: -32000,
        message: `the token lacks the scope(s): ${missing.join(" ")}`,
        headers: {
          "www-authenticate": `Bearer realm="mcp-gateway", error="insufficient_scope", scope="${scope}", resource_metadata="${metadataUrl(facts)}"`,
        },
      };
    }
    const waitMs = options.rateLimit(principal);
    if (waitMs > 0) {
      metrics.rateLimited.inc();
      const seconds = Math.max(1, Math.ceil(waitMs / 1000));
      return {
        status: 429,
        code: -32000,
        message: `rate limit exceeded for ${principal.sub}; retry in ${seconds}s`,
        headers: { "retry-after": String(seconds) },
      };
    }
    return principal;
  }

  /** Requests admitted on the Node path, passed on to {@link McpEndpoint.handle}. */
  const admitted = new WeakMap<object, Admitted>();

  /** The request's facts on Node (its URL as @hono/node-server builds it). */
  function nodeFacts(req: NodeRequest): RequestFacts {
    let url: URL | undefined;
    return {
      header(name) {
        const v = req.headers[name];
        return typeof v === "string" ? v : Array.isArray(v) ? v.join(", ") : null;
      },
      url() {
        if (!url) {
          const scheme =
            req.headers[":scheme"] ??
            ((req.socket as { encrypted?: boolean } | undefined)?.encrypted ? "https" : "http");
          const authority = String(req.headers[":authority"] ?? req.headers.host ?? "localhost");
          // A Host that is not one (user info, a path, spaces) is refused, as Hono refuses it.
          if (!HOST.test(authority)) throw new BadHost(authority);
          url = new URL(req.url ?? "/", `${String(scheme)}://${authority}`);
        }
        return url;
      },
    };
  }

  /**
   * Reads and drops what is left of a refused body, so that a client still sending sees the
   * answer rather than a reset: at most `max` bytes for at most `ms`, then the link is cut.
   */
  function dropRest(req: NodeRequest, max: number, ms: number): void {
    if (req.readableEnded) return;
    let dropped = 0;
    const cut = setTimeout(() => req.destroy(), ms);
    cut.unref();
    req.once("close", () => clearTimeout(cut));
    req.on("data", (more: Buffer) => {
      dropped += more.length;
      if (dropped > max) req.destroy();
    });
    req.resume();
  }

  /**
   * Reads a Node request body up to `max` bytes; undefined when it is larger, null when the
   * client went away before its end. The rest of an
   * oversized body is read and dropped (up to `max` bytes more, then the connection is cut),
   * so that a client still sending sees the 413 instead of a reset connection.
   */
  function readNodeBody(req: NodeRequest, max: number): Promise<Buffer | undefined | null> {
    return new Promise((resolve) => {
      const parts: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          parts.length = 0;
          req.off("data", onData);
          dropRest(req, max, DROP_MS);
          resolve(undefined);
          return;
        }
        parts.push(chunk);
      };
      req.on("data", onData);
      req.once("end", () => resolve(Buffer.concat(parts, size)));
      // A client that broke off mid-body (HTTP/1 "aborted", an HTTP/2 RST) is not answered.
      req.once("error", () => resolve(null));
      req.once("close", () => resolve(req.readableEnded ? Buffer.concat(parts, size) : null));
    });
  }

  /** A tools/call answered on Node: dispatched as the SDK server would, as a JSON response. */
  async function answerToolCall(
    call: NonNullable<ReturnType<typeof fastToolCall>>,
    principal: PrincipalRecord,
    peer: string,
    traceparent: string | null,
    res: NodeResponse,
  ): Promise<void> {
    const gone = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) gone.abort(new Error("the client went away"));
    };
    res.once("close", onClose);
    try {
      const result = await dispatchToolCall(call.name, call.args, principal, peer, traceparent, {
        signal: gone.signal,
        requestId: call.id,
        progressToken: undefined,
        notify: () => undefined,
        door: "node",
      });
      writeJson(res, 200, { result, jsonrpc: "2.0", id: call.id });
    } catch (err) {
      const e = (err ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
      // As the SDK's protocol layer answers a handler's error (its message as the Error has it).
      writeJson(res, 200, {
        jsonrpc: "2.0",
        id: call.id,
        error: {
          code: Number.isSafeInteger(e.code) ? e.code : ErrorCode.InternalError,
          message: typeof e.message === "string" ? e.message : "Internal error",
          ...(e.data === undefined ? {} : { data: e.data }),
        },
      });
    } finally {
      res.off("close", onClose);
    }
  }

  return {
    close() {
      stopped = true;
      clearInterval(housekeeping);
      for (const sub of [...standing.keys()]) closeStanding(sub, true);
      for (const sub of [...subscriptions.keys()]) endSubscriptions(sub);
    },

    resourceMetadata(req) {
      const body = {
        resource: `${baseUrl({ header: (n) => req.headers.get(n), url: () => new URL(req.url) })}${MCP_PATH}`,
        authorization_servers: [...options.authorizationServers],
        scopes_supported: [...options.scopesSupported],
        bearer_methods_supported: ["header"],
        resource_name: "MCP Security Gateway",
      };
      return new Response(JSON.stringify(body), {
        headers: { "content-type": "application/json", "cache-control": "max-age=300" },
      });
    },

    async handleNode(req, res, peer, next) {
      const facts = nodeFacts(req);
      try {
        facts.url();
      } catch (err) {
        if (!(err instanceof BadHost)) throw err;
        dropRest(req, REFUSED_DROP_BYTES, DROP_MS);
        writeRefusal(res, {
          status: 400,
          code: -32000,
          message: "the Host header is not a host name",
        });
        return;
      }
      const accept = facts.header("accept") ?? "";
      const version = facts.header("mcp-protocol-version");
      // What the SDK transport refuses (406, 415, 400) takes the usual path, which says so.
      if (
        !accept.includes("application/json") ||
        !accept.includes("text/event-stream") ||
        !isJsonContentType(facts.header("content-type")) ||
        (version !== null && !SUPPORTED_PROTOCOL_VERSIONS.includes(version))
      ) {
        next();
        return;
      }
      const outcome = await admit(facts, peer, "POST");
      if (!("sub" in outcome)) {
        // Refused before the body: a little of it is drained, not the whole of it.
        dropRest(req, REFUSED_DROP_BYTES, DROP_MS);
        writeRefusal(res, outcome);
        return;
      }
      const principal = outcome;
      const declared = Number(facts.header("content-length") ?? "0");
      let body: Buffer | undefined | null;
      if (declared > options.maxBodyBytes) dropRest(req, options.maxBodyBytes, DROP_MS);
      else body = await readNodeBody(req, options.maxBodyBytes);
      if (body === null) return; // the client went away
      if (body === undefined) {
        writeRefusal(res, bodyTooLarge(options.maxBodyBytes));
        return;
      }
      let parsedBody: unknown;
      try {
        parsedBody = JSON.parse(body.toString("utf8"));
      } catch {
        writeRefusal(res, NOT_JSON);
        return;
      }
      const call = fastToolCall(parsedBody);
      // A caller that asked for log messages gets its upstream calls as a stream (SDK path).
      if (call && !wantsLogs(parsedBody, principal)) {
        await answerToolCall(call, principal, peer, facts.header("traceparent"), res);
        return;
      }
      // Anything else through the SDK transport, with the body already read.
      admitted.set(req, { principal, parsedBody });
      (req as { rawBody?: Buffer }).rawBody = body;
      next();
    },

    async handle(req, peer, incoming) {
      const facts: RequestFacts = {
        header: (n) => req.headers.get(n),
        url: () => new URL(req.url),
      };
      const passed = incoming ? admitted.get(incoming) : undefined;
      if (incoming) admitted.delete(incoming);
      let principal: PrincipalRecord;
      let parsedBody: unknown;
      let stream = true;
      if (passed) {
        principal = passed.principal;
        parsedBody = passed.parsedBody;
        stream = wantsProgress(parsedBody) || wantsLogs(parsedBody, principal);
      } else {
        const outcome = await admit(facts, peer, req.method);
        if (!("sub" in outcome)) {
          return jsonRpcError(outcome);
        }
        principal = outcome;
        if (req.method === "GET") {
          const version = req.headers.get("mcp-protocol-version");
          if (version !== null && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
            return jsonRpcError({
              status: 400,
              code: -32000,
              message: `unsupported MCP-Protocol-Version ${version.slice(0, 40)} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")})`,
            });
          }
          if (!(req.headers.get("accept") ?? "").includes("text/event-stream")) {
            return jsonRpcError({
              status: 406,
              code: -32000,
              message: "a standing stream needs Accept: text/event-stream",
            });
          }
          return openStanding(ownerOf(principal));
        }
        if (isJsonContentType(req.headers.get("content-type"))) {
          const text = await readBounded(req, options.maxBodyBytes);
          if (text === undefined) {
            return jsonRpcError(bodyTooLarge(options.maxBodyBytes));
          }
          try {
            parsedBody = JSON.parse(text);
          } catch {
            return jsonRpcError(NOT_JSON);
          }
          stream = wantsProgress(parsedBody) || wantsLogs(parsedBody, principal);
        }
      }
      // A single tools/call with malformed params: answered here, -32602 naming the field (the
      // SDK's own check of tools/call runs first in its server and answers with zod's dump).
      const badCall = malformedToolCall(parsedBody);
      if (badCall) {
        return new Response(JSON.stringify(badCall), {
          status: 200,
          headers: { "content-type": "application/json" },
        });
      }
      // One SDK server per request (stateless): it holds this request's principal.
      const server = createServer(principal, peer, req.headers.get("traceparent"), stream);
      // No sessionIdGenerator: stateless, no Mcp-Session-Id.
      const transport = new WebStandardStreamableHTTPServerTransport({
        enableJsonResponse: !stream,
      });
      transport.onerror = (err) => options.logger.debug({ err: String(err) }, "mcp transport");
      await server.connect(transport);
      const close = () => void server.close().catch(() => undefined);
      let res: Response;
      try {
        res = await transport.handleRequest(req, parsedBody === undefined ? {} : { parsedBody });
      } catch (err) {
        close();
        throw err;
      }
      if (!res.body || !res.headers.get("content-type")?.startsWith("text/event-stream")) {
        close();
        return res;
      }
      // SSE: close the per-request server when the stream ends or the client leaves.
      const done = new TransformStream<Uint8Array, Uint8Array>({ flush: close });
      res.body.pipeTo(done.writable).catch(close);
      return new Response(done.readable, { status: res.status, headers: res.headers });
    },
  };
}

/**
 * A failed operation as MCP sees it: invalid arguments are a JSON-RPC error
 * (-32602); anything else is a tool result with `isError` and the reason
 * (internals stay in the log).
 */
function toolError(ce: ConnectError, rc: RequestContext): CallToolResult {
  if (ce.code === Code.InvalidArgument) throw new McpError(ErrorCode.InvalidParams, ce.rawMessage);
  if (ce.code === Code.Internal || ce.code === Code.Unknown) {
    rc.logger.error({ err: ce.cause ?? ce }, "mcp tool call failed");
  }
  const message = ce.code === Code.Internal ? "internal error" : errorText(ce.code, ce.rawMessage);
  return {
    content: [{ type: "text", text: message }],
    isError: true,
    _meta: { "mcp-gateway/error": { code: codeName(ce.code), message: ce.rawMessage } },
  };
}

/**
 * A failed resources/prompts/completion request as JSON-RPC sees it (those results have no
 * `isError`): invalid arguments -32602, not found -32002 (the MCP resource-not-found code),
 * a policy denial {@link RPC_PERMISSION_DENIED} with the reasons, anything else -32603 —
 * each with `data.code` naming the gateway's error code (internals stay in the log).
 */
function rpcError(ce: ConnectError, rc: RequestContext): McpError {
  const data = { code: codeName(ce.code) };
  switch (ce.code) {
    case Code.InvalidArgument:
      return new McpError(ErrorCode.InvalidParams, ce.rawMessage, data);
    case Code.NotFound:
      return new McpError(-32002, ce.rawMessage, data);
    case Code.PermissionDenied:
      return new McpError(RPC_PERMISSION_DENIED, ce.rawMessage, data);
    case Code.Internal:
    case Code.Unknown:
      rc.logger.error({ err: ce.cause ?? ce }, "mcp upstream request failed");
      return new McpError(ErrorCode.InternalError, "internal error", data);
    default:
      return new McpError(ErrorCode.InternalError, errorText(ce.code, ce.rawMessage), data);
  }
}

/** "<code>: <message>", without repeating a message that already starts with its code's words. */
function errorText(code: Code, message: string): string {
  const name = codeName(code);
  return message.toLowerCase().startsWith(name.replace(/_/g, " "))
    ? message
    : `${name}: ${message}`;
}

function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
