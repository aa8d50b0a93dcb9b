import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createFileOnce } from "@mcp-gateway/common/fs-atomic";

/**
 * A secret that keys the audit chain: every record's hash is an HMAC-SHA256
 * under it, so someone who can write the database but does not hold the key
 * cannot rewrite records (or the whole tail) and recompute a valid chain.
 */
export interface AuditKey {
  /** Public fingerprint stored in each record ("k-" + 16 hex of sha256(secret)). */
  id: string;
  /** The secret (at least 32 bytes). */
  secret: Buffer;
}

/** Thrown for unusable key files, with a stable code. */
export class AuditKeyError extends Error {
  constructor(
    readonly code: "audit_key_missing" | "audit_key_permissions" | "audit_key_invalid",
    message: string,
  ) {
    super(message);
  }
}

/**
 * The embedded default key file of a data directory, where the edge creates
 * its key and `audit verify` looks for it: <dataDir>/audit/audit.key.
 */
export function defaultAuditKeyPath(dataDir: string): string {
  return join(dataDir, "audit", "audit.key");
}

/** Smallest accepted secret, in bytes. */
export const MIN_AUDIT_KEY_BYTES = 32;

/** The key for a secret (its id is derived from the secret). */
export function auditKeyFromSecret(secret: Buffer): AuditKey {
  if (secret.length < MIN_AUDIT_KEY_BYTES) {
    throw new AuditKeyError(
      "audit_key_invalid",
      `an audit key needs at least ${MIN_AUDIT_KEY_BYTES} bytes, got ${secret.length}`,
    );
  }
  const id = `k-${createHash("sha256").update(secret).digest("hex").slice(0, 16)}`;
  return { id, secret };
}

/**
 * Reads an audit key file: one base64 secret per line (blank lines and lines
 * starting with # are ignored). The first key signs new records; the others
 * are retired keys kept so older records still verify (rotation: put the new
 * key first, keep the old one below it). The file must not be readable by
 * group or others.
 *
 * @throws AuditKeyError when the file is missing, too open, or holds no valid key.
 */
export async function loadAuditKeys(path: string): Promise<AuditKey[]> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) {
    throw new AuditKeyError("audit_key_missing", `audit key file ${path} does not exist`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new AuditKeyError(
      "audit_key_permissions",
      `audit key file ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  const keys: AuditKey[] = [];
  const lines = (await readFile(path, "utf8")).split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(line)) {
      throw new AuditKeyError(
        "audit_key_invalid",
        `audit key file ${path}, line ${i + 1}: not a base64 secret`,
      );
    }
    try {
      keys.push(auditKeyFromSecret(Buffer.from(line, "base64")));
    } catch (err) {
      throw new AuditKeyError(
        "audit_key_invalid",
        `audit key file ${path}, line ${i + 1}: ${(err as Error).message}`,
      );
    }
  });
  if (keys.length === 0) {
    throw new AuditKeyError("audit_key_invalid", `audit key file ${path} holds no key`);
  }
  return keys;
}

/**
 * Returns the keys of `path`, creating the file first with one random 32-byte
 * key (mode 0600, directory 0700) when it does not exist: the embedded
 * default, like the dev PKI. Production deployments give every edge the same
 * file (edges sharing PostgreSQL write one chain).
 */
export async function ensureAuditKeys(path: string): Promise<AuditKey[]> {
  const exists = await stat(path).catch(() => undefined);
  if (!exists) {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const text = `# audit chain key (HMAC-SHA256); keep secret, share between edges of one database\n${randomBytes(32).toString("base64")}\n`;
    // A concurrent starter sees either no file or the complete one, never a replaced one.
    await createFileOnce(path, text, 0o600);
  }
  return loadAuditKeys(path);
}
