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
  /**
   * Last sequence number this key may sign (a retired key's window): a record
   * it signed with a higher seq fails verification.
   */
  validUntilSeq?: number;
  /** Last record time (epoch ms) this key may sign; later records fail verification. */
  validUntil?: number;
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

/** Parses one key file line: `<base64 secret> [validUntilSeq=N] [validUntil=<ISO 8601 time>]`. */
function parseKeyLine(line: string, where: string): AuditKey {
  const [secret = "", ...attrs] = line.split(/\s+/);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(secret)) {
    throw new AuditKeyError("audit_key_invalid", `${where}: not a base64 secret`);
  }
  let key: AuditKey;
  try {
    key = auditKeyFromSecret(Buffer.from(secret, "base64"));
  } catch (err) {
    throw new AuditKeyError("audit_key_invalid", `${where}: ${(err as Error).message}`);
  }
  for (const attr of attrs) {
    const [name, value = ""] = attr.split("=", 2);
    if (name === "validUntilSeq" && /^[0-9]{1,15}$/.test(value)) {
      key.validUntilSeq = Number(value);
    } else if (name === "validUntil" && !Number.isNaN(Date.parse(value))) {
      key.validUntil = Date.parse(value);
    } else {
      throw new AuditKeyError(
        "audit_key_invalid",
        `${where}: unknown attribute ${JSON.stringify(attr)} (use validUntilSeq=<seq> or validUntil=<ISO 8601 time>)`,
      );
    }
  }
  return key;
}

/**
 * Reads an audit key file: one base64 secret per line (blank lines and lines
 * starting with # are ignored), optionally followed by a validity window
 * `validUntilSeq=<seq>` and/or `validUntil=<ISO 8601 time>`. The first key
 * signs new records and must have no window; the others are retired keys kept
 * so older records still verify — and only those within their window, so a
 * leaked retired key cannot sign records appended later. Rotation: put the new
 * key first, keep the old one below it, and once every edge signs with the new
 * key give the old one `validUntilSeq=` the last seq it signed (`audit verify`
 * prints each key's range). The file must not be readable by group or others.
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
    keys.push(parseKeyLine(line, `audit key file ${path}, line ${i + 1}`));
  });
  const [signing] = keys;
  if (!signing) {
    throw new AuditKeyError("audit_key_invalid", `audit key file ${path} holds no key`);
  }
  if (signing.validUntilSeq !== undefined || signing.validUntil !== undefined) {
    throw new AuditKeyError(
      "audit_key_invalid",
      `audit key file ${path}: the first key signs new records and must not have a validity window (put a new key first)`,
    );
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
