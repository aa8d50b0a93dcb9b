import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import {
  type CryptoKey,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from "jose";

/** The authenticated caller, as policy and audit see it. */
export interface Principal {
  /** Subject (`sub` claim). */
  sub: string;
  /** Roles from the configured claim; empty when the claim is absent. */
  roles: string[];
  /** Tenant from the configured claim; "" when the claim is absent (policy decides). */
  tenant: string;
  /** OAuth scopes from the configured claim; empty when absent. */
  scopes: string[];
}

/**
 * Where the principal's fields come from in the token. A path is first looked
 * up as a whole claim name (so `https://example.com/roles` works), then as a
 * dot-separated path into nested objects (`realm_access.roles`).
 */
export interface ClaimMapping {
  /** Claim holding roles: an array of strings or a space-separated string (default "roles"). */
  roles: string;
  /** Claim holding the tenant, a string (default "tenant"). */
  tenant: string;
  /** Claim holding scopes: a space-separated string or an array (default "scope"). */
  scopes: string;
}

/** Default claim names. */
export const DEFAULT_CLAIM_MAPPING: Readonly<ClaimMapping> = {
  roles: "roles",
  tenant: "tenant",
  scopes: "scope",
};

/** Where verification keys come from. */
export type JwksSource =
  | {
      /** https (or loopback http) URL of a JWKS document. */
      url: string;
      /** Least time between two fetches, ms; bounds refetches on unknown `kid` (default 30000). */
      cooldownMs?: number;
      /** Age after which the cached set is refetched on next use, ms (default 600000). */
      cacheMaxAgeMs?: number;
      /** Fetch timeout, ms (default 5000). */
      timeoutMs?: number;
    }
  | {
      /** Path of a local JWKS JSON file; re-read whenever its size, mtime or inode changes. */
      file: string;
    };

/** Options of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  /** Remote JWKS (cached, refetched on unknown `kid`, rate-limited) or a local JWKS file (re-read on change). */
  jwks: JwksSource;
  /** Required `iss`. */
  issuer: string;
  /** Required `aud` (the token's `aud` must contain it). */
  audience: string;
  /** Explicit allowlist of asymmetric JWS algorithms; `none` and HMAC (`HS*`) are refused. */
  algorithms: string[];
  /** Leeway for `exp`/`nbf`, seconds. */
  clockToleranceSec: number;
  /** Claim names for roles, tenant and scopes. */
  claims: ClaimMapping;
  /** Claims that must be present in addition to `iss`, `aud`, `exp` and `sub` (always required). */
  requiredClaims?: string[];
  /**
   * Longest accepted token lifetime, seconds (default 86400 = 24 h): `exp - iat`, or
   * `exp - now` for a token without `iat`, may not exceed it (plus the clock tolerance).
   */
  maxLifetimeSec?: number;
  /**
   * Accepted values of the JOSE `typ` header, compared case-insensitively with an
   * `application/` prefix removed (default `["at+jwt"]`, RFC 9068 access tokens). Add
   * `"JWT"` for an IdP that types its access tokens so — an OIDC ID token is typed `JWT`
   * too, so then only the strict audience tells them apart.
   */
  tokenTypes?: string[];
  /** Refuse tokens without a `typ` header (default false: many IdPs omit it). */
  requireTokenType?: boolean;
  /**
   * Audiences a token may name besides {@link AuthenticatorOptions.audience} (default none:
   * a token whose `aud` lists any other audience is refused — it was minted for a
   * different or an additional resource, e.g. an ID token whose audience is a client id).
   */
  extraAudiences?: string[];
  /**
   * Verified tokens remembered (by their exact text) so a caller's next request skips the
   * signature check: at most this many (default 1024; 0 turns it off), each for at most
   * {@link AuthenticatorOptions.verifiedTokenTtlMs} and never past its `exp`. A change of the
   * verification keys (the JWKS file, or the remote set as fetched) forgets them all.
   */
  verifiedTokenCacheSize?: number;
  /** How long a verified token is remembered, ms (default 30,000). */
  verifiedTokenTtlMs?: number;
}

/** Verifies bearer tokens. */
export interface Authenticator {
  /**
   * Verifies the `Authorization` header value and maps the token to a principal.
   *
   * @throws {AuthError} with code `missing_token` | `malformed_header` | `invalid_token` |
   *   `expired` | `not_yet_valid` | `wrong_issuer` | `wrong_audience` | `unknown_key` |
   *   `bad_algorithm` | `jwks_unavailable`.
   */
  authenticate(authorizationHeader: string | null | undefined): Promise<Principal>;
}

