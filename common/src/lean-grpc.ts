import {
  type ClientHttp2Stream,
  type Http2ServerRequest,
  type Http2ServerResponse,
  constants as h2,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type OutgoingHttpHeaders,
} from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type HandlerContext,
  type ServiceImpl,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";

/**
 * The edge ↔ runner link's fast path (ADR 0025): the unary and server-streaming methods of a
 * service served over gRPC (HTTP/2, binary protobuf, identity encoding) straight from Node's
 * request and response, without Connect's universal handler and its async-iterable pipeline,
 * header conversions and per-request AbortController plumbing (≈ 0.8 ms of CPU per call on
 * this machine, measured against this). The wire format is plain gRPC: any gRPC or Connect
 * client reaches these methods unchanged, and everything else — other protocols (Connect,
 * gRPC-Web), compressed requests, client and bidirectional streams, unknown paths — is left to
 * Connect's handler by returning false.
 */

/** Length-prefixed message framing of gRPC: flags (1 byte), length (4 bytes, big-endian). */
const FRAME_HEADER = 5;
const FLAG_COMPRESSED = 0b1;
const CONTENT_TYPE = "application/grpc+proto";

type AnyImpl = (input: unknown, ctx: HandlerContext) => unknown;

interface Route {
  service: DescService;
  method: DescMethod;
  impl: AnyImpl;
  streaming: boolean;
}

/** Options for {@link createLeanGrpcHandler}. */
export interface LeanGrpcHandlerOptions {
  /** Largest request message accepted, bytes (as Connect's `readMaxBytes`). */
  readMaxBytes: number;
}

/**
 * Returns a request listener for the unary and server-streaming methods of `service`. It answers
 * and returns true for a gRPC request (content-type `application/grpc` or `application/grpc+proto`,
 * no compression) to one of those methods; for anything else it returns false without touching the
 * request, so the caller hands it to Connect's handler.
 *
 * @example
 * const lean = createLeanGrpcHandler(RunnerService, impl, { readMaxBytes: 1 << 20 });
 * http2.createSecureServer(tls, (req, res) => lean(req, res) || connectHandler(req, res));
 */
export function createLeanGrpcHandler<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  options: LeanGrpcHandlerOptions,
): (req: Http2ServerRequest, res: Http2ServerResponse) => boolean {
  const routes = new Map<string, Route>();
  for (const method of service.methods) {
    const fn = (impl as Record<string, AnyImpl | undefined>)[method.localName];
    if (typeof fn !== "function") continue;
    if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") continue;
    routes.set(`/${service.typeName}/${method.name}`, {
      service,
      method,
      impl: fn.bind(impl) as AnyImpl,
      streaming: method.methodKind === "server_streaming",
    });
  }
  return (req, res) => {
    const route = routes.get(req.url);
    if (route === undefined || req.method !== "POST") return false;
    const type = req.headers["content-type"];
    if (type !== "application/grpc" && type !== CONTENT_TYPE) return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    serve(route, req, res, options.readMaxBytes);
    return true;
  };
}

