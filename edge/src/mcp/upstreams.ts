import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  type CallToolResult,
  CallToolResultSchema,
  type CompleteRequest,
  type CompleteResult,
  ErrorCode,
  type GetPromptResult,
  type JSONRPCMessage,
  McpError,
  type Prompt,
  type ReadResourceResult,
  type Resource,
  type ResourceTemplate,
  ResourceUpdatedNotificationSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { JsonSchemaType, JsonSchemaValidator } from "@modelcontextprotocol/sdk/validation";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import canonicalize from "canonicalize";
import type { Logger } from "pino";
import type { RunnerHandle } from "../runners/pool.js";
import {
  callToolOverHttp,
  type HttpSession,
  SessionExpired,
  type UpstreamLogMessage,
} from "./http-call.js";
import {
  createStdioClients,
  type StdioClients,
  type StdioLease,
  type UpstreamCaller,
} from "./stdio-upstream.js";
import type { HttpUpstreamConfig, StdioUpstreamConfig, UpstreamConfig } from "./upstream-config.js";

export {
  type HttpUpstreamConfig,
  httpUpstreamSchema,
  type UpstreamConfig,
  upstreamSchema,
} from "./upstream-config.js";

/** A tool an upstream serves, with the digest of its definition. */
export interface UpstreamTool {
  server: string;
  /** The tool's definition as the upstream serves it. */
  definition: Tool;
  /** "sha256:<hex>" of the RFC 8785 form of name, title, description, schemas and annotations. */
  digest: string;
  /** That canonical JSON text. */
  canonical: string;
  /** The server's configuration the tool was listed from (a reload may replace it). */
  config: UpstreamConfig;
}

/** A failure to reach or use an upstream, with a message fit for clients. */
export class UpstreamError extends Error {
  override readonly name = "UpstreamError";
  /** Always "unavailable" (mapped to the wire by common/errors). */
  readonly code = "unavailable" as const;
}

/**
 * A JSON-RPC error the upstream answered with (e.g. -32002 resource not found, -32602):
 * its answer, passed on to the client with the server's name; the link stays up.
 */
export class UpstreamAnswer extends Error {
  override readonly name = "UpstreamAnswer";
  /** Mapped to the wire by common/errors (the JSON-RPC code is kept in `rpcCode`). */
  readonly code: "invalid_argument" | "not_found" | "failed_precondition";
  /** The upstream's JSON-RPC error code. */
  readonly rpcCode: number;
  constructor(server: string, err: McpError) {
    super(`upstream ${server}: ${err.message.replace(/^MCP error -?\d+: /, "").slice(0, 300)}`);
    this.rpcCode = err.code;
    this.code =
      err.code === -32002
        ? "not_found"
        : err.code === ErrorCode.InvalidParams
          ? "invalid_argument"
          : "failed_precondition";
  }
}

/**
 * True when the upstream answered, if only with a JSON-RPC error (e.g. -32602, -32601): its
 * link works. A closed connection or a timeout is no answer.
 */
function answeredBy(err: unknown): err is McpError {
  return (
    err instanceof McpError &&
    err.code !== ErrorCode.ConnectionClosed &&
    err.code !== ErrorCode.RequestTimeout
  );
}

/** The upstream does not declare the capability a request needs. */
export class NotServed extends Error {
  override readonly name = "NotServed";
  /** Mapped to the wire by common/errors. */
  readonly code = "invalid_argument" as const;
  constructor(
    server: string,
    what: "resources" | "prompts" | "completions" | "resource subscriptions",
  ) {
    super(`upstream ${server} serves no ${what}`);
  }
}

