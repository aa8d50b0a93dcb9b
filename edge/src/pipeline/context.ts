import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Context } from "@mcp-gateway/common/tracing";
import type { Logger } from "pino";
import type { PrincipalRecord } from "../store/types.js";

/** Per-call facts established by the interceptor before any handler runs. */
export interface RequestContext {
  /** Authenticated principal; null only for Health. */
  principal: PrincipalRecord | null;
  /** W3C trace id (32 hex) of the gateway's own trace; never the caller's (see clientTraceparent). */
  traceId: string;
  /** "grpc" | "grpc-web" | "connect" | "mcp". */
  protocol: string;
  /** The door the call came through: the RPC API or the MCP endpoint. */
  interface: "rpc" | "mcp";
  /** MCP tool name, for calls through the MCP endpoint. */
  tool?: string;
  /** Peer address as the edge saw it. */
  source: string;
  /** Logger with the trace id on every line. */
  logger: Logger;
  /** Trace context of the call's span: parent of every span the handler starts. */
  traceContext: Context;
  /** W3C traceparent of the call's span. */
  traceparent: string;
  /**
   * The caller's well-formed W3C `traceparent`, kept apart from the gateway's
   * trace (a span link, and `clientTraceparent` in audit details); "" when absent or invalid.
   */
  clientTraceparent?: string;
}

/** Context key under which the interceptor stores the {@link RequestContext}. */
export const requestContextKey = createContextKey<RequestContext | undefined>(undefined, {
  description: "mcp request context",
});

/** The request context, which the interceptor always sets. */
export function requestContext(ctx: HandlerContext): RequestContext {
  const rc = ctx.values.get(requestContextKey);
  if (!rc) throw new Error("request context missing: the edge interceptor did not run");
  return rc;
}

/** The authenticated principal of a call (every method but Health has one). */
export function principalOf(rc: RequestContext): PrincipalRecord {
  if (!rc.principal) throw new Error("principal missing on an authenticated method");
  return rc.principal;
}

/** Protocol of a call, from its content type. */
export function protocolOf(contentType: string | null): string {
  const ct = (contentType ?? "").toLowerCase();
  if (ct.startsWith("application/grpc-web")) return "grpc-web";
  if (ct.startsWith("application/grpc")) return "grpc";
  return "connect";
}