function serve(
  route: Route,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  readMaxBytes: number,
): void {
  const controller = new AbortController();
  let finished = false;
  let timer: NodeJS.Timeout | undefined;
  const end = (): void => {
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
  };
  res.once("close", () => {
    if (finished) return;
    end();
    controller.abort(new ConnectError("the client closed the stream", Code.Canceled));
  });
  let timeoutMs: number | undefined;
  const timeout = req.headers["grpc-timeout"] as string | undefined;
  if (timeout !== undefined) {
    timeoutMs = parseTimeout(timeout);
    if (timeoutMs === undefined) {
      end();
      sendError(
        res,
        new ConnectError(
          `protocol error: invalid grpc timeout value: ${timeout}`,
          Code.InvalidArgument,
        ),
      );
      return;
    }
    timer = setTimeout(() => {
      const err = new ConnectError("the operation timed out", Code.DeadlineExceeded);
      controller.abort(err);
      if (!finished) {
        end();
        sendError(res, err);
      }
    }, timeoutMs);
  }
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;

  readMessage(req, readMaxBytes)
    .then(async (bytes) => {
      if (finished) return;
      let input: unknown;
      try {
        input = fromBinary(route.method.input, bytes);
      } catch (err) {
        throw new ConnectError(
          `failed to parse the request: ${(err as Error).message}`,
          Code.InvalidArgument,
        );
      }
      const ctx = new LeanContext(route, req, controller.signal, deadline);
      if (!route.streaming) {
        const output = await route.impl(input, ctx);
        if (finished) return;
        const frame = encodeFrame(route.method.output, output);
        end();
        writeHead(res, ctx);
        res.addTrailers(trailers(ctx, undefined));
        res.end(frame);
        return;
      }
      const it = (route.impl(input, ctx) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      let done = false;
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) {
            done = true;
            break;
          }
          if (finished) break;
          if (!res.headersSent) writeHead(res, ctx);
          if (!res.write(encodeFrame(route.method.output, r.value))) await drained(res);
          if (finished) break;
        }
      } finally {
        // A stream left early (the client went away, an error) still runs the generator's cleanup.
        if (!done) void Promise.resolve(it.return?.()).catch(() => undefined);
      }
      if (finished) return;
      end();
      if (!res.headersSent) writeHead(res, ctx);
      res.addTrailers(trailers(ctx, undefined));
      res.end();
    })
    .catch((err: unknown) => {
      if (finished) return;
      end();
      controller.abort(err);
      sendError(res, err);
    });
}

/** Reads the request body: exactly one uncompressed message of at most `maxBytes`. */
function readMessage(req: Http2ServerRequest, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const fail = (err: ConnectError): void => {
      if (failed) return;
      failed = true;
      req.removeAllListeners("data");
      req.resume();
      reject(err);
    };
    /** The message's declared length, once its frame header has arrived. */
    let declared: number | undefined;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      chunks.push(chunk);
      if (declared === undefined && size >= FRAME_HEADER) {
        const head = Buffer.concat(chunks);
        declared = head.readUInt32BE(1);
        if (declared > maxBytes) {
          fail(
            new ConnectError(
              `message size ${declared} is larger than configured readMaxBytes ${maxBytes}`,
              Code.ResourceExhausted,
            ),
          );
          return;
        }
      }
      if (declared !== undefined && size > FRAME_HEADER + declared) {
        fail(
          new ConnectError(
            "protocol error: received extra input message for unary method",
            Code.Unimplemented,
          ),
        );
      }
    });
    req.once("end", () => {
      if (failed) return;
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      if (body.length < FRAME_HEADER) {
        fail(
          new ConnectError(
            "protocol error: missing input message for unary method",
            Code.Unimplemented,
          ),
        );
        return;
      }
      if (((body[0] as number) & FLAG_COMPRESSED) !== 0) {
        fail(
          new ConnectError(
            "protocol error: received compressed message without grpc-encoding",
            Code.Internal,
          ),
        );
        return;
      }
      const length = body.readUInt32BE(1);
      if (body.length !== FRAME_HEADER + length) {
        fail(new ConnectError("protocol error: incomplete input message", Code.InvalidArgument));
        return;
      }
      resolve(body.subarray(FRAME_HEADER));
    });
    req.once("error", (err) =>
      fail(new ConnectError(`reading the request failed: ${err.message}`, Code.Aborted)),
    );
  });
}

function encodeFrame(schema: DescMessage, value: unknown): Buffer {
  const bytes = toBinary(schema, create(schema, value as never));
  const frame = Buffer.allocUnsafe(FRAME_HEADER + bytes.length);
  frame[0] = 0;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, FRAME_HEADER);
  return frame;
}

function writeHead(res: Http2ServerResponse, ctx: LeanContext): void {
  const headers: OutgoingHttpHeaders = { "content-type": CONTENT_TYPE };
  ctx.sentHeader?.forEach((value, key) => {
    headers[key] = value;
  });
  res.writeHead(200, headers);
}

function trailers(
  ctx: LeanContext | undefined,
  err: ConnectError | undefined,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  ctx?.sentTrailer?.forEach((value, key) => {
    out[key] = value;
  });
  err?.metadata.forEach((value, key) => {
    out[key] = value;
  });
  out["grpc-status"] = String(err === undefined ? 0 : err.code);
  if (err !== undefined) out["grpc-message"] = encodeURIComponent(err.rawMessage);
  return out;
}

