// The browser entry point of @mcp-gateway/client (`@mcp-gateway/client/web`):
// the same typed McpService client as the Node entry point, on
// @connectrpc/connect-web (fetch), for gRPC-Web and the Connect protocol.
// Nothing here imports Node modules, so a bundler (esbuild, Vite, webpack)
// can build it for any browser.
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { McpService } from "@mcp-gateway/proto/mcp";

export { denyReasons, describeProblem, type Problem, type ProblemKind } from "./problem.js";

/** Where the token of the next call comes from: a value, or a function asked on every call. */
export type TokenSource =
  | string
  | (() => string | null | undefined | Promise<string | null | undefined>);

/** Options for {@link createMcpWebClient}. */
export interface McpWebClientOptions {
  /**
   * Base URL of the edge, e.g. `https://gateway.example.com`. A page served by
   * the edge itself (the console) passes its own origin; any other origin must
   * be in the edge's `corsOrigins`.
   */
  baseUrl: string;
  /**
   * The bearer token. A function is called before every call, so a token
   * refreshed or replaced (sign-in again) is used at once; a missing token
   * sends no `authorization` header (only Health answers then).
   */
  token?: TokenSource;
  /**
   * Wire protocol: `"grpc-web"` (default; binary protobuf) or `"connect"`
   * (binary protobuf, or JSON with `json: true`).
   */
  protocol?: "grpc-web" | "connect";
  /** Connect protocol only: send JSON instead of binary protobuf (readable in devtools). */
  json?: boolean;
  /**
   * Called when a call fails because the token was missing, expired or
   * rejected (Unauthenticated): e.g. show the sign-in form. The call still
   * rejects with the error.
   */
  onUnauthenticated?: (error: ConnectError) => void;
  /** The fetch to use (default: the global one), e.g. one that sets `credentials`. */
  fetch?: typeof globalThis.fetch;
  /** Deadline of every call in milliseconds, unless the call sets its own `timeoutMs`. */
  defaultTimeoutMs?: number;
}

/** A typed client for mcp.McpService, the same type as the Node entry point's. */
export type McpWebClient = Client<typeof McpService>;

/**
 * Creates a typed McpService client for browsers on the generated stubs, over
 * gRPC-Web (default) or the Connect protocol. Errors are ConnectErrors with
 * the gateway's codes and messages, as from every other client;
 * {@link describeProblem} turns one into words for a person.
 *
 * @example
 * import { createMcpWebClient, describeProblem } from "@mcp-gateway/client/web";
 * const client = createMcpWebClient({
 *   baseUrl: "https://gateway.example.com",
 *   token: () => sessionStorage.getItem("token"),
 *   onUnauthenticated: () => showSignIn(),
 * });
 * const { taskId } = await client.executeCommand({ command: "echo", args: ["hi"] });
 * for await (const chunk of client.streamTaskOutput({ taskId })) render(chunk);
 */
export function createMcpWebClient(options: McpWebClientOptions): McpWebClient {
  const source = options.token;
  const auth: Interceptor = (next) => async (req) => {
    const token = typeof source === "function" ? await source() : source;
    if (token) req.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(req);
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unauthenticated) options.onUnauthenticated?.(e);
      throw e;
    }
  };
  const common = {
    baseUrl: options.baseUrl,
    interceptors: [auth],
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.defaultTimeoutMs === undefined
      ? {}
      : { defaultTimeoutMs: options.defaultTimeoutMs }),
  };
  const transport =
    options.protocol === "connect"
      ? createConnectTransport({ ...common, useBinaryFormat: options.json !== true })
      : createGrpcWebTransport(common);
  return createClient(McpService, transport);
}