/** Options of one call to an upstream tool. */
export interface UpstreamCallOptions {
  signal: AbortSignal;
  /** Progress notifications of the upstream, passed through. */
  onProgress?: (progress: number, total: number | undefined, message: string | undefined) => void;
  /**
   * Log messages a remote upstream sends on the call's own stream. A stdio server's log
   * messages are not tied to a call (stdio has no stream per request), so none arrive here.
   */
  onLog?: (message: UpstreamLogMessage) => void;
  /** Whom the call is for (stdio servers run per tenant; required for them). */
  caller?: UpstreamCaller;
  /** The tool's definition (as listed): its output schema is checked against the result. */
  definition?: Tool;
  /**
   * The configuration the tool was listed from: when a reload replaced it since (the call was
   * checked against the old server's pinned definition), the call is refused, not sent.
   */
  listedFrom?: UpstreamConfig;
}

/** An upstream's resources and resource templates (empty when it declares no resources). */
export interface UpstreamResources {
  resources: Resource[];
  templates: ResourceTemplate[];
}

/** Options of one resource, prompt or completion request to an upstream. */
export interface UpstreamRequestOptions {
  signal: AbortSignal;
  /** Whom the request is for (stdio servers run per tenant; required for them). */
  caller?: UpstreamCaller;
}

/** The configured upstream MCP servers. */
export interface Upstreams {
  /** Names of the configured upstreams. */
  names(): readonly string[];
  /** The tools an upstream serves now (cached briefly); stdio servers need the caller. */
  tools(server: string, caller?: UpstreamCaller): Promise<UpstreamTool[]>;
  /** Calls a tool on an upstream with the gateway's credentials. */
  call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    options: UpstreamCallOptions,
  ): Promise<CallToolResult>;
  /** The upstream's resources and templates, all pages (none when it declares no resources). */
  resources(server: string, options: UpstreamRequestOptions): Promise<UpstreamResources>;
  /** The upstream's prompts, all pages (none when it declares no prompts). */
  prompts(server: string, options: UpstreamRequestOptions): Promise<Prompt[]>;
  /** Reads a resource of the upstream by its own URI. */
  readResource(
    server: string,
    uri: string,
    options: UpstreamRequestOptions,
  ): Promise<ReadResourceResult>;
  /** Gets a prompt of the upstream by its own name. */
  getPrompt(
    server: string,
    name: string,
    args: Record<string, string>,
    options: UpstreamRequestOptions,
  ): Promise<GetPromptResult>;
  /**
   * Subscribes to updates of a remote upstream's resource (its own URI): `onUpdated` is called
   * for each `notifications/resources/updated` of that URI. One upstream subscription serves
   * every listener of a URI; it is made again when the upstream's session is opened again.
   * Resolves with the function that ends this listener's subscription.
   */
  subscribe(
    server: string,
    uri: string,
    onUpdated: () => void,
    options: UpstreamRequestOptions,
  ): Promise<() => void>;
  /** Asks the upstream for completions (`ref` in the upstream's own names). */
  complete(
    server: string,
    params: CompleteRequest["params"],
    options: UpstreamRequestOptions,
  ): Promise<CompleteResult>;
  /**
   * Replaces the list (a configuration reload): a removed or changed upstream's session is
   * closed and its stdio processes retired (calls in flight finish on them); new ones are
   * reached on first use. Says what changed.
   */
  replace(upstreams: readonly UpstreamConfig[]): {
    added: string[];
    removed: string[];
    changed: string[];
  };
  close(): Promise<void>;
}

/** Most entries read from one upstream list (resources, templates, prompts) across its pages. */
const MAX_LISTED = 1000;
/** Delays before an upstream with subscriptions is reached again after its session closed, ms. */
const RESUBSCRIBE_DELAYS_MS = [500, 1000, 2000, 5000, 10_000, 30_000];
/** How often the session of an upstream with subscriptions is checked (a ping), ms. */
const WATCHDOG_MS = 15_000;
/** Largest answer of a remote upstream's tools/call (a JSON body, or one SSE event), bytes. */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

