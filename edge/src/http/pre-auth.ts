import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { addressKey, tokenBuckets } from "@mcp-gateway/common/connection-guard";
import { toConnectError } from "@mcp-gateway/common/errors";
import type { Logger } from "pino";
import type { EdgeMetrics } from "../metrics.js";
import type { PreAuthenticated } from "../pipeline/interceptor.js";
import type { PrincipalRecord } from "../store/types.js";
import { writeRpcError } from "./rpc-error.js";

type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

/** `/<package.Service>/<Method>`, the path of a procedure under gRPC, gRPC-Web and Connect. */
const PROCEDURE_PATH = /^\/([A-Za-z_][A-Za-z0-9_.]*)\/([A-Za-z_][A-Za-z0-9_]*)$/;

/** Options for {@link createPreAuth}. */
export interface PreAuthOptions {
  /** Services whose procedures need a principal (e.g. "mcp.McpService"). */
  services: ReadonlySet<string>;
  /** Procedures ("<service>/<Method>") callable without credentials. */
  publicProcedures: ReadonlySet<string>;
  /** Verifies the Authorization header; throws an auth error. */
  authenticate: (authorization: string | null) => Promise<PrincipalRecord>;
  /** Token bucket per principal: 0 = allowed, else ms to wait. */
  rateLimit: (principal: PrincipalRecord) => number;
  /** Largest body of a procedure, bytes: a larger `content-length` is refused unread. */
  bodyLimit: (method: string) => number;
  metrics: EdgeMetrics;
  logger: Logger;
  /**
   * Hears of each call refused here (before the interceptor, which never sees
   * it): for security-event records. `code` is the auth error code,
   * "rate_limited" or "body_too_large".
   */
  onRefused?: (event: { code: string; peer: string; method: string; sub?: string }) => void;
  /** Paces authentication failures per client address (issue 21). Absent: always at once. */
  failurePacer?: AuthFailurePacer;
}

/** Shared by every door that authenticates (RPC pre-auth, `/mcp`): one budget per address. */
export interface AuthFailurePacer {
  /** Resolves once a refusal for this address may be answered (at once within its budget). */
  pace(address: string): Promise<void>;
}

/** How fast an address's failed authentications are answered. */
export interface AuthFailureBudget {
  /** Failures per second per address answered at once. */
  perSecond: number;
  /** Failures answered at once in a burst. */
  burst: number;
  /** Wait before answering a failure beyond the budget, ms (the socket is held, no CPU). */
  delayMs: number;
}

/** Addresses tracked at most (the least recently used is forgotten first: a full bucket again). */
const MAX_TRACKED_ADDRESSES = 10_000;

/**
 * Per-address budget of authentication failures. A client that keeps presenting bad
 * credentials in a closed loop — an unauthenticated flood — is answered at the pace of the
 * delay instead of as fast as the edge can refuse; an open-loop one meets the connection caps.
 */
export function createAuthFailurePacer(
  budget: AuthFailureBudget,
  metrics: Pick<EdgeMetrics, "authFailuresDelayed">,
): AuthFailurePacer | undefined {
  if (budget.delayMs <= 0) return undefined;
  const answerNow = tokenBuckets(budget.perSecond, budget.burst, MAX_TRACKED_ADDRESSES);
  return {
    async pace(address) {
      // Counted as the connection caps count: IPv4 (also mapped), or the IPv6 /64 — one
      // client cannot get a fresh budget per address of its prefix.
      if (answerNow(addressKey(address))) return;
      metrics.authFailuresDelayed.inc();
      await new Promise((r) => setTimeout(r, budget.delayMs));
    },
  };
}

/** The pre-body gate of the public port. */
export interface PreAuth {
  /**
   * Authenticates and rate-limits an RPC call from its headers alone. Resolves
   * true when the call may go on to the Connect adapter (which reads the body);
   * false when it was answered here, with the body unread.
   */
  admit(req: NodeRequest, res: NodeResponse): Promise<boolean>;
  /** The principal {@link PreAuth.admit} established for this request (and when), or null. */
  principalOf(req: NodeRequest): PreAuthenticated | null;
}

