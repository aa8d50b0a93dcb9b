import http from "node:http";
import https from "node:https";
import {
  ErrorCode,
  LATEST_PROTOCOL_VERSION,
  type LoggingLevel,
  LoggingLevelSchema,
  McpError,
} from "@modelcontextprotocol/sdk/types.js";

/*
 * One `tools/call` to a remote upstream over Streamable HTTP, without the SDK client's
 * machinery (issue 14, the proxy's hot path): the request is written once to a kept-alive
 * Node socket and the answer — a JSON body or an SSE stream — is parsed as it comes. It runs
 * on the MCP session the SDK client opened (initialize, tool lists, resources and prompts stay
 * on the SDK client); a session the upstream no longer knows is reported so the caller opens a
 * new one. The result is returned as the upstream sent it; its shape is checked by the caller.
 */

/** The upstream MCP session a call runs on. */
export interface HttpSession {
  url: URL;
  /** Headers of every request: the gateway's credential for this upstream. */
  headers: Readonly<Record<string, string>>;
  /** `Mcp-Session-Id` the upstream gave at initialize, if any. */
  sessionId: string | undefined;
  /** The protocol version negotiated at initialize. */
  protocolVersion: string | undefined;
}

/** A log message an upstream sent on a call's stream (`notifications/message`). */
export interface UpstreamLogMessage {
  level: LoggingLevel;
  /** The upstream's own logger name, if it gave one. */
  logger?: string;
  data: unknown;
}

/** The levels of `notifications/message`, least severe first (RFC 5424's order, as the SDK lists them). */
export const LOGGING_LEVELS: readonly LoggingLevel[] = LoggingLevelSchema.options;

/** The log message of a `notifications/message`'s params, or undefined when it is not one. */
export function logMessageOf(params: unknown): UpstreamLogMessage | undefined {
  if (typeof params !== "object" || params === null) return;
  const p = params as { level?: unknown; logger?: unknown; data?: unknown };
  if (!LOGGING_LEVELS.includes(p.level as LoggingLevel) || !("data" in p)) return;
  return {
    level: p.level as LoggingLevel,
    ...(typeof p.logger === "string" ? { logger: p.logger } : {}),
    data: p.data,
  };
}

/** Options of one call. */
export interface HttpCallOptions {
  signal: AbortSignal;
  timeoutMs: number;
  /** Largest answer accepted, bytes (JSON body, or one SSE event). */
  maxBytes: number;
  onProgress?: (progress: number, total: number | undefined, message: string | undefined) => void;
  /** Log messages the upstream sends on the call's stream (malformed ones are dropped). */
  onLog?: (message: UpstreamLogMessage) => void;
  /** Tells the upstream a call was abandoned (`notifications/cancelled`), on its session. */
  cancel: (requestId: string, reason: string) => void;
  /**
   * Sends a JSON-RPC response to a request the upstream sent on the call's stream, on its
   * session: `ping` gets an empty result; sampling, elicitation, roots and anything else a
   * -32601 error, as the gateway offers none of them (as the SDK client answered).
   */
  reply: (response: Record<string, unknown>) => void;
}

/** The upstream answered 404 to a request on a session: the session is gone, nothing ran. */
export class SessionExpired extends Error {
  override readonly name = "SessionExpired";
}

/** A link failure (no answer, a broken stream, a refused request) with the HTTP status if any. */
export class HttpCallError extends Error {
  override readonly name = "HttpCallError";
}

/*
 * Kept-alive sockets. An idle socket is closed after 4 s, or 1 s before the upstream's own
 * `Keep-Alive: timeout` hint (Node's agent reads it), so that a call is not written onto a
 * socket the upstream is closing at that moment: a tools/call is not retried (it may have run).
 */
const agentOptions = { keepAlive: true, timeout: 4000 };
const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };

/** How long an SSE answer's stream may stay open after the answer arrived, ms. */
const LINGER_MS = 5000;

let nextId = 0;

interface JsonRpcAnswer {
  id?: unknown;
  method?: unknown;
  params?: {
    progressToken?: unknown;
    progress?: unknown;
    total?: unknown;
    message?: unknown;
    level?: unknown;
  };
  result?: unknown;
  error?: { code?: unknown; message?: unknown; data?: unknown };
}