/** Options for {@link createUpstreams}. */
export interface UpstreamsOptions {
  upstreams: readonly UpstreamConfig[];
  logger: Logger;
  /** How long a tool list is reused before it is fetched again, ms. */
  toolsTtlMs?: number;
  /** Picks the runner of a workspace (stdio servers run there); none: stdio servers fail. */
  pickRunner?: (workspace: string) => RunnerHandle;
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

function credentialHeader(c: NonNullable<HttpUpstreamConfig["credential"]>): [string, string] {
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
  let byName = new Map(options.upstreams.map((u) => [u.name, u]));
  const clients = new Map<string, Promise<Client>>();
  const lists = new Map<string, { at: number; tools: UpstreamTool[] }>();
  const ttl = options.toolsTtlMs ?? 5000;
  const pickRunner = options.pickRunner;
  let stdio: StdioClients | undefined;
  /** The stdio processes' manager, made when the first stdio upstream is configured. */
  function stdioClients(): StdioClients | undefined {
    if (!stdio && pickRunner && [...byName.values()].some((u) => u.kind === "stdio")) {
      stdio = createStdioClients({ pickRunner, logger: options.logger });
      stdio.onStopped = (tenant, server) => lists.delete(`${tenant}\0${server}`);
    }
    return stdio;
  }
  stdioClients();
  /** The session behind each remote upstream's client, for {@link callToolOverHttp}. */
  const links = new WeakMap<
    Client,
    { transport: StreamableHTTPClientTransport; url: URL; headers: Record<string, string> }
  >();
  /**
   * Resource subscriptions on remote upstreams, by server and upstream URI: the listeners, and
   * the upstream's answer to the subscription (listeners arriving meanwhile wait for it).
   */
  const watched = new Map<string, Map<string, Watch>>();
  /** Reconnection of upstreams whose session closed while they had subscriptions. */
  const rewatch = new Map<string, { timer: NodeJS.Timeout | undefined; attempt: number }>();
  /** Unsubscriptions on their way to the upstream, by server and URI (a new subscription waits). */
  const leaving = new Map<string, Promise<unknown>>();
  /**
   * Checks the sessions of upstreams with subscriptions: an upstream that restarted forgets
   * the session and its subscriptions without the gateway's client noticing (its standing
   * stream gives up after its retries); a failed ping opens a new session, which subscribes again.
   */
  let watchdog: NodeJS.Timeout | undefined;
  function startWatchdog(): void {
    if (watchdog || closed) return;
    watchdog = setInterval(() => {
      for (const [server, byUri] of watched) {
        if (byUri.size === 0) continue;
        const p = clients.get(server);
        if (!p) {
          scheduleRewatch(server);
          continue;
        }
        const timeout = byName.get(server)?.timeoutMs ?? 5000;
        p.then((c) => c.ping({ timeout })).catch((err: unknown) => {
          // An answer, even an error one (a server without ping: -32601), says the session lives.
          if (answeredBy(err)) return;
          options.logger.info(
            { err: String(err), upstream: server },
            "upstream with subscriptions did not answer a ping: reconnecting",
          );
          resetIf(server, p);
        });
      }
    }, WATCHDOG_MS);
    watchdog.unref();
  }
  let closed = false;
  /** Output-schema validators of remote tools, by definition (as listed, cached for the TTL). */
  const outputValidators = new WeakMap<Tool, JsonSchemaValidator<unknown>>();
  const validatorFactory = new AjvJsonSchemaValidator();

  /** The tenant's running stdio server (started if needed). */
  async function lease(
    u: StdioUpstreamConfig,
    caller: UpstreamCaller | undefined,
  ): Promise<StdioLease> {
    if (!caller) throw new UpstreamError("a stdio server needs the caller's tenant");
    const clients = stdioClients();
    if (!clients) throw new UpstreamError("stdio servers need a runner pool");
    return clients.acquire(u, caller);
  }

  /** What broke when a stdio server's call failed: the server's end if it ended. */
  function stdioFailure(l: StdioLease | undefined, err: unknown): unknown {
    if (!l?.transport.ended || l.transport.closedByGateway) return err;
    const hint = l.transport.stderrTail.trim().split("\n").at(-1)?.trim() ?? "";
    return new UpstreamError(
      `the server ${l.transport.ended}${hint ? ` (stderr: ${hint.slice(0, 300)})` : ""}; it is started again on the next call`,
      { cause: err },
    );
  }

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

  async function connect(u: HttpUpstreamConfig, onClose: () => void): Promise<Client> {
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
    transport.onerror = (err) => {
      options.logger.debug({ err: String(err), upstream: u.name }, "upstream transport");
      // Its standing stream gave up: with subscriptions, a new session (which renews them).
      if (
        /Maximum reconnection attempts|Failed to reconnect/.test(String(err)) &&
        watched.get(u.name)?.size
      ) {
        const p = clients.get(u.name);
        p?.then((current) => current === client && resetIf(u.name, p)).catch(() => undefined);
      }
    };
    client.onclose = onClose;
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      for (const l of watched.get(u.name)?.get(n.params.uri)?.listeners ?? []) l();
    });
    await client.connect(transport, { timeout: u.timeoutMs });
    links.set(client, { transport, url: new URL(u.url), headers });
    return client;
  }

  /**
   * The upstream's client (its MCP session), connected on first use; the promise itself is
   * what the cache holds, so a closed or failed client only ever removes itself.
   */
  function client(server: string): Promise<Client> {
    const u = config(server);
    if (u.kind !== "http") return Promise.reject(new UpstreamError("not a remote server"));
    const cached = clients.get(server);
    if (cached) return cached;
    const forget = () => {
      if (clients.get(server) === c) clients.delete(server);
      scheduleRewatch(server);
    };
    const c = connect(u, forget);
    clients.set(server, c);
    c.then(
      (cl) => {
        // A new session: the subscriptions of the old one are made again on it.
        const live = [...(watched.get(server) ?? [])].filter(([, w]) => w.live);
        for (const [uri] of live) {
          cl.subscribeResource({ uri }, { timeout: u.timeoutMs }).catch((err: unknown) =>
            options.logger.warn(
              { err: String(err), upstream: server, uri },
              "upstream resource subscription not renewed",
            ),
          );
        }
        const r = rewatch.get(server);
        if (r) r.attempt = 0;
      },
      () => forget(),
    );
    return c;
  }

  /**
   * An upstream whose session closed (or could not be opened) while callers are subscribed to
   * its resources is reached again after a growing delay, so that updates keep coming.
   */
  function scheduleRewatch(server: string): void {
    if (closed || !watched.get(server)?.size || byName.get(server)?.kind !== "http") return;
    const r = rewatch.get(server) ?? { timer: undefined, attempt: 0 };
    rewatch.set(server, r);
    if (r.timer) return;
    const delay = RESUBSCRIBE_DELAYS_MS[Math.min(r.attempt, RESUBSCRIBE_DELAYS_MS.length - 1)];
    r.attempt++;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      if (!clients.has(server)) client(server).catch(() => undefined);
    }, delay);
    r.timer.unref();
  }

  /** One watched URI: its listeners, the upstream's answer, and whether that answer was yes. */
  type Watch = { listeners: Set<() => void>; ready: Promise<void>; live: boolean };
  /**
   * The end of one listener's subscription: the last listener of a URI ends the upstream's
   * subscription too (best effort: an upstream that is gone has none to end).
   */
  function ender(
    server: string,
    uri: string,
    byUri: Map<string, Watch>,
    entry: Watch,
    listener: () => void,
  ): () => void {
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      entry.listeners.delete(listener);
      if (entry.listeners.size > 0 || byUri.get(uri) !== entry) return;
      byUri.delete(uri);
      // An upstream removed (and maybe added again) since: its new session is not ours to change.
      if (watched.get(server) !== byUri) return;
      const u = byName.get(server);
      const key = `${server}\0${uri}`;
      const gone = (clients.get(server) ?? Promise.reject(new Error("no session")))
        .then((c) => c.unsubscribeResource({ uri }, { timeout: u?.timeoutMs ?? 5000 }))
        .catch(() => undefined);
      leaving.set(key, gone);
      void gone.then(() => {
        if (leaving.get(key) === gone) leaving.delete(key);
      });
    };
  }

  /** Forgets the subscriptions on an upstream (it was removed, or the gateway closes). */
  function unwatch(server: string): void {
    watched.delete(server);
    const r = rewatch.get(server);
    if (r?.timer) clearTimeout(r.timer);
    rewatch.delete(server);
  }

  /** {@link reset}, unless another call already replaced the client that failed. */
  function resetIf(server: string, failed: Promise<Client>): void {
    if (clients.get(server) === failed) reset(server);
  }

  /** Drops a client after a failure so that the next call reconnects. */
  function reset(server: string): void {
    const c = clients.get(server);
    clients.delete(server);
    lists.delete(server);
    c?.then((cl) => cl.close()).catch(() => undefined);
  }

  /**
   * Runs one request on the upstream's client (the tenant's server for stdio) with the
   * upstream's deadline; failures become {@link UpstreamError}s naming the server, and a
   * broken link (not a JSON-RPC error answer) reconnects next time.
   */
  async function request<T>(
    server: string,
    options: UpstreamRequestOptions,
    fn: (c: Client, timeout: number) => Promise<T>,
  ): Promise<T> {
    const u = config(server);
    let l: StdioLease | undefined;
    let p: Promise<Client> | undefined;
    try {
      if (u.kind === "stdio") l = await lease(u, options.caller);
      p = l ? undefined : client(server);
      const c = l ? l.client : await (p as Promise<Client>);
      return await fn(c, u.timeoutMs);
    } catch (err) {
      if (err instanceof NotServed) throw err;
      if (options.signal.aborted) throw describe(server, new Error("the request was cancelled"));
      if (answeredBy(err)) throw new UpstreamAnswer(server, err);
      if (p) resetIf(server, p);
      throw describe(server, stdioFailure(l, err));
    } finally {
      l?.release();
    }
  }

  /**
   * A remote tools/call on the upstream's session, straight over a kept-alive socket
   * ({@link callToolOverHttp}); a session the upstream forgot (nothing ran) is opened again
   * and the call made once more.
   */
  async function callRemote(
    u: HttpUpstreamConfig,
    tool: string,
    args: Record<string, unknown>,
    o: UpstreamCallOptions,
  ): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const p = client(u.name);
      const c = await p;
      const link = links.get(c);
      if (!link) throw new UpstreamError("no session");
      const session: HttpSession = {
        url: link.url,
        headers: link.headers,
        sessionId: link.transport.sessionId,
        protocolVersion: link.transport.protocolVersion,
      };
      try {
        return await callToolOverHttp(session, tool, args, {
          signal: o.signal,
          timeoutMs: u.timeoutMs,
          maxBytes: MAX_ANSWER_BYTES,
          ...(o.onProgress ? { onProgress: o.onProgress } : {}),
          ...(o.onLog ? { onLog: o.onLog } : {}),
          cancel: (requestId, reason) =>
            void c
              .notification({ method: "notifications/cancelled", params: { requestId, reason } })
              .catch(() => undefined),
          reply: (response) =>
            void link.transport.send(response as JSONRPCMessage).catch(() => undefined),
        });
      } catch (err) {
        // A JSON-RPC error of the upstream (e.g. -32602) is its answer, not a broken link, and a
        // call the client cancelled says nothing about the link; anything else (a closed
        // connection, a timeout, an HTTP failure, a forgotten session) reconnects next time.
        if (!answeredBy(err) && !o.signal.aborted) resetIf(u.name, p);
        if (err instanceof SessionExpired && attempt === 0) continue;
        throw err;
      }
    }
  }

  /**
   * The shape of a tools/call result (the SDK's schema), and its structured content against
   * the tool's output schema, as the SDK client checks them.
   */
  function checkResult(definition: Tool | undefined, raw: unknown): CallToolResult {
    const parsed = CallToolResultSchema.safeParse(raw);
    if (!parsed.success) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `the tool's result is not a tools/call result (${parsed.error.message.slice(0, 200)})`,
      );
    }
    const result = parsed.data;
    const schema = definition?.outputSchema;
    if (!schema || !definition || result.isError) return result;
    if (result.structuredContent === undefined) {
      throw new McpError(
        ErrorCode.InvalidRequest,
        `tool ${definition.name} has an output schema but returned no structured content`,
      );
    }
    let validate = outputValidators.get(definition);
    if (!validate) {
      validate = validatorFactory.getValidator(schema as JsonSchemaType);
      outputValidators.set(definition, validate);
    }
    const v = validate(result.structuredContent);
    if (!v.valid) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `the structured content of tool ${definition.name} does not match its output schema: ${String(v.errorMessage).slice(0, 200)}`,
      );
    }
    return result;
  }

  return {
    names: () => [...byName.keys()],

    async tools(server, caller) {
      const u = config(server);
      const key = u.kind === "stdio" ? `${caller?.tenant ?? ""}\0${server}` : server;
      const cached = lists.get(key);
      if (cached && Date.now() - cached.at < ttl) return cached.tools;
      let l: StdioLease | undefined;
      let p: Promise<Client> | undefined;
      try {
        if (u.kind === "stdio") l = await lease(u, caller);
        p = l ? undefined : client(server);
        const c = l ? l.client : await (p as Promise<Client>);
        const defs: Tool[] = [];
        let cursor: string | undefined;
        do {
          const page = await c.listTools(cursor ? { cursor } : {}, { timeout: u.timeoutMs });
          defs.push(...page.tools);
          cursor = page.nextCursor;
        } while (cursor && defs.length < 1000);
        const tools = defs.map((d) => ({ server, definition: d, ...toolDigest(d), config: u }));
        // A reload while the list was read: the list belongs to the replaced configuration.
        if (byName.get(server) === u) lists.set(key, { at: Date.now(), tools });
        return tools;
      } catch (err) {
        if (p) resetIf(server, p);
        else lists.delete(key);
        throw describe(server, stdioFailure(l, err));
      } finally {
        l?.release();
      }
    },

    async call(server, tool, args, callOptions) {
      const u = config(server);
      if (callOptions.listedFrom && callOptions.listedFrom !== u) {
        throw new UpstreamError(
          `upstream ${server}: its configuration was reloaded while the call was decided; call again`,
        );
      }
      let l: StdioLease | undefined;
      let p: Promise<Client> | undefined;
      /** The call went the direct way (callRemote resets the session itself). */
      let lean = false;
      try {
        if (u.kind === "http" && callOptions.definition?.execution?.taskSupport !== "required") {
          lean = true;
          return checkResult(callOptions.definition, await callRemote(u, tool, args, callOptions));
        }
        if (u.kind === "stdio") l = await lease(u, callOptions.caller);
        p = l ? undefined : client(server);
        const c = l ? l.client : await (p as Promise<Client>);
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
        if (!answeredBy(err) && p && !lean) resetIf(server, p);
        throw describe(server, stdioFailure(l, err));
      } finally {
        l?.release();
      }
    },

    resources(server, o) {
      return request(server, o, async (c, timeout) => {
        const out: UpstreamResources = { resources: [], templates: [] };
        if (!c.getServerCapabilities()?.resources) return out;
        let cursor: string | undefined;
        do {
          const page = await c.listResources(cursor ? { cursor } : {}, {
            timeout,
            signal: o.signal,
          });
          out.resources.push(...page.resources);
          cursor = page.nextCursor;
        } while (cursor && out.resources.length < MAX_LISTED);
        do {
          const page = await c.listResourceTemplates(cursor ? { cursor } : {}, {
            timeout,
            signal: o.signal,
          });
          out.templates.push(...page.resourceTemplates);
          cursor = page.nextCursor;
        } while (cursor && out.templates.length < MAX_LISTED);
        return out;
      });
    },

    prompts(server, o) {
      return request(server, o, async (c, timeout) => {
        const out: Prompt[] = [];
        if (!c.getServerCapabilities()?.prompts) return out;
        let cursor: string | undefined;
        do {
          const page = await c.listPrompts(cursor ? { cursor } : {}, { timeout, signal: o.signal });
          out.push(...page.prompts);
          cursor = page.nextCursor;
        } while (cursor && out.length < MAX_LISTED);
        return out;
      });
    },

    readResource(server, uri, o) {
      return request(server, o, (c, timeout) => {
        if (!c.getServerCapabilities()?.resources) throw new NotServed(server, "resources");
        return c.readResource({ uri }, { timeout, signal: o.signal });
      });
    },

    getPrompt(server, name, args, o) {
      return request(server, o, (c, timeout) => {
        if (!c.getServerCapabilities()?.prompts) throw new NotServed(server, "prompts");
        return c.getPrompt({ name, arguments: args }, { timeout, signal: o.signal });
      });
    },

    async subscribe(server, uri, onUpdated, o) {
      if (config(server).kind !== "http") {
        throw new NotServed(server, "resource subscriptions");
      }
      // A listener of its own, so the same function may listen twice and be ended once each.
      const listener = () => onUpdated();
      for (;;) {
        const byUri = watched.get(server) ?? new Map<string, Watch>();
        watched.set(server, byUri);
        let entry = byUri.get(uri);
        if (!entry) {
          const key = `${server}\0${uri}`;
          const made: Watch = { listeners: new Set(), live: false, ready: Promise.resolve() };
          // Shared by every subscriber of the URI: not cancelled with the first one's request,
          // and sent after an unsubscription of the same URI that is still on its way.
          made.ready = (async () => {
            await leaving.get(key);
            await request(
              server,
              { signal: new AbortController().signal, ...(o.caller ? { caller: o.caller } : {}) },
              async (c, timeout) => {
                if (!c.getServerCapabilities()?.resources?.subscribe) {
                  throw new NotServed(server, "resource subscriptions");
                }
                await c.subscribeResource({ uri }, { timeout });
              },
            );
            made.live = true;
          })();
          entry = made;
          byUri.set(uri, made);
          startWatchdog();
          // A refused subscription is forgotten, for every listener that waited for it.
          made.ready.catch(() => {
            if (byUri.get(uri) === made) byUri.delete(uri);
          });
        }
        await entry.ready;
        // Ended by its last listener (or its server removed) while this one waited: again.
        if (watched.get(server) !== byUri || byUri.get(uri) !== entry) continue;
        entry.listeners.add(listener);
        return ender(server, uri, byUri, entry, listener);
      }
    },

    complete(server, params, o) {
      return request(server, o, (c, timeout) => {
        if (!c.getServerCapabilities()?.completions) throw new NotServed(server, "completions");
        return c.complete(params, { timeout, signal: o.signal });
      });
    },

    replace(next) {
      const before = byName;
      // An unchanged server keeps its configuration object: calls decided against it go on.
      byName = new Map(
        next.map((u) => {
          const old = before.get(u.name);
          return [u.name, old && JSON.stringify(old) === JSON.stringify(u) ? old : u];
        }),
      );
      const out = { added: [] as string[], removed: [] as string[], changed: [] as string[] };
      for (const [name, u] of before) {
        const now = byName.get(name);
        if (now === u) continue;
        (now ? out.changed : out.removed).push(name);
        if (u.kind === "http") {
          const c = clients.get(name);
          clients.delete(name);
          // A changed upstream is reached again with the same subscriptions; a removed one drops them.
          if (!now) unwatch(name);
          c?.then((cl) => cl.close()).catch(() => undefined);
        } else {
          stdio?.stop(name);
        }
        for (const key of lists.keys()) {
          if (key === name || key.endsWith(`\0${name}`)) lists.delete(key);
        }
      }
      for (const name of byName.keys()) if (!before.has(name)) out.added.push(name);
      stdioClients();
      return out;
    },

    async close() {
      closed = true;
      if (watchdog) clearInterval(watchdog);
      for (const name of [...watched.keys()]) unwatch(name);
      const all = [...clients.values()];
      clients.clear();
      await Promise.all(all.map((c) => c.then((cl) => cl.close()).catch(() => undefined)));
      await stdio?.close();
    },
  };
}