/**
 * Authenticate before the body (issue 21, finding 2): the bearer token of
 * every non-public procedure of the guarded services is verified, the caller
 * rate-limited and the declared body size checked against the procedure's
 * limit before a byte of the body is read or inflated. The Connect
 * interceptor then reuses the principal (`preAuthenticatedKey`) instead of
 * authenticating again. Public procedures (Health), the standard gRPC
 * services (health, reflection) and plain HTTP routes pass untouched.
 *
 * @example
 * const gate = createPreAuth({ services, publicProcedures, authenticate, rateLimit, bodyLimit, metrics, logger });
 * listener: (req, res) => void gate.admit(req, res).then((ok) => ok && rpc(req, res)),
 */
/** Largest oversized body of an authenticated caller that is drained after its refusal
 * (writeRpcError); a larger one ends the connection. */
const DRAIN_OVERSIZED_BYTES = 16 * 1024 * 1024;

export function createPreAuth(options: PreAuthOptions): PreAuth {
  const principals = new WeakMap<NodeRequest, PreAuthenticated>();

  const refuse = (
    req: NodeRequest,
    res: NodeResponse,
    err: unknown,
    drain: { drainUpTo?: number } = {},
  ) => {
    const ce = toConnectError(err);
    writeRpcError(req, res, ce, drain);
    return false;
  };
  return {
    principalOf(req) {
      return principals.get(req) ?? null;
    },
    async admit(req, res) {
      const path = (req.url ?? "").split("?", 1)[0] ?? "";
      const m = PROCEDURE_PATH.exec(path);
      if (!m || !options.services.has(m[1] ?? "")) return true;
      const procedure = `${m[1]}/${m[2]}`;
      if (options.publicProcedures.has(procedure)) return true;
      const limit = options.bodyLimit(m[2] ?? "");
      const declared = Number(req.headers["content-length"] ?? Number.NaN);
      const peer = req.socket?.remoteAddress ?? "";
      let principal: PrincipalRecord;
      const authnStarted = performance.timeOrigin + performance.now();
      let authnEnded = authnStarted;
      try {
        const header = req.headers.authorization;
        principal = await options.authenticate(typeof header === "string" ? header : null);
        authnEnded = performance.timeOrigin + performance.now();
      } catch (err) {
        options.metrics.authFailures.inc({
          reason: String((err as { code?: unknown }).code ?? "unknown"),
        });
        const code = String((err as { code?: unknown }).code ?? "unknown");
        options.logger.debug(
          { method: m[2], peer, code },
          "refused before the body: not authenticated",
        );
        options.onRefused?.({ code, peer, method: m[2] ?? "" });
        if (options.failurePacer) {
          await options.failurePacer.pace(peer);
          if (req.socket?.destroyed || res.destroyed) return false;
        }
        return refuse(req, res, err);
      }
      const waitMs = options.rateLimit(principal);
      if (waitMs > 0) {
        options.metrics.rateLimited.inc();
        options.onRefused?.({ code: "rate_limited", peer, method: m[2] ?? "", sub: principal.sub });
        const seconds = Math.max(1, Math.ceil(waitMs / 1000));
        return refuse(
          req,
          res,
          new ConnectError(
            `rate limit exceeded for ${principal.sub}; retry in ${seconds}s`,
            Code.ResourceExhausted,
            { "retry-after": String(seconds) },
          ),
        );
      }
      if (Number.isFinite(declared) && declared > limit) {
        options.onRefused?.({
          code: "body_too_large",
          peer,
          method: m[2] ?? "",
          sub: principal.sub,
        });
        return refuse(
          req,
          res,
          new ConnectError(
            `request body of ${declared} bytes exceeds the limit of ${limit} bytes for ${m[2]}`,
            Code.ResourceExhausted,
          ),
          // Authenticated and within bounds: the body still on its way is discarded after the
          // answer, so a client still sending reads the answer instead of a reset.
          { drainUpTo: DRAIN_OVERSIZED_BYTES },
        );
      }
      principals.set(req, {
        principal,
        authnStarted,
        authnEnded,
      });
      return true;
    },
  };
}
