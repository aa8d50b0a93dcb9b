import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, type Stats, statSync } from "node:fs";
import type { SecureContextOptions } from "node:tls";
import { parseSubjectAltName } from "./identity.js";

export {
  checkRunnerIdentity,
  edgeIdentity,
  isAllowedPeer,
  peerIdentities,
  runnerIdentity,
} from "./identity.js";

/** Paths of one party's TLS material. */
export interface TlsFiles {
  /** PEM bundle of the CA certificate(s) that peers must chain to. */
  caPath: string;
  /** PEM certificate of this party (leaf first, then any intermediates). */
  certPath: string;
  /** PEM private key of this party; must not be readable by group or others. */
  keyPath: string;
}

/** Validated TLS material, ready for `tls.createSecureContext`. */
export interface TlsMaterial {
  /** CA bundle bytes (PEM). */
  ca: Buffer;
  /** Certificate chain bytes (PEM). */
  cert: Buffer;
  /** Private key bytes (PEM). */
  key: Buffer;
  /** First URI SAN of the certificate (the SPIFFE-style identity), "" if it has none. */
  identity: string;
  /** Expiry of the leaf certificate. */
  notAfter: Date;
}

/** Codes of {@link TlsMaterialError}. */
export type TlsMaterialErrorCode =
  | "loose_key_permissions"
  | "missing_file"
  | "invalid_pem"
  | "key_mismatch"
  | "expired";

/** TLS material that cannot be used, with a message that says how to fix it. */
export class TlsMaterialError extends Error {
  override readonly name = "TlsMaterialError";
  /** What is wrong, machine-readable. */
  readonly code: TlsMaterialErrorCode;
  /** The file concerned. */
  readonly path: string;

  constructor(code: TlsMaterialErrorCode, path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.path = path;
  }
}

/**
 * Reads and validates a party's TLS material: all files present; the key file
 * has no group/other permission bits (refused with the `chmod` to run); the
 * CA bundle, certificate and key parse; the key matches the certificate; the
 * certificate has not expired.
 *
 * @throws {TlsMaterialError}
 */
export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const keyMode = statOrThrow(files.keyPath).mode;
  if ((keyMode & 0o077) !== 0) {
    throw new TlsMaterialError(
      "loose_key_permissions",
      files.keyPath,
      `private key ${files.keyPath} is accessible by group or others (mode ${(keyMode & 0o777).toString(8).padStart(3, "0")}); run: chmod 600 ${files.keyPath}`,
    );
  }
  const ca = readOrThrow(files.caPath);
  const cert = readOrThrow(files.certPath);
  const key = readOrThrow(files.keyPath);

  const caCerts = splitPem(ca);
  if (caCerts.length === 0) {
    throw new TlsMaterialError(
      "invalid_pem",
      files.caPath,
      `CA bundle ${files.caPath} holds no PEM certificate`,
    );
  }
  for (const pem of caCerts) parseCert(pem, files.caPath);
  const leafPem = splitPem(cert)[0];
  if (leafPem === undefined) {
    throw new TlsMaterialError(
      "invalid_pem",
      files.certPath,
      `certificate ${files.certPath} holds no PEM certificate`,
    );
  }
  const leaf = parseCert(leafPem, files.certPath);
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsMaterialError(
      "invalid_pem",
      files.keyPath,
      `private key ${files.keyPath} is not a valid PEM key`,
      err,
    );
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsMaterialError(
      "key_mismatch",
      files.keyPath,
      `private key ${files.keyPath} does not belong to certificate ${files.certPath}`,
    );
  }
  const notAfter = new Date(leaf.validTo);
  if (!(notAfter.getTime() > Date.now())) {
    throw new TlsMaterialError(
      "expired",
      files.certPath,
      `certificate ${files.certPath} expired at ${notAfter.toISOString()}`,
    );
  }
  const uri = parseSubjectAltName(leaf.subjectAltName ?? "").find((e) => e.startsWith("URI:"));
  return { ca, cert, key, identity: uri === undefined ? "" : uri.slice(4), notAfter };
}