/**
 * Calls `tools/call` on the session and resolves with the raw `result` object; a JSON-RPC
 * error answer rejects with an {@link McpError} carrying the upstream's code, a timeout with
 * `RequestTimeout`, a cancelled call with the signal's reason, a lost link with
 * {@link HttpCallError}, an unknown session with {@link SessionExpired}.
 */
export function callToolOverHttp(
  session: HttpSession,
  name: string,
  args: Record<string, unknown>,
  options: HttpCallOptions,
): Promise<unknown> {
  nextId = (nextId + 1) % Number.MAX_SAFE_INTEGER;
  const id = `mcpg-${nextId}`;
  const body = JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: {
      name,
      arguments: args,
      ...(options.onProgress ? { _meta: { progressToken: id } } : {}),
    },
  });
  const headers: Record<string, string> = {
    ...session.headers,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "content-length": String(Buffer.byteLength(body)),
    "mcp-protocol-version": session.protocolVersion ?? LATEST_PROTOCOL_VERSION,
  };
  if (session.sessionId) headers["mcp-session-id"] = session.sessionId;
  const secure = session.url.protocol === "https:";
  return new Promise((resolve, reject) => {
    if (options.signal.aborted) {
      const reason = options.signal.reason;
      reject(reason instanceof Error ? reason : new Error("the call was cancelled"));
      return;
    }
    let settled = false;
    const req = (secure ? https : http).request(session.url, {
      method: "POST",
      headers,
      agent: secure ? agents.https : agents.http,
    });
    const finish = (err: unknown, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal.removeEventListener("abort", onAbort);
      if (err) {
        req.destroy();
        reject(err);
      } else {
        resolve(value);
      }
    };
    const abandon = (err: Error, reason: string) => {
      if (settled) return;
      options.cancel(id, reason);
      finish(err);
    };
    const onAbort = () => {
      const reason = options.signal.reason;
      abandon(reason instanceof Error ? reason : new Error("the call was cancelled"), "cancelled");
    };
    const timer = setTimeout(
      () =>
        abandon(
          new McpError(ErrorCode.RequestTimeout, `Request timed out after ${options.timeoutMs} ms`),
          "timed out",
        ),
      options.timeoutMs,
    );
    req.setNoDelay(true);
    const answer = (m: JsonRpcAnswer) => {
      if (m.id !== id) return;
      if (m.error !== undefined) {
        const e = m.error;
        finish(
          new McpError(
            typeof e.code === "number" ? e.code : ErrorCode.InternalError,
            typeof e.message === "string" ? e.message : "error without a message",
            e.data,
          ),
        );
      } else if (m.result !== undefined && m.result !== null && typeof m.result === "object") {
        finish(undefined, m.result);
      } else {
        finish(new HttpCallError("the upstream answered without a result object"));
      }
    };
    /** A request of the upstream on the call's stream: ping answered, anything else refused. */
    const serverRequest = (requestId: string | number, method: string) =>
      options.reply(
        method === "ping"
          ? { jsonrpc: "2.0", id: requestId, result: {} }
          : {
              jsonrpc: "2.0",
              id: requestId,
              error: {
                code: ErrorCode.MethodNotFound,
                message: `the gateway does not serve ${method.slice(0, 80)}`,
              },
            },
      );
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      const type = (res.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
      if (status === 404 && session.sessionId) {
        res.resume();
        finish(new SessionExpired("the upstream no longer knows the session"));
        return;
      }
      if (status < 200 || status > 299) {
        collect(res, 2048, (text) =>
          finish(
            new HttpCallError(
              `HTTP ${status}${text ? `: ${text.replace(/\s+/g, " ").trim().slice(0, 200)}` : ""}`,
            ),
          ),
        );
        return;
      }
      if (type === "application/json") {
        collect(res, options.maxBytes, (text, tooLarge) => {
          if (tooLarge) {
            finish(new HttpCallError(`the answer exceeds ${options.maxBytes} bytes`));
            return;
          }
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            finish(new HttpCallError("the upstream answered invalid JSON"));
            return;
          }
          for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
            if (m && typeof m === "object") answer(m as JsonRpcAnswer);
          }
          finish(new HttpCallError("the upstream's answer does not answer the call"));
        });
        return;
      }
      if (type === "text/event-stream") {
        readEvents(
          res,
          options.maxBytes,
          (data) => {
            let m: JsonRpcAnswer;
            try {
              m = JSON.parse(data) as JsonRpcAnswer;
            } catch {
              return; // not a JSON-RPC message (e.g. a priming event): nothing to do
            }
            if (m.method === "notifications/progress" && m.params?.progressToken === id) {
              const p = m.params;
              if (typeof p.progress === "number") {
                options.onProgress?.(
                  p.progress,
                  typeof p.total === "number" ? p.total : undefined,
                  typeof p.message === "string" ? p.message : undefined,
                );
              }
              return;
            }
            if (m.method === "notifications/message") {
              const log = options.onLog && logMessageOf(m.params);
              if (log) options.onLog?.(log);
              return;
            }
            if (typeof m.method === "string") {
              if (typeof m.id === "string" || typeof m.id === "number") {
                serverRequest(m.id, m.method);
              }
              return;
            }
            answer(m);
            if (settled) {
              // Answered: the upstream should end the stream now; a stream it keeps open does
              // not hold the socket for ever.
              const linger = setTimeout(() => res.destroy(), LINGER_MS);
              linger.unref();
              res.once("close", () => clearTimeout(linger));
            }
          },
          (err) =>
            finish(err ?? new HttpCallError("the upstream's event stream ended without an answer")),
        );
        return;
      }
      res.resume();
      finish(new HttpCallError(`HTTP ${status} with content type ${type || "none"}`));
    });
    req.on("error", (err) => finish(new HttpCallError(err.message, { cause: err })));
    options.signal.addEventListener("abort", onAbort, { once: true });
    req.end(body);
  });
}