/** Ends the call with an error: trailers-only when nothing was sent yet. */
function sendError(res: Http2ServerResponse, reason: unknown): void {
  if (res.writableEnded || res.destroyed || res.stream?.destroyed) return;
  const err = ConnectError.from(reason);
  if (!res.headersSent) {
    res.writeHead(200, { "content-type": CONTENT_TYPE, ...trailers(undefined, err) });
    res.end();
    return;
  }
  res.addTrailers(trailers(undefined, err));
  res.end();
}

function drained(res: Http2ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/** `grpc-timeout` (1–8 digits and a unit) in ms, or undefined when malformed. */
export function parseTimeout(value: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  const unit = m?.[2] === undefined ? undefined : TIMEOUT_UNIT_MS[m[2]];
  return m === null || unit === undefined ? undefined : Number(m[1]) * unit;
}

/**
 * The HandlerContext a method implementation sees. Headers objects are built only when asked
 * for: the runner's methods read the signal and nothing else.
 */
class LeanContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly signal: AbortSignal;
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  readonly url: string;
  readonly #req: Http2ServerRequest;
  readonly #deadline: number | undefined;
  #requestHeader: Headers | undefined;
  #values: ContextValues | undefined;
  sentHeader: Headers | undefined;
  sentTrailer: Headers | undefined;

  constructor(route: Route, req: Http2ServerRequest, signal: AbortSignal, deadline?: number) {
    this.method = route.method;
    this.service = route.service;
    this.signal = signal;
    this.url = req.url;
    this.#req = req;
    this.#deadline = deadline;
  }

  timeoutMs = (): number | undefined =>
    this.#deadline === undefined ? undefined : this.#deadline - Date.now();

  get requestHeader(): Headers {
    this.#requestHeader ??= toHeaders(this.#req.headers);
    return this.#requestHeader;
  }

  get responseHeader(): Headers {
    this.sentHeader ??= new Headers();
    return this.sentHeader;
  }

  get responseTrailer(): Headers {
    this.sentTrailer ??= new Headers();
    return this.sentTrailer;
  }

  get values(): ContextValues {
    this.#values ??= createContextValues();
    return this.#values;
  }
}

function toHeaders(headers: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [key, value] of Object.entries(headers)) {
    if (key.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(key, v);
    else out.set(key, value);
  }
  return out;
}

/** Options for {@link createLeanGrpcTransport}. */
export interface LeanGrpcTransportOptions {
  /** The server's URL; its path, if any, prefixes every method's. */
  baseUrl: string;
  /** Connections (keep-alive pings, idle close, reconnects); share it with `fallback`. */
  sessionManager: Http2SessionManager;
  /** Connect's gRPC transport over the same session manager: client and bidi streams. */
  fallback: Transport;
  /** Largest response message accepted, bytes (default 64 MiB). */
  readMaxBytes?: number;
}

/**
 * A gRPC client transport for unary and server-streaming calls written straight onto an HTTP/2
 * stream of the session manager (ADR 0025): the same wire format, errors and deadlines as
 * Connect's gRPC transport, without its universal client pipeline. Client and bidirectional
 * streams go to `fallback`.
 *
 * @example
 * const sessionManager = new Http2SessionManager(url, { pingIntervalMs: 10_000 }, tlsOptions);
 * const fallback = createGrpcTransport({ baseUrl: url, sessionManager });
 * const client = createClient(RunnerService, createLeanGrpcTransport({ baseUrl: url, sessionManager, fallback }));
 */
