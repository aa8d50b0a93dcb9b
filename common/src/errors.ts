import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Codes of the gateway's own domain errors. Modules with their own error
 * classes (sandbox, workspace, auth, TLS) use their own string codes; they are
 * all mapped to the wire in one place: {@link toConnectError}.
 */
export type GatewayErrorCode =
  | "invalid_argument"
  | "not_found"
  | "permission_denied"
  | "unauthenticated"
  | "failed_precondition"
  | "unavailable"
  | "resource_exhausted"
  | "deadline_exceeded"
  | "already_exists"
  | "aborted"
  | "internal";

/** A domain error with a string-literal code and a message fit for clients. */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  /** What went wrong, machine-readable. */
  readonly code: GatewayErrorCode;
  /** Extra response headers (e.g. `www-authenticate`, `retry-after`). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: GatewayErrorCode,
    message: string,
    options: { cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.headers = options.headers ?? {};
  }
}

/**
 * The one table from domain error codes to wire codes. Keys are the `code`
 * strings of every domain error class in the project.
 */
const CODE_TABLE: Readonly<Record<string, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  failed_precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  resource_exhausted: Code.ResourceExhausted,
  deadline_exceeded: Code.DeadlineExceeded,
  already_exists: Code.AlreadyExists,
  aborted: Code.Aborted,
  internal: Code.Internal,
  // runner sandbox and workspace errors
  sandbox_unavailable: Code.FailedPrecondition,
  invalid_spec: Code.InvalidArgument,
  invalid_path: Code.InvalidArgument,
  escape_attempt: Code.PermissionDenied,
  too_large: Code.ResourceExhausted,
  quota_exceeded: Code.ResourceExhausted,
  not_a_directory: Code.FailedPrecondition,
  is_a_directory: Code.FailedPrecondition,
  io_error: Code.Internal,
  // authentication errors
  missing_token: Code.Unauthenticated,
  malformed_header: Code.Unauthenticated,
  invalid_token: Code.Unauthenticated,
  expired: Code.Unauthenticated,
  not_yet_valid: Code.Unauthenticated,
  wrong_issuer: Code.Unauthenticated,
  wrong_audience: Code.Unauthenticated,
  unknown_key: Code.Unauthenticated,
  bad_algorithm: Code.Unauthenticated,
  issued_in_future: Code.Unauthenticated,
  lifetime_too_long: Code.Unauthenticated,
  wrong_type: Code.Unauthenticated,
  jwks_unavailable: Code.Unavailable,
};

/**
 * Maps any thrown value to a ConnectError. ConnectErrors pass through; domain
 * errors (anything with a known string `code`) keep their message and get
 * their wire code; everything else becomes Internal with a generic message and
 * the original kept in `cause` for logs only.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) {
    return err;
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") {
      const wire = CODE_TABLE[code];
      if (wire !== undefined) {
        const headers = extraHeaders(err);
        return new ConnectError(err.message, wire, headers, undefined, err);
      }
    }
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

function extraHeaders(err: Error): Record<string, string> | undefined {
  const headers: Record<string, string> = {};
  const own = (err as { headers?: unknown }).headers;
  if (own && typeof own === "object") {
    for (const [k, v] of Object.entries(own)) {
      if (typeof v === "string") headers[k] = v;
    }
  }
  const www = (err as { wwwAuthenticate?: unknown }).wwwAuthenticate;
  if (typeof www === "string" && www !== "") headers["www-authenticate"] = www;
  return Object.keys(headers).length > 0 ? headers : undefined;
}

/** HTTP status of each wire code under the Connect protocol, for docs and /health-style routes. */
export const HTTP_STATUS_OF_CODE: Readonly<Record<string, number>> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  aborted: 409,
  failed_precondition: 400,
  resource_exhausted: 429,
  deadline_exceeded: 504,
  unavailable: 503,
  internal: 500,
};
