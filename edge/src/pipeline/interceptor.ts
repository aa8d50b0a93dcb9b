import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { toConnectError } from "@mcp-gateway/common/errors";
import {
  clientTraceLink,
  endSpan,
  ROOT_CONTEXT,
  SpanKind,
  startSpan,
  type Tracer,
  traceparentOf,
} from "@mcp-gateway/common/tracing";
import type { Logger } from "pino";
import type { EdgeMetrics } from "../metrics.js";
import type { PrincipalRecord } from "../store/types.js";
import { protocolOf, requestContextKey } from "./context.js";

/** Peer address, set by the node adapter's contextValues hook. */
export const peerAddressKey = createContextKey<string>("", { description: "peer address" });

/** A principal established before the body, with when its verification ran (epoch ms). */
export interface PreAuthenticated {
  principal: PrincipalRecord;
  authnStarted: number;
  authnEnded: number;
}

/**
 * The principal the node listener already authenticated and rate-limited from
 * the headers, before the body was read (`http/pre-auth.ts`); the interceptor
 * then does neither again. Null when the listener did not (tests, fetch runtimes).
 */
export const preAuthenticatedKey = createContextKey<PreAuthenticated | null>(null, {
  description: "principal authenticated before the body",
});

/**
 * The key of a procedure in {@link EdgeInterceptorOptions.publicMethods}:
 * `<service type name>/<method name>`, e.g. "mcp.McpService/Health" — the
 * service is part of it, so a method of one service never becomes public
 * because another service has a public method of the same name.
 */
export function procedureName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** Response headers an error may carry to clients; anything else (e.g. a runner's response metadata) is dropped. */
const CLIENT_ERROR_HEADERS = ["www-authenticate", "retry-after"];

/**
 * The error as clients may see it: code and message, plus only the headers
 * meant for them. Errors relayed from a runner carry that runner's response
 * metadata (content type, grpc-status …), which must not reach the client.
 */
function forClient(err: ConnectError): ConnectError {
  const headers = new Headers();
  for (const name of CLIENT_ERROR_HEADERS) {
    const value = err.metadata.get(name);
    if (value !== null) headers.set(name, value);
  }
  return new ConnectError(err.rawMessage, err.code, headers, undefined, err.cause ?? err);
}

/** Options for {@link createEdgeInterceptor}. */
export interface EdgeInterceptorOptions {
  /** Verifies the Authorization header; throws an auth error (mapped to Unauthenticated). */
  authenticate: (authorization: string | null) => Promise<PrincipalRecord>;
  /** Token bucket per principal (keyed by issuer, tenant and subject): 0 = allowed, else ms to wait. */
  rateLimit: (principal: PrincipalRecord) => number;
  /** Procedures callable without credentials, as {@link procedureName} names them ("mcp.McpService/Health"). */
  publicMethods: ReadonlySet<string>;
  metrics: EdgeMetrics;
  logger: Logger;
  tracer: Tracer;
}

/**
 * The cross-cutting steps every McpService call goes through, identical for
 * gRPC, gRPC-Web and Connect: trace id, authentication, rate limit, error
 * mapping to ConnectError codes, logs and metrics. Policy and audit follow
 * in the handler pipeline (they need the decoded request).
 *
 * @example
 * connectNodeAdapter({ routes, interceptors: [createEdgeInterceptor(opts)] })
 */
export function createEdgeInterceptor(options: EdgeInterceptorOptions): Interceptor {
  const { metrics } = options;
  return (next) => async (req) => {
    const method = req.method.name;
    const protocol = protocolOf(req.header.get("content-type"));
    // The gateway's own trace: a client's traceparent is linked and kept apart, never adopted.
    const client = clientTraceLink(req.header.get("traceparent"));
    const rpc = startSpan(
      options.tracer,
      `${req.service.typeName}/${method}`,
      ROOT_CONTEXT,
      { "rpc.system": "connect_rpc", "rpc.method": method, "rpc.protocol": protocol },
      SpanKind.SERVER,
      client.links,
    );
    const traceId = rpc.span.spanContext().traceId;
    const logger = options.logger.child({
      traceId,
      method,
      protocol,
      ...(client.traceId ? { clientTraceId: client.traceId } : {}),
    });
    const started = performance.now();
    const done = (err: unknown) => {
      const ce = err === undefined ? undefined : forClient(toConnectError(err));
      const code = ce ? Code[ce.code] : "OK";
      rpc.span.setAttribute("rpc.connect_rpc.error_code", String(code));
      endSpan(rpc.span, ce && ce.code === Code.Internal ? ce : undefined);
      metrics.requests.inc({ method, protocol, code: String(code) });
      if (ce && (ce.code === Code.Internal || ce.code === Code.Unknown)) {
        logger.error({ err: ce.cause ?? ce, code }, "call failed");
      } else {
        logger.info({ code, ms: Math.round(performance.now() - started) }, "call");
      }
      return ce;
    };
    try {
      const pre = req.contextValues.get(preAuthenticatedKey);
      let principal: PrincipalRecord | null = pre?.principal ?? null;
      if (pre) {
        // Verified before the body was read: the span records when it ran,
        // under this RPC's span, so the trace tree stays RPC → authn → …
        const authn = options.tracer.startSpan(
          "authn",
          { startTime: pre.authnStarted, attributes: { "enduser.id": pre.principal.sub } },
          rpc.context,
        );
        authn.end(pre.authnEnded);
      }
      if (principal === null && !options.publicMethods.has(procedureName(req.method))) {
        const authn = startSpan(options.tracer, "authn", rpc.context);
        try {
          principal = await options.authenticate(req.header.get("authorization"));
          authn.span.setAttribute("enduser.id", principal.sub);
          endSpan(authn.span);
        } catch (err) {
          metrics.authFailures.inc({
            reason: String((err as { code?: unknown }).code ?? "unknown"),
          });
          endSpan(authn.span, err);
          throw err;
        }
        const waitMs = options.rateLimit(principal);
        if (waitMs > 0) {
          metrics.rateLimited.inc();
          const seconds = Math.max(1, Math.ceil(waitMs / 1000));
          throw new ConnectError(
            `rate limit exceeded for ${principal.sub}; retry in ${seconds}s`,
            Code.ResourceExhausted,
            { "retry-after": String(seconds) },
          );
        }
      }
      req.contextValues.set(requestContextKey, {
        principal,
        traceId,
        protocol,
        interface: "rpc",
        source: req.contextValues.get(peerAddressKey),
        logger,
        traceContext: rpc.context,
        traceparent: traceparentOf(rpc.span),
        clientTraceparent: client.traceparent,
      });
      const res = await next(req);
      if (!res.stream) {
        done(undefined);
        return res;
      }
      const inner = res.message;
      return {
        ...res,
        message: (async function* () {
          let failed = false;
          try {
            yield* inner;
          } catch (err) {
            failed = true;
            throw done(err);
          } finally {
            // Completed, or the client went away (return() on the generator): record it either way.
            if (!failed) done(undefined);
          }
        })(),
      };
    } catch (err) {
      throw done(err);
    }
  };
}