/** Codes of {@link AuthError}. */
export type AuthErrorCode =
  | "missing_token"
  | "malformed_header"
  | "invalid_token"
  | "expired"
  | "not_yet_valid"
  | "wrong_issuer"
  | "wrong_audience"
  | "unknown_key"
  | "bad_algorithm"
  | "issued_in_future"
  | "lifetime_too_long"
  | "wrong_type"
  | "jwks_unavailable";

/** Realm named in every `WWW-Authenticate` challenge. */
export const AUTH_REALM = "mcp-gateway";

/**
 * A refused credential. `message` is safe to show to the client; the
 * underlying jose or network error is kept in `cause` for logs.
 */
export class AuthError extends Error {
  override readonly name = "AuthError";
  /** Why the credential was refused, machine-readable. */
  readonly code: AuthErrorCode;
  /**
   * Value for a `WWW-Authenticate` response header (RFC 6750 §3):
   * no `error` for a missing token, `invalid_request` for a malformed header,
   * `invalid_token` for a token that failed verification, and no `error` when
   * the keys could not be fetched (not the client's fault).
   */
  readonly wwwAuthenticate: string;

  constructor(code: AuthErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.wwwAuthenticate = challenge(code, message);
  }
}

/** Invalid authenticator configuration (refused at start, never at request time). */
export class AuthConfigError extends Error {
  override readonly name = "AuthConfigError";
  /** Always `invalid_auth_config`. */
  readonly code = "invalid_auth_config" as const;
}

/** Asymmetric JWS algorithms jose verifies. Anything else is refused in configuration. */
const ASYMMETRIC_ALGORITHMS = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
]);

/** Default longest token lifetime, seconds (24 h). */
export const DEFAULT_MAX_LIFETIME_SEC = 86_400;
/** Default accepted `typ` values (RFC 9068 access tokens). */
export const DEFAULT_TOKEN_TYPES: readonly string[] = ["at+jwt"];

/** A `typ` value as compared: lower case, without the optional `application/` prefix (RFC 7515 §4.1.9). */
function normalType(typ: string): string {
  const t = typ.trim().toLowerCase();
  return t.startsWith("application/") ? t.slice("application/".length) : t;
}

/** Longest `Authorization` value accepted; real tokens are a few KB. */
const MAX_HEADER_LENGTH = 16 * 1024;
/** RFC 6750 `b64token`. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

type KeyResolver = ((
  header: JWSHeaderParameters,
  input: FlattenedJWSInput,
) => Promise<CryptoKey>) & {
  /**
   * Identifies the key set in use now; changes whenever the keys may have changed. Throws
   * (`jwks_unavailable`) when a local key file is gone: remembered tokens fail closed too.
   */
  generation(): string;
};

/** A verified token as remembered: its principal, until when, under which keys. */
interface VerifiedToken {
  principal: Principal;
  untilMs: number;
  generation: string;
}

