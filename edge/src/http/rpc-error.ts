import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { encodeEnvelope, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamToJson,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { universalResponseToNodeResponse } from "@connectrpc/connect-node";

const GRPC = /^application\/grpc(?:\+[a-z0-9._-]+)?$/;
const GRPC_WEB = /^application\/grpc-web(-text)?(?:\+[a-z0-9._-]+)?$/;
const CONNECT_STREAM = /^application\/connect\+[a-z0-9._-]+$/;

function once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      yield bytes;
    },
  };
}

/**
 * An error answer in the caller's own protocol, written without reading the
 * request body: gRPC gets HTTP 200 with `grpc-status` trailers, gRPC-Web a
 * trailer frame, Connect streaming an end-stream message, and everything else
 * (Connect unary, plain HTTP) the Connect JSON error with its HTTP status.
 * The error's metadata (`www-authenticate`, `retry-after`) become response
 * headers.
 *
 * @example
 * const answer = rpcErrorResponse("application/grpc", new ConnectError("no", Code.Unauthenticated));
 */
export function rpcErrorResponse(
  contentType: string,
  error: ConnectError,
): UniversalServerResponse {
  const type = contentType.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  const header = new Headers(error.metadata);
  if (GRPC.test(type)) {
    header.set("content-type", type);
    return { status: 200, header, trailer: setTrailerStatus(new Headers(), error) };
  }
  const web = GRPC_WEB.exec(type);
  if (web) {
    header.set("content-type", type);
    const frame = encodeEnvelope(
      trailerFlag,
      trailerSerialize(setTrailerStatus(new Headers(), error)),
    );
    const body = web[1] ? new TextEncoder().encode(Buffer.from(frame).toString("base64")) : frame;
    return { status: 200, header, body: once(body) };
  }
  if (CONNECT_STREAM.test(type)) {
    header.set("content-type", type);
    const end = endStreamToJson(new Headers(), error, undefined);
    const bytes = new TextEncoder().encode(JSON.stringify(end));
    return { status: 200, header, body: once(encodeEnvelope(endStreamFlag, bytes)) };
  }
  header.set("content-type", "application/json");
  return {
    status: codeToHttpStatus(error.code),
    header,
    body: once(errorToJsonBytes(error, undefined)),
  };
}

/** A drained body that has not arrived by then ends its connection (writeRpcError). */
const DRAIN_MS = 10_000;

/**
 * Writes {@link rpcErrorResponse} to a node response without touching the
 * request body. An HTTP/1.1 connection is closed after the answer, so the
 * unread body is never parsed (Node would otherwise read and discard it to
 * reuse the connection).
 *
 * `drainUpTo` (bytes; for refusals of callers already authenticated): a body still arriving
 * whose declared length is at most this is read and discarded after the answer instead (the
 * connection is kept), for at most DRAIN_MS. A client that is still sending when the server
 * closes gets a connection reset, and with it loses the answer it was sent; an authenticated
 * client with a body over a method's limit gets its clear "resource_exhausted" this way.
 */
export function writeRpcError(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  error: ConnectError,
  options: { drainUpTo?: number } = {},
): void {
  const answer = rpcErrorResponse(String(req.headers["content-type"] ?? ""), error);
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  const drain =
    req.httpVersionMajor === 1 &&
    !req.complete &&
    options.drainUpTo !== undefined &&
    Number.isFinite(declared) &&
    declared <= options.drainUpTo;
  if (req.httpVersionMajor === 1 && !drain) answer.header?.set("connection", "close");
  universalResponseToNodeResponse(answer, res)
    .then(() => {
      if (req.httpVersionMajor !== 1) return;
      if (!drain) {
        req.socket.destroySoon?.();
        return;
      }
      // Node reads and discards the rest once the answer is sent (the request was never
      // consumed); a body that does not arrive in time ends the connection.
      if (req.complete) return;
      const timer = setTimeout(() => req.socket.destroy(), DRAIN_MS);
      timer.unref();
      req.once("end", () => clearTimeout(timer));
      req.socket.once("close", () => clearTimeout(timer));
    })
    .catch(() => res.destroy());
}
