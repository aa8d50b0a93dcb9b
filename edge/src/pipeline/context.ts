import { randomBytes } from "node:crypto";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { PrincipalRecord } from "../store/types.js";

/** Per-call facts established by the interceptor before any handler runs. */
export interface RequestContext {
  /** Authenticated principal; null only for Health. */
  principal: PrincipalRecord | null;
  /** W3C trace id (32 hex) from `traceparent`, or a fresh one. */
  traceId: string;
  /** "grpc" | "grpc-web" | "connect". */
  protocol: string;
  /** Peer address as the edge saw it. */
  source: string;
  /** Logger with the trace id on every line. */
  logger: Logger;
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

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Trace id from a W3C traceparent header, or a new random one. */
export function traceIdFrom(traceparent: string | null): string {
  const m = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  if (m?.[1] && m[1] !== "0".repeat(32)) return m[1];
  return randomBytes(16).toString("hex");
}

/** Protocol of a call, from its content type. */
export function protocolOf(contentType: string | null): string {
  const ct = (contentType ?? "").toLowerCase();
  if (ct.startsWith("application/grpc-web")) return "grpc-web";
  if (ct.startsWith("application/grpc")) return "grpc";
  return "connect";
}