/** Reads a body up to `max` bytes (then stops reading). */
function collect(
  res: http.IncomingMessage,
  max: number,
  done: (text: string, tooLarge: boolean) => void,
): void {
  const parts: Buffer[] = [];
  let size = 0;
  let over = false;
  res.on("data", (chunk: Buffer) => {
    if (over) return;
    size += chunk.length;
    if (size > max) {
      over = true;
      res.destroy();
      done("", true);
      return;
    }
    parts.push(chunk);
  });
  res.on("end", () => !over && done(Buffer.concat(parts).toString("utf8"), false));
  res.on("error", () => !over && done(Buffer.concat(parts).toString("utf8"), false));
}

/**
 * Parses an SSE stream (WHATWG `text/event-stream`): `data` lines of an event joined by "\n",
 * the event dispatched at a blank line; comments, `event`, `id` and `retry` fields ignored.
 * Lines end at CRLF, LF or CR (a CRLF split across chunks counts once); each character is
 * looked at once, however the stream is chunked. `end` is called once: with an error for an
 * event larger than `maxEvent` or a broken stream, else without.
 */
function readEvents(
  res: http.IncomingMessage,
  maxEvent: number,
  onData: (data: string) => void,
  end: (err?: Error) => void,
): void {
  res.setEncoding("utf8");
  /** The unfinished line (its characters were searched already). */
  let line = "";
  let data: string[] = [];
  let dataSize = 0;
  let skipLf = false;
  let ended = false;
  const stop = (err?: Error) => {
    if (ended) return;
    ended = true;
    end(err);
  };
  const onLine = (text: string) => {
    if (text === "") {
      if (data.length === 0) return;
      const event = data.join("\n");
      data = [];
      dataSize = 0;
      onData(event);
      return;
    }
    let value: string | undefined;
    if (text.startsWith("data:")) value = text.slice(text.charCodeAt(5) === 32 ? 6 : 5);
    else if (text === "data") value = "";
    if (value !== undefined) {
      data.push(value);
      dataSize += value.length + 1;
    }
  };
  res.on("data", (chunk: string) => {
    if (ended) return;
    let start = 0;
    if (skipLf && chunk.charCodeAt(0) === 10) start = 1;
    skipLf = false;
    for (let i = start; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const text = line + chunk.slice(start, i);
      line = "";
      if (c === 13) {
        if (i + 1 < chunk.length) {
          if (chunk.charCodeAt(i + 1) === 10) i++;
        } else {
          skipLf = true;
        }
      }
      start = i + 1;
      onLine(text);
      if (ended) return;
      if (dataSize > maxEvent) break;
    }
    if (start < chunk.length) line += chunk.slice(start);
    if (line.length + dataSize > maxEvent) {
      res.destroy();
      stop(new HttpCallError(`an event of the answer exceeds ${maxEvent} bytes`));
    }
  });
  res.on("end", () => stop());
  res.on("error", (err) => stop(new HttpCallError(err.message, { cause: err })));
  res.on("close", () => stop(new HttpCallError("the upstream closed the event stream")));
}