export function createLeanGrpcTransport(options: LeanGrpcTransportOptions): Transport {
  const readMaxBytes = options.readMaxBytes ?? 64 * 1024 * 1024;
  const prefix = new URL(options.baseUrl).pathname.replace(/\/+$/, "");
  const sm = options.sessionManager;

  async function open<O extends DescMessage>(
    method: DescMethod,
    output: O,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: ConstructorParameters<typeof Headers>[0] | undefined,
    input: unknown,
  ): Promise<LeanCall<O>> {
    if (signal?.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
    const frame = encodeFrame(method.input, input);
    const headers: OutgoingHttpHeaders = { "content-type": CONTENT_TYPE, te: "trailers" };
    if (header !== undefined) {
      new Headers(header).forEach((value, key) => {
        headers[key] = value;
      });
    }
    if (timeoutMs !== undefined) {
      if (timeoutMs <= 0) throw new ConnectError("the operation timed out", Code.DeadlineExceeded);
      headers["grpc-timeout"] = `${Math.min(Math.ceil(timeoutMs), 99_999_999)}m`;
    }
    // One guard from here to the call's end: the deadline and the signal cover getting a
    // connection too (connect, TLS handshake, the session manager's ping of an idle
    // connection), as Connect's do.
    const guard = new CallGuard(signal, timeoutMs);
    const stopped = new Promise<never>((_, reject) => guard.notify(reject));
    stopped.catch(() => undefined);
    const requested = sm.request(
      "POST",
      `${prefix}/${method.parent.typeName}/${method.name}`,
      headers,
      {},
    );
    let stream: ClientHttp2Stream;
    try {
      stream = await Promise.race([requested, stopped]);
    } catch (err) {
      guard.dispose();
      // A stream opened after the call gave up is reset, never sent.
      requested.then(
        (late) => {
          if (!late.closed) late.close(h2.NGHTTP2_CANCEL);
        },
        () => undefined,
      );
      throw nodeError(err, Code.Unavailable);
    }
    const call = new LeanCall(stream, sm, output, readMaxBytes, guard);
    // Not sent when the guard fired between the stream's arrival and here (reset instead).
    if (guard.reason === undefined) stream.end(frame);
    await call.headers;
    return call;
  }

  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      if (method.methodKind !== "unary") {
        return options.fallback.unary(method, signal, timeoutMs, header, input, contextValues);
      }
      const call = await open(method, method.output, signal, timeoutMs, header, input);
      let message: MessageShape<typeof method.output> | undefined;
      for await (const m of call) {
        if (message !== undefined) {
          call.cancel();
          throw new ConnectError(
            "protocol error: received extra output message for unary method",
            Code.Unimplemented,
          );
        }
        message = m;
      }
      if (message === undefined) {
        throw new ConnectError(
          "protocol error: missing output message for unary method",
          Code.Unimplemented,
        );
      }
      return response(call, { stream: false, service: method.parent, method, message }) as never;
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      if (method.methodKind !== "server_streaming") {
        return options.fallback.stream(method, signal, timeoutMs, header, input, contextValues);
      }
      let first: unknown;
      let received = false;
      for await (const m of input) {
        first = m;
        received = true;
        break;
      }
      if (!received) {
        throw new ConnectError("protocol error: missing request message", Code.InvalidArgument);
      }
      const call = await open(method, method.output, signal, timeoutMs, header, first);
      return response(call, {
        stream: true,
        service: method.parent,
        method,
        message: call,
      }) as unknown as StreamResponse<never, never>;
    },
  };
}

/** A response whose header and trailer are built only when asked for. */
function response<T extends object>(
  call: LeanCall<DescMessage>,
  fields: T,
): T & Pick<UnaryResponse, "header" | "trailer"> {
  return Object.defineProperties(fields, {
    header: { get: () => toHeaders(call.responseHeaders ?? {}), enumerable: true },
    trailer: { get: () => toHeaders(call.responseTrailers ?? {}), enumerable: true },
  }) as T & Pick<UnaryResponse, "header" | "trailer">;
}

/**
 * A call's deadline and cancellation, armed once before the connection is asked for and kept
 * until the call ends. Whoever holds the call (first `open`, then its LeanCall) hears of it.
 */
class CallGuard {
  /** Why the call must stop, once it must. */
  reason: ConnectError | undefined;
  #onStop: (err: ConnectError) => void = () => undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #onAbort = (): void => {
    this.#stop(ConnectError.from(this.#signal?.reason, Code.Canceled));
  };

  constructor(signal: AbortSignal | undefined, timeoutMs: number | undefined) {
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(
        () => this.#stop(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
        timeoutMs,
      );
    }
  }

  #stop(err: ConnectError): void {
    if (this.reason !== undefined) return;
    this.reason = err;
    this.dispose();
    this.#onStop(err);
  }

  /** From now on `onStop` hears of it; at once when the call must already stop. */
  notify(onStop: (err: ConnectError) => void): void {
    this.#onStop = onStop;
    if (this.reason !== undefined) onStop(this.reason);
  }

  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}

