import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, stat } from "node:fs/promises";
import { join } from "node:path";
import { createFileOnce, writeTempFile } from "@mcp-gateway/common/fs-atomic";
import { calculateJwkThumbprint, exportJWK, SignJWT } from "jose";

/** Issuer of tokens minted by {@link mintDevToken}; the edge's default `auth.issuer`. */
export const DEV_ISSUER = "mcp-gateway-dev";
/** Audience of tokens minted by {@link mintDevToken}; the edge's default `auth.audience`. */
export const DEV_AUDIENCE = "mcp-gateway";

const KEY_FILE = "signing-key.pem";
const JWKS_FILE = "jwks.json";
const ALG = "ES256";

/** Paths and key id of the development signing key. */
export interface DevSigningKey {
  /** Local JWKS file with the public key; point `auth.jwksFile` here. */
  jwksPath: string;
  /** PKCS#8 PEM private key (mode 0600). */
  privateKeyPath: string;
  /** Key id: the RFC 7638 JWK thumbprint of the public key. */
  kid: string;
}

/** Errors of the development key tooling. */
export class DevKeyError extends Error {
  override readonly name = "DevKeyError";
  /** What went wrong, machine-readable. */
  readonly code: "loose_key_permissions" | "invalid_key" | "invalid_argument";

  constructor(code: DevKeyError["code"], message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

/**
 * Creates (first start) or reuses (later) an ES256 signing key in `dir` and
 * writes the matching local JWKS next to it. The edge passes
 * `<dataDir>/auth`; `mcp-gateway token` must pass the same directory.
 *
 * Safe when the edge and the CLI start together: the private key is linked
 * into place only if absent (no clobbering), and the JWKS is derived from
 * whichever key won and written atomically.
 *
 * @example
 * const { jwksPath } = await ensureDevSigningKey(join(config.dataDir, "auth"));
 */
export async function ensureDevSigningKey(dir: string): Promise<DevSigningKey> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKeyPath = join(dir, KEY_FILE);
  const jwksPath = join(dir, JWKS_FILE);

  if (!(await exists(privateKeyPath))) {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    await createFileOnce(privateKeyPath, pem, 0o600); // another process may have won
  }

  const privateKey = await readPrivateKey(privateKeyPath);
  const jwk = await exportJWK(createPublicKey(privateKey));
  const kid = await calculateJwkThumbprint(jwk, "sha256");
  const jwks = `${JSON.stringify({ keys: [{ ...jwk, kid, alg: ALG, use: "sig" }] }, null, 2)}\n`;
  const current = await readFile(jwksPath, "utf8").catch(() => "");
  if (current !== jwks) await rename(await writeTempFile(jwksPath, jwks, 0o644), jwksPath);
  return { jwksPath, privateKeyPath, kid };
}

/** Options of {@link mintDevToken}. */
export interface MintOptions {
  /** Subject. */
  sub: string;
  /** Roles (claim `roles`). */
  roles: string[];
  /** Tenant (claim `tenant`, default "default"). */
  tenant?: string;
  /** Scopes (claim `scope`, space-separated); omitted when empty. */
  scopes?: string[];
  /** Lifetime in seconds (see {@link parseDuration}). */
  ttlSeconds: number;
  /** Issuer (normally {@link DEV_ISSUER}). */
  issuer: string;
  /** Audience (normally {@link DEV_AUDIENCE}). */
  audience: string;
}

/**
 * Mints an ES256 token with the development key in `dir` (creating the key if
 * needed). Claims use the default names (`roles`, `tenant`, `scope`), so an
 * edge with a custom claim mapping will not read them.
 *
 * @example
 * const token = await mintDevToken(join(dataDir, "auth"), {
 *   sub: "dev-user", roles: ["developer"], ttlSeconds: parseDuration("1h"),
 *   issuer: DEV_ISSUER, audience: DEV_AUDIENCE,
 * });
 */
export async function mintDevToken(dir: string, options: MintOptions): Promise<string> {
  if (options.sub === "") throw new DevKeyError("invalid_argument", "sub must not be empty");
  if (!(Number.isInteger(options.ttlSeconds) && options.ttlSeconds > 0)) {
    throw new DevKeyError("invalid_argument", "ttlSeconds must be a positive integer");
  }
  const { privateKeyPath, kid } = await ensureDevSigningKey(dir);
  const key = await readPrivateKey(privateKeyPath);
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    roles: options.roles,
    tenant: options.tenant ?? "default",
  };
  if (options.scopes !== undefined && options.scopes.length > 0)
    claims.scope = options.scopes.join(" ");
  return new SignJWT(claims)
    .setProtectedHeader({ alg: ALG, kid, typ: "at+jwt" })
    .setSubject(options.sub)
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + options.ttlSeconds)
    .setJti(randomUUID())
    .sign(key);
}

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Parses a duration such as `45s`, `30m`, `1h`, `2d` or `1h30m` into seconds.
 *
 * @throws {DevKeyError} `invalid_argument` for anything else (bare numbers, zero, garbage).
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (!/^(\d+[smhd])+$/.test(trimmed)) {
    throw new DevKeyError(
      "invalid_argument",
      `invalid duration ${JSON.stringify(text)}: use a number with a unit, e.g. 45s, 30m, 1h, 2d or 1h30m`,
    );
  }
  let seconds = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+)([smhd])/g)) {
    seconds += Number(amount) * (UNIT_SECONDS[unit ?? ""] ?? Number.NaN);
  }
  if (!(Number.isSafeInteger(seconds) && seconds > 0)) {
    throw new DevKeyError(
      "invalid_argument",
      `invalid duration ${JSON.stringify(text)}: must be > 0`,
    );
  }
  return seconds;
}

async function readPrivateKey(path: string): Promise<ReturnType<typeof createPrivateKey>> {
  const mode = (await stat(path)).mode;
  if ((mode & 0o077) !== 0) {
    throw new DevKeyError(
      "loose_key_permissions",
      `signing key ${path} is accessible by group or others; run: chmod 600 ${path}`,
    );
  }
  try {
    const key = createPrivateKey(await readFile(path));
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new Error(`expected an EC P-256 key, got ${key.asymmetricKeyType}`);
    }
    return key;
  } catch (err) {
    throw new DevKeyError("invalid_key", `signing key ${path} is not a PKCS#8 P-256 key`, err);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
