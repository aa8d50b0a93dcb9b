import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { McpService } from "@mcp-gateway/proto/mcp";

/** Options for {@link createMcpClient}. */
export interface McpClientOptions {
  /** Base URL of the edge, e.g. http://127.0.0.1:8081. */
  baseUrl: string;
  /** Bearer token sent on every call (see `mcp-gateway token`). */
  token?: string;
  /** Wire protocol: "connect" (JSON over HTTP/1.1, default), "grpc" (HTTP/2) or "grpc-web". */
  protocol?: "connect" | "grpc" | "grpc-web";
  /** PEM CA bundle to trust when the edge serves TLS with a private CA. */
  ca?: Buffer;
}

/** A typed client for mcp.McpService. */
export type McpClient = Client<typeof McpService>;

/**
 * Creates a typed McpService client on the generated stubs, for any of the
 * three protocols the edge serves.
 *
 * @example
 * const client = createMcpClient({ baseUrl: "http://127.0.0.1:8081", token });
 * const { taskId } = await client.executeCommand({ command: "echo", args: ["hi"] });
 */
export function createMcpClient(options: McpClientOptions): McpClient {
  const interceptors: Interceptor[] = [];
  if (options.token) {
    const header = `Bearer ${options.token}`;
    interceptors.push((next) => (req) => {
      req.header.set("authorization", header);
      return next(req);
    });
  }
  const nodeOptions = options.ca ? { ca: options.ca } : {};
  const base = { baseUrl: options.baseUrl, interceptors, nodeOptions };
  switch (options.protocol ?? "connect") {
    case "grpc":
      return createClient(McpService, createGrpcTransport(base));
    case "grpc-web":
      return createClient(McpService, createGrpcWebTransport({ ...base, httpVersion: "1.1" }));
    default:
      return createClient(McpService, createConnectTransport({ ...base, httpVersion: "1.1" }));
  }
}