interface Settle {
  resolve: () => void;
  reject: (err: ConnectError) => void;
}

/** Messages queued before the stream is paused (the consumer is slower than the server). */
const HIGH_WATER = 16;

/** One call on the wire: parses frames as they arrive and hands messages to one consumer. */
class LeanCall<O extends DescMessage> implements AsyncIterable<MessageShape<O>> {
  /** Settles when the response's headers arrived (or the call failed before them). */
  readonly headers: Promise<void>;
  responseHeaders: IncomingHttpHeaders | undefined;
  responseTrailers: IncomingHttpHeaders | undefined;
  readonly #stream: ClientHttp2Stream;
  readonly #sm: Http2SessionManager;
  readonly #output: O;
  readonly #readMaxBytes: number;
  readonly #queue: MessageShape<O>[] = [];
  #chunks: Buffer[] = [];
  #size = 0;
  #error: ConnectError | undefined;
  #ended = false;
  #wake: (() => void) | undefined;
  #headersSettled: Settle;
  readonly #guard: CallGuard;

  constructor(
    stream: ClientHttp2Stream,
    sm: Http2SessionManager,
    output: O,
    readMaxBytes: number,
    guard: CallGuard,
  ) {
    this.#stream = stream;
    this.#sm = sm;
    this.#output = output;
    this.#readMaxBytes = readMaxBytes;
    this.#guard = guard;
    let settled!: Settle;
    this.headers = new Promise<void>((resolve, reject) => {
      settled = { resolve, reject };
    });
    this.#headersSettled = settled;
    this.headers.catch(() => undefined);
    stream.on("response", (headers) => this.#onResponse(headers));
    stream.on("data", (chunk: Buffer) => this.#onData(chunk));
    stream.on("trailers", (trailers) => {
      this.responseTrailers = trailers;
    });
    stream.on("error", (err) => this.#fail(nodeError(err, Code.Internal)));
    stream.on("close", () => this.#onClose());
    guard.notify((err) => this.#fail(err));
  }

  #onResponse(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void {
    this.responseHeaders = headers;
    const status = headers[":status"] ?? 0;
    if (status !== 200) {
      this.#fail(
        new ConnectError(
          `HTTP ${status} from the server`,
          codeOfHttpStatus(status),
          toHeaders(headers),
        ),
      );
      return;
    }
    const type = headers["content-type"] ?? "";
    if (!type.startsWith("application/grpc")) {
      this.#fail(new ConnectError(`unexpected content-type "${type}"`, Code.Internal));
      return;
    }
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      this.#fail(new ConnectError(`unsupported response encoding "${encoding}"`, Code.Internal));
      return;
    }
    // Trailers-only: the status is in the headers (an error before any message).
    if (headers["grpc-status"] !== undefined) this.responseTrailers = headers;
    this.#headersSettled.resolve();
  }

  #onData(chunk: Buffer): void {
    if (this.#error !== undefined) return;
    this.#sm.notifyResponseByteRead(this.#stream);
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    // Chunks are kept as they come (HTTP/2 delivers ≤ 16 KiB at a time) and joined once per
    // complete message, never once per chunk.
    while (this.#size >= FRAME_HEADER) {
      let first = this.#chunks[0] as Buffer;
      if (first.length < FRAME_HEADER) {
        first = Buffer.concat(this.#chunks);
        this.#chunks = [first];
      }
      const length = first.readUInt32BE(1);
      if (length > this.#readMaxBytes) {
        this.#fail(
          new ConnectError(
            `message size ${length} is larger than configured readMaxBytes ${this.#readMaxBytes}`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      if (this.#size < FRAME_HEADER + length) break;
      if (((first[0] as number) & FLAG_COMPRESSED) !== 0) {
        this.#fail(
          new ConnectError("protocol error: received a compressed message", Code.Internal),
        );
        return;
      }
      const all = this.#chunks.length === 1 ? first : Buffer.concat(this.#chunks, this.#size);
      try {
        this.#queue.push(
          fromBinary(this.#output, all.subarray(FRAME_HEADER, FRAME_HEADER + length)),
        );
      } catch (err) {
        this.#fail(
          new ConnectError(
            `failed to parse the response: ${(err as Error).message}`,
            Code.Internal,
          ),
        );
        return;
      }
      const rest = all.subarray(FRAME_HEADER + length);
      this.#chunks = rest.length === 0 ? [] : [rest];
      this.#size = rest.length;
    }
    if (this.#queue.length >= HIGH_WATER) this.#stream.pause();
    this.#notify();
  }

  #onClose(): void {
    if (this.#error !== undefined || this.#ended) return;
    this.#cleanup();
    const trailers = this.responseTrailers;
    const status = trailers?.["grpc-status"];
    if (status === undefined) {
      const code = this.#stream.rstCode;
      this.#fail(
        code === h2.NGHTTP2_CANCEL
          ? new ConnectError("the server canceled the stream", Code.Canceled)
          : code === h2.NGHTTP2_REFUSED_STREAM
            ? new ConnectError("the server refused the stream", Code.Unavailable)
            : new ConnectError(
                code === h2.NGHTTP2_NO_ERROR
                  ? "protocol error: the stream ended without a grpc-status"
                  : `http/2 stream closed with error code 0x${code.toString(16)}`,
                Code.Internal,
              ),
      );
      return;
    }
    const code = Number(status);
    if (code !== 0) {
      const message = String(trailers?.["grpc-message"] ?? "");
      this.#fail(
        new ConnectError(
          decodeMessage(message),
          Code[code] === undefined ? Code.Unknown : (code as Code),
          toHeaders(trailers ?? {}),
        ),
      );
      return;
    }
    if (this.#size !== 0) {
      this.#fail(new ConnectError("protocol error: incomplete message", Code.Internal));
      return;
    }
    this.#ended = true;
    this.#headersSettled.resolve();
    this.#notify();
  }

  #fail(err: ConnectError): void {
    if (this.#error !== undefined || this.#ended) return;
    this.#error = err;
    this.#cleanup();
    this.#headersSettled.reject(err);
    if (!this.#stream.closed) this.#stream.close(h2.NGHTTP2_CANCEL);
    this.#notify();
  }

  #cleanup(): void {
    this.#guard.dispose();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Stops the call: the stream is reset with CANCEL. */
  cancel(): void {
    this.#fail(new ConnectError("the client canceled the call", Code.Canceled));
  }

  [Symbol.asyncIterator](): AsyncIterator<MessageShape<O>> {
    return {
      next: async (): Promise<IteratorResult<MessageShape<O>>> => {
        for (;;) {
          const message = this.#queue.shift();
          if (message !== undefined) {
            if (this.#queue.length < HIGH_WATER / 4 && this.#stream.isPaused())
              this.#stream.resume();
            return { done: false, value: message };
          }
          if (this.#error !== undefined) throw this.#error;
          if (this.#ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
          });
        }
      },
      return: async (): Promise<IteratorResult<MessageShape<O>>> => {
        if (!this.#ended) this.cancel();
        return { done: true, value: undefined };
      },
    };
  }
}

/**
 * A Node error as a ConnectError with the code Connect's Node transport gives it (a reset or
 * destroyed stream is Aborted, an unreachable peer Unavailable), keeping it as the cause.
 */
function nodeError(reason: unknown, fallback: Code): ConnectError {
  if (reason instanceof ConnectError) return reason;
  const codes = new Set<string>();
  for (let c: unknown = reason, i = 0; c instanceof Error && i < 16; c = c.cause, i++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === "string") codes.add(code);
  }
  let code = fallback;
  if (codes.has("ERR_STREAM_WRITE_AFTER_END")) code = Code.Aborted;
  else if (
    ["ERR_STREAM_DESTROYED", "ERR_HTTP2_INVALID_STREAM", "ECONNRESET"].some((c) => codes.has(c))
  )
    code = Code.Aborted;
  else if (["ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED"].some((c) => codes.has(c)))
    code = Code.Unavailable;
  const err = ConnectError.from(reason, code);
  if (err !== reason) err.cause = reason;
  return err;
}

/** The gRPC code for an HTTP status without grpc-status (gRPC's HTTP to gRPC status mapping). */
function codeOfHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

function decodeMessage(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