/**
 * Creates a bearer-token authenticator backed by jose.
 *
 * Checks, in order: header shape; token syntax; `alg` in the allowlist and
 * `typ` in the accepted types (before any key lookup, so a forged header
 * cannot trigger fetches); key by `kid`; signature; `iss`, `aud` (strict: no
 * audience besides the configured ones), `exp`, `nbf` (with clock tolerance)
 * and required claims; `iat` not in the future and the lifetime within
 * `maxLifetimeSec`; then claim types while mapping to a {@link Principal}.
 *
 * @throws {AuthConfigError} when the options are unsafe (e.g. `none` or `HS256` allowed).
 * @example
 * const auth = createAuthenticator({
 *   jwks: { url: "https://idp.example.com/.well-known/jwks.json" },
 *   issuer: "https://idp.example.com/", audience: "mcp-gateway",
 *   algorithms: ["RS256", "ES256"], clockToleranceSec: 30, claims: DEFAULT_CLAIM_MAPPING,
 * });
 * const principal = await auth.authenticate(request.headers.get("authorization"));
 */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  validateOptions(options);
  const resolveKey =
    "url" in options.jwks ? remoteResolver(options.jwks) : fileResolver(options.jwks.file);
  const algorithms = [...options.algorithms];
  const allowed = new Set(algorithms);
  const requiredClaims = [
    ...new Set(["iss", "aud", "exp", "sub", ...(options.requiredClaims ?? [])]),
  ];
  const claims = options.claims;
  const maxLifetimeSec = options.maxLifetimeSec ?? DEFAULT_MAX_LIFETIME_SEC;
  const tokenTypes = new Set((options.tokenTypes ?? DEFAULT_TOKEN_TYPES).map(normalType));
  const audiences = new Set([options.audience, ...(options.extraAudiences ?? [])]);
  const tolerance = options.clockToleranceSec;
  const cacheSize = options.verifiedTokenCacheSize ?? 1024;
  const cacheTtlMs = options.verifiedTokenTtlMs ?? 30_000;
  // Insertion order is age order: the first key is the oldest (evicted first).
  const verified = new Map<string, VerifiedToken>();

  return {
    async authenticate(authorizationHeader) {
      const token = bearerToken(authorizationHeader);
      // The key set the token is verified under, taken before verifying: a change during the
      // check leaves the remembered entry stale (checked again next time), never wrongly fresh.
      let generation: string | undefined;
      if (cacheSize > 0) {
        try {
          generation = resolveKey.generation();
        } catch {
          generation = undefined; // verification reports the missing keys
        }
        const hit = verified.get(token);
        if (hit !== undefined) {
          if (Date.now() < hit.untilMs && hit.generation === generation) return hit.principal;
          verified.delete(token);
        }
      }
      let header: JWSHeaderParameters;
      try {
        header = decodeProtectedHeader(token) as JWSHeaderParameters;
      } catch (err) {
        throw new AuthError("invalid_token", "token is not a well-formed JWT", err);
      }
      if (typeof header.alg !== "string" || !allowed.has(header.alg)) {
        throw new AuthError(
          "bad_algorithm",
          `token algorithm ${JSON.stringify(header.alg ?? null)} is not allowed`,
        );
      }
      if (
        header.typ === undefined
          ? options.requireTokenType === true
          : typeof header.typ !== "string" || !tokenTypes.has(normalType(header.typ))
      ) {
        throw new AuthError(
          "wrong_type",
          `token type ${JSON.stringify(header.typ ?? null)} is not accepted (expected ${[...tokenTypes].join(" or ")})`,
        );
      }
      const verifyOptions = {
        issuer: options.issuer,
        audience: options.audience,
        algorithms,
        clockTolerance: options.clockToleranceSec,
        requiredClaims,
      };
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, resolveKey, verifyOptions));
      } catch (err) {
        if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw toAuthError(err);
        // No `kid` and several candidate keys: try each (jose's documented pattern).
        payload = await verifyWithCandidates(token, err, verifyOptions);
      }
      checkTimes(payload, tolerance, maxLifetimeSec);
      const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      if (!aud.every((a) => typeof a === "string" && audiences.has(a))) {
        throw new AuthError(
          "wrong_audience",
          "token names an audience that is not accepted (it was issued for another resource)",
        );
      }
      const principal = principalFromClaims(payload, claims);
      if (generation !== undefined) remember(token, principal, payload, generation);
      return principal;
    },
  };

  function remember(
    token: string,
    principal: Principal,
    payload: JWTPayload,
    generation: string,
  ): void {
    // Never past exp (with the tolerance jwtVerify allowed); a token without exp is not kept.
    if (typeof payload.exp !== "number") return;
    const untilMs = Math.min(Date.now() + cacheTtlMs, (payload.exp + tolerance) * 1000);
    if (untilMs <= Date.now()) return;
    while (verified.size >= cacheSize) {
      const oldest = verified.keys().next().value;
      if (oldest === undefined) break;
      verified.delete(oldest);
    }
    // Shared by every request that presents the same token: frozen, so no caller can change
    // what another one is authorised as.
    Object.freeze(principal.roles);
    Object.freeze(principal.scopes);
    verified.set(token, { principal: Object.freeze(principal), untilMs, generation });
  }
}

/**
 * `iat` may not lie in the future beyond the clock tolerance, and the token may
 * not live longer than `maxLifetimeSec` (from `iat`, or from now without one).
 */
function checkTimes(payload: JWTPayload, toleranceSec: number, maxLifetimeSec: number): void {
  const now = Math.floor(Date.now() / 1000);
  const { iat, exp } = payload;
  if (iat !== undefined && (typeof iat !== "number" || !Number.isFinite(iat))) {
    throw new AuthError("invalid_token", "token claim iat must be a number");
  }
  if (iat !== undefined && iat > now + toleranceSec) {
    throw new AuthError("issued_in_future", "token is issued in the future");
  }
  if (typeof exp === "number" && exp - (iat ?? now) > maxLifetimeSec + toleranceSec) {
    throw new AuthError(
      "lifetime_too_long",
      `token lifetime exceeds the maximum of ${maxLifetimeSec} s`,
    );
  }
}

/**
 * Maps verified claims to a {@link Principal}. A mapped claim that is present
 * but of the wrong type is an `invalid_token` error, never silently dropped.
 */
