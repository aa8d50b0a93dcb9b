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

/**
 * Writes {@link rpcErrorResponse} to a node response without touching the
 * request body. An HTTP/1.1 connection is closed after the answer, so the
 * unread body is never parsed (Node would otherwise read and discard it to
 * reuse the connection).
 */
export function writeRpcError(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  error: ConnectError,
): void {
  const answer = rpcErrorResponse(String(req.headers["content-type"] ?? ""), error);
  if (req.httpVersionMajor === 1) answer.header?.set("connection", "close");
  universalResponseToNodeResponse(answer, res)
    .then(() => {
      if (req.httpVersionMajor === 1) req.socket.destroySoon?.();
    })
    .catch(() => res.destroy());
}
