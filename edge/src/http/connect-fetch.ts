import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import {
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
} from "@connectrpc/connect";
import {
  universalServerRequestFromFetch,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import type { Context, Hono } from "hono";

/** Content types a fetch handler can serve: Connect (unary and streaming) and gRPC-Web. */
const FETCH_SERVABLE =
  /^application\/(?:json|proto|connect\+[a-z0-9._-]+|grpc-web(?:-text)?(?:\+[a-z0-9._-]+)?)$/;

/** The bare, lower-case media type of a content-type header value. */
function mediaTypeOf(contentType: string | null | undefined): string {
  return (contentType ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

/**
 * Whether a request can be answered by a fetch handler: Connect (JSON or binary, unary or
 * streaming, including Connect GET) and gRPC-Web. Native gRPC (`application/grpc…`) needs HTTP/2
 * trailers, which the fetch API's Response cannot send; the Node entry point serves it.
 */
export function isFetchServable(method: string, contentType: string | null | undefined): boolean {
  if (method === "GET") return true; // Connect GET (idempotent methods, message in the query)
  return FETCH_SERVABLE.test(mediaTypeOf(contentType));
}

/**
 * The Node request behind a Hono context on @hono/node-server (`c.env.incoming`), or undefined
 * on any other runtime.
 */
export function nodeIncoming(env: unknown): IncomingMessage | Http2ServerRequest | undefined {
  const incoming = (env as { incoming?: IncomingMessage | Http2ServerRequest } | undefined)
    ?.incoming;
  return incoming && typeof incoming === "object" && "headers" in incoming ? incoming : undefined;
}

/** The routes and router options: the same object the Node adapter takes. */
export interface ConnectRoutes extends ConnectRouterOptions {
  /** Registers the services, as for `connectNodeAdapter`. */
  routes: (router: ConnectRouter) => void;
}

/** Options of {@link mountConnect}. */
export interface MountConnectOptions {
  /**
   * Context values of a call (e.g. the peer address for rate limiting and the audit record),
   * from the Hono context: on Node, `c.env.incoming` is the IncomingMessage; a fetch runtime
   * passes its own env.
   */
  contextValues?: (c: Context) => ContextValues;
  /** HTTP version reported to the protocol handlers; default "1.1" (no trailers). */
  httpVersion?: string;
}

/**
 * Mounts Connect's universal handlers as routes of a Hono app, so the app's `fetch` serves the
 * Connect and gRPC-Web protocols on any fetch runtime (Node through @hono/node-server, Deno,
 * Bun, workers) with the same routes, interceptors and limits as the Node adapter (`routes` is
 * the options object given to `connectNodeAdapter`). Native gRPC requests get 415 here: the Node
 * entry point serves them (see {@link isFetchServable}). Resolves to the mounted request paths.
 *
 * @example
 * const rpcOptions = { routes: (r) => r.service(McpService, impl), interceptors };
 * mountConnect(app, rpcOptions);
 * const res = await app.fetch(new Request("http://edge/mcp.McpService/Health", init));
 */
export function mountConnect(
  app: Hono,
  routes: ConnectRoutes,
  options: MountConnectOptions = {},
): ReadonlySet<string> {
  const httpVersion = options.httpVersion ?? "1.1";
  const router = createConnectRouter(routes);
  routes.routes(router);
  const paths = new Set<string>();
  for (const handler of router.handlers) {
    paths.add(handler.requestPath);
    const methods = handler.allowedMethods.filter((m) => m === "GET" || m === "POST");
    app.on(methods, handler.requestPath, async (c) => {
      const req = c.req.raw;
      if (!isFetchServable(req.method, req.headers.get("content-type"))) {
        return new Response(null, { status: 415 });
      }
      const uReq = universalServerRequestFromFetch(req, { httpVersion });
      const uRes = await handler({
        ...uReq,
        ...(options.contextValues ? { contextValues: options.contextValues(c) } : {}),
      });
      return universalServerResponseToFetch(uRes);
    });
  }
  return paths;
}