export function principalFromClaims(payload: JWTPayload, claims: ClaimMapping): Principal {
  const sub = payload.sub;
  if (typeof sub !== "string" || sub === "") {
    throw new AuthError("invalid_token", "token has no subject");
  }
  const tenant = claimAt(payload, claims.tenant);
  if (tenant !== undefined && typeof tenant !== "string") {
    throw new AuthError("invalid_token", `claim ${claims.tenant} must be a string`);
  }
  return {
    sub,
    roles: stringList(payload, claims.roles),
    tenant: tenant ?? "",
    scopes: stringList(payload, claims.scopes),
  };
}

async function verifyWithCandidates(
  token: string,
  candidates: errors.JWKSMultipleMatchingKeys,
  verifyOptions: Parameters<typeof jwtVerify>[2],
): Promise<JWTPayload> {
  const iterate = (candidates as unknown as AsyncIterable<CryptoKey>)[Symbol.asyncIterator];
  if (typeof iterate !== "function") throw toAuthError(candidates);
  for await (const key of candidates as unknown as AsyncIterable<CryptoKey>) {
    try {
      return (await jwtVerify(token, key, verifyOptions)).payload;
    } catch (err) {
      if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw toAuthError(err);
    }
  }
  throw new AuthError("invalid_token", "token signature is invalid");
}

function validateOptions(options: AuthenticatorOptions): void {
  if (options.algorithms.length === 0) {
    throw new AuthConfigError(
      "auth.algorithms must list at least one asymmetric algorithm (e.g. ES256, RS256)",
    );
  }
  for (const alg of options.algorithms) {
    if (alg.toLowerCase() === "none") {
      throw new AuthConfigError(
        'auth.algorithms must not contain "none": unsigned tokens are never accepted',
      );
    }
    if (/^HS\d+$/i.test(alg)) {
      throw new AuthConfigError(
        `auth.algorithms must not contain ${alg}: HMAC algorithms would let anyone holding the public key forge tokens`,
      );
    }
    if (!ASYMMETRIC_ALGORITHMS.has(alg)) {
      throw new AuthConfigError(
        `auth.algorithms contains unsupported ${JSON.stringify(alg)}; use some of ${[...ASYMMETRIC_ALGORITHMS].join(", ")}`,
      );
    }
  }
  if (options.issuer === "") throw new AuthConfigError("auth.issuer must not be empty");
  if (options.audience === "") throw new AuthConfigError("auth.audience must not be empty");
  if (!(options.clockToleranceSec >= 0 && options.clockToleranceSec <= 300)) {
    throw new AuthConfigError("auth.clockToleranceSec must be between 0 and 300");
  }
  const maxLifetime = options.maxLifetimeSec ?? DEFAULT_MAX_LIFETIME_SEC;
  if (!(Number.isInteger(maxLifetime) && maxLifetime > 0)) {
    throw new AuthConfigError("auth.maxTokenLifetimeSec must be a positive integer");
  }
  if ((options.tokenTypes ?? DEFAULT_TOKEN_TYPES).length === 0) {
    throw new AuthConfigError('auth.tokenTypes must list at least one type (e.g. "at+jwt")');
  }
  if ("url" in options.jwks) {
    let url: URL;
    try {
      url = new URL(options.jwks.url);
    } catch (err) {
      throw new AuthConfigError(`auth.jwksUrl is not a URL: ${options.jwks.url}`, { cause: err });
    }
    const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
    if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
      throw new AuthConfigError("auth.jwksUrl must be https:// (plain http only on loopback)");
    }
  }
}

function bearerToken(value: string | null | undefined): string {
  if (value === null || value === undefined || value.trim() === "") {
    throw new AuthError(
      "missing_token",
      "authentication required: send Authorization: Bearer <token>",
    );
  }
  if (value.length > MAX_HEADER_LENGTH) {
    throw new AuthError("malformed_header", "Authorization header is too long");
  }
  const match = BEARER.exec(value);
  if (match?.[1] === undefined) {
    throw new AuthError("malformed_header", "Authorization header must be: Bearer <token>");
  }
  return match[1];
}

function remoteResolver(source: Extract<JwksSource, { url: string }>): KeyResolver {
  let fetches = 0;
  const jwks = createRemoteJWKSet(new URL(source.url), {
    cooldownDuration: source.cooldownMs ?? 30_000,
    cacheMaxAge: source.cacheMaxAgeMs ?? 600_000,
    timeoutDuration: source.timeoutMs ?? 5_000,
    [customFetch]: (url: string, options: RequestInit) => {
      fetches++;
      return fetch(url, options);
    },
  });
  const resolve = async (header: JWSHeaderParameters, input: FlattenedJWSInput) => {
    try {
      return await jwks(header, input);
    } catch (err) {
      throw keyLookupError(err);
    }
  };
  return Object.assign(resolve, {
    // Every fetch of the set (rotation, a refetch on an unknown kid, the cache's expiry) may
    // bring other keys: a new generation, which forgets every remembered token.
    generation: () => `remote:${fetches}`,
  });
}

