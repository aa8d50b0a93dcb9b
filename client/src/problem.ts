import { Code, ConnectError } from "@connectrpc/connect";

/**
 * What kind of failure a call met, in the terms a person (or a UI) acts on.
 * One per way a console reacts: sign in again, show the policy's reasons, say
 * the service is unavailable, fix the input, wait, or show the message.
 */
export type ProblemKind =
  | "unauthenticated"
  | "permission_denied"
  | "runner_unavailable"
  | "unavailable"
  | "unreachable"
  | "invalid_argument"
  | "not_found"
  | "resource_exhausted"
  | "failed_precondition"
  | "cancelled"
  | "other";

/** A failed call described for people: see {@link describeProblem}. */
export interface Problem {
  /** What kind of failure it was. */
  kind: ProblemKind;
  /** The wire code (the same model as every other client: ConnectError codes). */
  code: Code;
  /** The gateway's own message, as it sent it (never a stack trace). */
  message: string;
  /**
   * The policy's deny reasons, as the policy wrote them, for a policy denial;
   * empty otherwise.
   */
  reasons: string[];
  /** One sentence for a person: what happened and what to do. */
  summary: string;
  /** Seconds to wait before trying again (rate limits, a draining edge), when the gateway said. */
  retryAfterSeconds?: number;
}

/** The prefix of a policy denial's message; the reasons follow, separated by "; ". */
const DENIAL_PREFIX = "permission denied: ";

/**
 * The policy's deny reasons of a PermissionDenied message (docs/api/errors.md:
 * "the message lists the policy's reasons"). Empty for other messages.
 *
 * @example
 * denyReasons("permission denied: sudo is not allowed; network is off") // ["sudo is not allowed", "network is off"]
 */
export function denyReasons(message: string): string[] {
  if (!message.startsWith(DENIAL_PREFIX)) return [];
  return message
    .slice(DENIAL_PREFIX.length)
    .split("; ")
    .map((r) => r.trim())
    .filter((r) => r !== "");
}

/** True when a ConnectError is the transport failing to reach the server (fetch refused, DNS, CORS). */
function isUnreachable(e: ConnectError): boolean {
  if (e.code !== Code.Unknown && e.code !== Code.Unavailable) return false;
  // connect-web and connect-node wrap the fetch/socket failure; the server never says "fetch failed".
  const cause = e.cause;
  if (cause instanceof TypeError) return true;
  return /\bfetch\b|ECONNREFUSED|ENOTFOUND|network/i.test(e.rawMessage);
}

/**
 * Describes any thrown value from a McpService call for a person: the kind of
 * failure, the gateway's message, the policy's deny reasons, and a sentence
 * saying what to do. Works for errors from the browser and the Node client.
 *
 * @example
 * try { await client.executeCommand(req) } catch (err) {
 *   const p = describeProblem(err);
 *   if (p.kind === "unauthenticated") showSignIn(p.summary);
 *   else show(p.summary, p.reasons);
 * }
 */
export function describeProblem(err: unknown): Problem {
  const e = ConnectError.from(err);
  const message = e.rawMessage;
  const base = { code: e.code, message, reasons: [] as string[] };
  const retry = Number(e.metadata.get("retry-after") ?? Number.NaN);
  const retryAfter = Number.isFinite(retry) && retry >= 0 ? { retryAfterSeconds: retry } : {};
  if (isUnreachable(e)) {
    return {
      ...base,
      kind: "unreachable",
      summary: "The gateway cannot be reached. Check that it is running and try again.",
    };
  }
  switch (e.code) {
    case Code.Unauthenticated:
      return {
        ...base,
        kind: "unauthenticated",
        summary: /expired/i.test(message)
          ? "Your sign-in has expired. Sign in again."
          : "The gateway did not accept your token. Sign in again.",
      };
    case Code.PermissionDenied: {
      const reasons = denyReasons(message);
      return {
        ...base,
        reasons,
        kind: "permission_denied",
        summary:
          reasons.length > 0
            ? "The policy denied this request. Nothing was run or changed."
            : `Not permitted: ${message}`,
      };
    }
    case Code.Unavailable:
      if (/runner/i.test(message)) {
        return {
          ...base,
          ...retryAfter,
          kind: "runner_unavailable",
          summary:
            "No runner is available to do this right now, so nothing ran. Try again in a moment, or ask an operator to check the runners.",
        };
      }
      return {
        ...base,
        ...retryAfter,
        kind: "unavailable",
        summary: `The gateway cannot do this right now (${message}). Try again in a moment.`,
      };
    case Code.InvalidArgument:
      return { ...base, kind: "invalid_argument", summary: `The request is not valid: ${message}` };
    case Code.NotFound:
      return { ...base, kind: "not_found", summary: `Not found: ${message}` };
    case Code.ResourceExhausted:
      return {
        ...base,
        ...retryAfter,
        kind: "resource_exhausted",
        summary: `A limit was reached: ${message}`,
      };
    case Code.FailedPrecondition:
      return { ...base, kind: "failed_precondition", summary: message };
    case Code.Canceled:
      return { ...base, kind: "cancelled", summary: "The call was cancelled." };
    default:
      return {
        ...base,
        kind: "other",
        summary: message === "" ? `The call failed (${Code[e.code] ?? e.code}).` : message,
      };
  }
}