/** Options of {@link watchTlsMaterial}. */
export interface WatchTlsMaterialOptions {
  /** How often the files are polled, in ms (default 1000). */
  intervalMs?: number;
}

/**
 * Polls the three files (inode, size, mtime) and, when any changed, reloads
 * them with {@link loadTlsMaterial}. Valid new material (different bytes) goes
 * to `onChange`; invalid material goes to `onError` and the caller keeps using
 * what it has. A half-finished rotation (new key, old cert) thus reports a
 * `key_mismatch` and resolves on the next poll once the certificate lands.
 * Returns a function that stops watching.
 *
 * @example
 * const stop = watchTlsMaterial(files, (m) => server.setSecureContext(mtlsServerOptions(m)), (e) => log.warn(e));
 */
export function watchTlsMaterial(
  files: TlsFiles,
  onChange: (m: TlsMaterial) => void,
  onError: (e: Error) => void,
  options: WatchTlsMaterialOptions = {},
): () => void {
  const intervalMs = options.intervalMs ?? 1000;
  let lastStat = statSignature(files);
  let lastDigest = digestOf(files);
  let lastFailedStat = "";
  const timer = setInterval(() => {
    const sig = statSignature(files);
    if (sig === lastStat) return;
    try {
      const material = loadTlsMaterial(files);
      lastStat = sig;
      lastFailedStat = "";
      const digest = digestMaterial(material);
      if (digest === lastDigest) return;
      lastDigest = digest;
      onChange(material);
    } catch (err) {
      // Report each broken state once, not on every poll.
      if (sig !== lastFailedStat) {
        lastFailedStat = sig;
        onError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Server-side options for mutual TLS: the CA bundle to verify clients, this
 * party's certificate and key, client certificates required and verified in
 * the handshake, TLS 1.3 only. Pass to `tls.createServer`,
 * `http2.createSecureServer` or `server.setSecureContext`; then check the
 * client's identity with {@link isAllowedPeer}.
 */
export function mtlsServerOptions(
  m: TlsMaterial,
): SecureContextOptions & { requestCert: true; rejectUnauthorized: true; minVersion: "TLSv1.3" } {
  return {
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.3",
  };
}

function statOrThrow(path: string): Stats {
  return orMissing(path, () => statSync(path));
}

function readOrThrow(path: string): Buffer {
  return orMissing(path, () => readFileSync(path));
}

/** Runs a file access, turning its failure into a "missing_file" TlsMaterialError naming the file. */
function orMissing<T>(path: string, access: () => T): T {
  try {
    return access();
  } catch (err) {
    throw new TlsMaterialError(
      "missing_file",
      path,
      `TLS file ${path} cannot be read: ${errnoText(err)}`,
      err,
    );
  }
}

function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" ? "no such file" : (code ?? String(err));
}

function parseCert(pem: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsMaterialError(
      "invalid_pem",
      path,
      `${path} holds an invalid PEM certificate`,
      err,
    );
  }
}

function splitPem(bytes: Buffer): string[] {
  return (
    bytes.toString("utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ??
    []
  );
}

function statSignature(files: TlsFiles): string {
  return [files.caPath, files.certPath, files.keyPath]
    .map((p) => {
      try {
        const s = statSync(p, { bigint: true });
        return `${s.ino}:${s.size}:${s.mtimeNs}:${s.mode}`;
      } catch {
        return "missing";
      }
    })
    .join("|");
}

function digestOf(files: TlsFiles): string {
  try {
    return digestMaterial({
      ca: readFileSync(files.caPath),
      cert: readFileSync(files.certPath),
      key: readFileSync(files.keyPath),
    });
  } catch {
    return "";
  }
}

function digestMaterial(m: Pick<TlsMaterial, "ca" | "cert" | "key">): string {
  return createHash("sha256")
    .update(m.ca)
    .update("\0")
    .update(m.cert)
    .update("\0")
    .update(m.key)
    .digest("hex");
}
