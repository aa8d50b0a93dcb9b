import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** Request headers browsers may send to the RPC routes (Connect + gRPC-Web). */
export const CORS_ALLOWED_HEADERS = [
  "content-type",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-content-encoding",
  "connect-accept-encoding",
  "grpc-timeout",
  "x-grpc-web",
  "x-user-agent",
  "authorization",
  "traceparent",
  "accept",
  "mcp-protocol-version",
  "mcp-session-id",
  "last-event-id",
];

/** Response headers browsers may read. */
export const CORS_EXPOSED_HEADERS = [
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "content-encoding",
  "connect-content-encoding",
  "www-authenticate",
  "retry-after",
  "mcp-session-id",
];

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/**
 * Applies CORS for an explicit origin allowlist. Returns true when the
 * request was fully answered (a preflight, or a refused origin's preflight).
 * Origins not on the list get no CORS headers, so browsers block them;
 * `onRefused` hears of each refused preflight (for the audit chain).
 */
export function handleCors(
  allowed: ReadonlySet<string>,
  req: Req,
  res: Res,
  onRefused?: (origin: string) => void,
): boolean {
  const origin = req.headers.origin;
  const preflight = req.method === "OPTIONS";
  if (typeof origin !== "string" || !allowed.has(origin)) {
    if (preflight) {
      if (origin) onRefused?.(origin);
      res.writeHead(origin ? 403 : 204, { vary: "origin" });
      res.end();
      return true;
    }
    return false;
  }
  res.setHeader("access-control-allow-origin", origin);
  res.setHeader("vary", "origin");
  res.setHeader("access-control-expose-headers", CORS_EXPOSED_HEADERS.join(", "));
  if (preflight) {
    res.writeHead(204, {
      "access-control-allow-methods": "POST, GET",
      "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(", "),
      "access-control-max-age": "7200",
    });
    res.end();
    return true;
  }
  return false;
}