/**
 * A local JWKS file, re-read when its inode, size or mtime change (one stat
 * per call). A file that is missing or invalid fails closed with
 * `jwks_unavailable`; write it atomically (temp file + rename).
 */
function fileResolver(path: string): KeyResolver {
  let cached: { signature: string; resolve: ReturnType<typeof createLocalJWKSet> } | undefined;
  let loading: Promise<ReturnType<typeof createLocalJWKSet>> | undefined;
  let unloaded = 0;

  /** The file's identity now: inode, size and mtime. */
  function signatureNow(): string {
    try {
      // Synchronous on purpose (issue 13): a stat of a local file is microseconds on the
      // event loop, while an async one queues in libuv's four-thread pool behind the
      // store's WAL syncs and the signature checks, on every authenticated call.
      const s = statSync(path, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}`;
    } catch (err) {
      throw new AuthError("jwks_unavailable", "verification keys are unavailable", err);
    }
  }

  async function current(): Promise<ReturnType<typeof createLocalJWKSet>> {
    const signature = signatureNow();
    if (cached?.signature === signature) return cached.resolve;
    loading ??= (async () => {
      try {
        const text = await readFile(path, "utf8");
        const resolve = createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
        cached = { signature, resolve };
        return resolve;
      } catch (err) {
        cached = undefined;
        throw new AuthError("jwks_unavailable", "verification keys are unavailable", err);
      } finally {
        loading = undefined;
      }
    })();
    return loading;
  }

  const resolve = async (header: JWSHeaderParameters, input: FlattenedJWSInput) => {
    const keys = await current();
    try {
      return await keys(header, input);
    } catch (err) {
      throw keyLookupError(err);
    }
  };
  return Object.assign(resolve, {
    // The file's identity now, and whether the keys in memory were read from that very file: a
    // token verified while they were not (a reload still under way) is never found again.
    generation: () => {
      const now = signatureNow();
      return cached?.signature === now ? `file:${now}` : `file:${now}:not-loaded:${++unloaded}`;
    },
  });
}

/** Classifies an error from key lookup (before signature verification). */
function keyLookupError(err: unknown): unknown {
  if (err instanceof AuthError) return err;
  if (err instanceof errors.JWKSNoMatchingKey) {
    return new AuthError("unknown_key", "token was signed with an unknown key", err);
  }
  if (err instanceof errors.JWKSMultipleMatchingKeys) return err; // jose tries each candidate
  if (err instanceof errors.JOSEAlgNotAllowed) return err;
  return new AuthError("jwks_unavailable", "verification keys are unavailable", err);
}

function toAuthError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof errors.JWTExpired) return new AuthError("expired", "token has expired", err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case "nbf":
        return new AuthError("not_yet_valid", "token is not valid yet", err);
      case "iss":
        return new AuthError("wrong_issuer", "token issuer is not accepted", err);
      case "aud":
        return new AuthError("wrong_audience", "token audience is not accepted", err);
      default:
        return new AuthError("invalid_token", `token claim ${err.claim} is ${err.reason}`, err);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new AuthError("bad_algorithm", "token algorithm is not allowed", err);
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return new AuthError("unknown_key", "token was signed with an unknown key", err);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new AuthError("invalid_token", "token signature is invalid", err);
  }
  return new AuthError("invalid_token", "token is invalid", err);
}

function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let node: unknown = payload;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function stringList(payload: JWTPayload, path: string): string[] {
  const value = claimAt(payload, path);
  if (value === undefined) return [];
  if (typeof value === "string") return value.split(" ").filter((s) => s !== "");
  if (Array.isArray(value) && value.every((v): v is string => typeof v === "string"))
    return [...value];
  throw new AuthError("invalid_token", `claim ${path} must be a string or an array of strings`);
}

function challenge(code: AuthErrorCode, message: string): string {
  const realm = `Bearer realm="${AUTH_REALM}"`;
  if (code === "missing_token" || code === "jwks_unavailable") return realm;
  const error = code === "malformed_header" ? "invalid_request" : "invalid_token";
  return `${realm}, error="${error}", error_description="${quoted(message)}"`;
}

/** RFC 6750 allows %x20-21 / %x23-5B / %x5D-7E in error_description. */
function quoted(text: string): string {
  return text.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, "?");
}
