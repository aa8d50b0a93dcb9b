import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { type connectNodeAdapter, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { rpcErrorResponse } from "../http/rpc-error.js";

type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;

/** The parts of a request {@link unimplementedError} looks at (web-standard). */
export interface RpcRequestHead {
  /** HTTP method. */
  method: string;
  /** The request URL, absolute or a path with query (`/pkg.Service/Method?…`). */
  url: string;
  header: Headers;
}

/** `/<package.Service>/<Method>`: the path of a procedure under the gRPC, gRPC-Web and Connect protocols. */
const PROCEDURE_PATH =
  /^\/((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*)\/([A-Za-z_][A-Za-z0-9_]*)$/;
const GRPC = /^application\/grpc(?:\+[a-z0-9._-]+)?$/;
const GRPC_WEB = /^application\/grpc-web(-text)?(?:\+[a-z0-9._-]+)?$/;
const CONNECT_STREAM = /^application\/connect\+[a-z0-9._-]+$/;
const CONNECT_UNARY = /^application\/(?:json|proto)$/;

/** The bare media type of a content-type header, lower case ("application/grpc+proto"). */
function mediaType(header: Headers): string {
  return (header.get("content-type") ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

/**
 * The error for a procedure this server does not serve, worded as grpc-go
 * words it: "unknown service X" or "unknown method M for service X".
 */
function errorFor(path: string, knownServices: ReadonlySet<string>): ConnectError {
  const m = PROCEDURE_PATH.exec(path);
  if (!m) return new ConnectError(`malformed method name: ${path}`, Code.Unimplemented);
  const [, service = "", method = ""] = m;
  return new ConnectError(
    knownServices.has(service)
      ? `unknown method ${method} for service ${service}`
      : `unknown service ${service}`,
    Code.Unimplemented,
  );
}

/**
 * The UNIMPLEMENTED error for a call of a procedure no route serves, or
 * undefined when the request is not an RPC (plain HTTP keeps its 404):
 * gRPC and gRPC-Web requests (by content type) on any path; Connect on a
 * `/<package.Service>/<Method>` path (or any two-segment path with a
 * `connect-protocol-version` header) as unary POST `application/json|proto`,
 * GET `?connect=v1`, or streaming POST `application/connect+…`.
 *
 * @example
 * const err = unimplementedError({ method, url, header }, new Set(["mcp.McpService"]));
 */
export function unimplementedError(
  req: RpcRequestHead,
  knownServices: ReadonlySet<string>,
): ConnectError | undefined {
  const url = new URL(req.url, "http://localhost");
  const type = mediaType(req.header);
  const error = () => errorFor(url.pathname, knownServices);
  if (GRPC.test(type) || GRPC_WEB.test(type)) return error();
  const m = PROCEDURE_PATH.exec(url.pathname);
  if (!m || (!m[1]?.includes(".") && !req.header.has("connect-protocol-version"))) {
    return undefined;
  }
  if (req.method === "POST" && (CONNECT_STREAM.test(type) || CONNECT_UNARY.test(type))) {
    return error();
  }
  if (req.method === "GET" && url.searchParams.get("connect") === "v1") return error();
  return undefined;
}

/**
 * The protocol-correct answer to a call of a procedure no route serves, or
 * undefined when the request is not an RPC (see {@link unimplementedError}):
 * gRPC → HTTP 200 with `grpc-status: 12` in the trailers; gRPC-Web → a trailer
 * frame with `grpc-status: 12` (base64 for `-text`); Connect unary → HTTP 501
 * `{"code":"unimplemented"}`; Connect streaming → an end-stream message with
 * that error. Written as Connect's universal (web-standard) response, so a
 * fetch runtime can serve it too (`universalServerResponseToFetch`).
 *
 * @example
 * const res = unimplementedResponse({ method, url, header }, new Set(["mcp.McpService"]));
 */
export function unimplementedResponse(
  req: RpcRequestHead,
  knownServices: ReadonlySet<string>,
): UniversalServerResponse | undefined {
  const error = unimplementedError(req, knownServices);
  return error && rpcErrorResponse(req.header.get("content-type") ?? "", error);
}

/** Options for {@link createUnimplementedFallback}. */
export interface UnimplementedFallbackOptions {
  /** Fully-qualified names of the services this port serves (for the error message). */
  knownServices: ReadonlySet<string>;
  /** Where every request that is not an RPC goes (the plain HTTP app). */
  next: NodeHandlerFn;
}

/**
 * The `fallback` of Connect's node adapter: RPC calls of unknown services or
 * methods get UNIMPLEMENTED in their own protocol (see
 * {@link unimplementedResponse}); everything else goes on to `next`.
 *
 * @example
 * connectNodeAdapter({ routes, fallback: createUnimplementedFallback({ knownServices, next }) });
 */
export function createUnimplementedFallback(options: UnimplementedFallbackOptions): NodeHandlerFn {
  return (req, res) => {
    const header = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (name.startsWith(":") || value === undefined) continue;
      header.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    const error = unimplementedError(
      { method: req.method ?? "", url: req.url ?? "/", header },
      options.knownServices,
    );
    if (!error) {
      options.next(req, res);
      return;
    }
    // Unlike the pre-body gate's refusals, the connection stays open and Node discards the
    // unread body, as for any 404: a client still sending it reads the status, not EPIPE.
    const answer = rpcErrorResponse(header.get("content-type") ?? "", error);
    universalResponseToNodeResponse(answer, res).catch(() => res.destroy());
  };
}
