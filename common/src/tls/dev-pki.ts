import {
  createPrivateKey,
  KeyObject,
  X509Certificate as NodeX509,
  randomBytes,
  webcrypto,
} from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { chmod, mkdir, open, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { JsonGeneralNames } from "@peculiar/x509";
import { writeTempFile } from "../fs-atomic.js";
import { edgeIdentity, monitorIdentity, parseSubjectAltName, runnerIdentity } from "./identity.js";

/** Options of {@link ensureDevPki}. */
export interface DevPkiOptions {
  /** Directory holding the CA and leaf material; created with mode 0700 if missing. */
  dir: string;
  /** Edge ids to hold certificates for (identity `spiffe://mcp-gateway/edge/<id>`). */
  edgeIds: string[];
  /** Runner ids to hold certificates for (identity `spiffe://mcp-gateway/runner/<id>`). */
  runnerIds: string[];
  /** Monitoring clients to hold certificates for (identity `spiffe://mcp-gateway/monitor/<id>`). */
  monitorIds?: string[];
  /** Validity of leaf certificates in days (default 30: short-lived on purpose). */
  validityDays?: number;
  /** Validity of the dev CA in days (default 365). */
  caValidityDays?: number;
  /** DNS names and IP addresses put into leaf SANs (default `["localhost","127.0.0.1","::1"]`). */
  hosts?: string[];
  /** Longest wait for another process holding the PKI lock, in ms (default 30000). */
  lockTimeoutMs?: number;
}

/** Paths of one leaf's certificate and PKCS#8 private key. */
export interface DevPkiLeaf {
  /** PEM certificate. */
  certPath: string;
  /** PEM PKCS#8 private key (mode 0600). */
  keyPath: string;
}

/** Where {@link ensureDevPki} put the material. */
export interface DevPki {
  /** PEM certificate of the dev CA: the trust bundle for both tiers. */
  caCertPath: string;
  /** Edge leaves by id. */
  edges: Record<string, DevPkiLeaf>;
  /** Runner leaves by id. */
  runners: Record<string, DevPkiLeaf>;
  /** Monitoring-client leaves by id (client authentication only). */
  monitors: Record<string, DevPkiLeaf>;
}

/** Errors of the dev PKI tooling. */
export class DevPkiError extends Error {
  override readonly name = "DevPkiError";
  /** What went wrong, machine-readable. */
  readonly code: "invalid_id" | "lock_timeout" | "invalid_options";

  constructor(code: DevPkiError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** What a leaf certificate is for. */
type LeafKind = "edge" | "runner" | "monitor";
const DEFAULT_HOSTS = ["localhost", "127.0.0.1", "::1"];
const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start a little in the past so peers with slightly slow clocks accept them. */
const BACKDATE_MS = 5 * 60 * 1000;
const EC_PARAMS = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const crypto = webcrypto;

interface CaMaterial {
  cert: NodeX509;
  certPem: string;
  /** The CA's key for WebCrypto, imported only when a leaf is issued (not on every start). */
  signingKey: () => Promise<webcrypto.CryptoKey>;
}

/**
 * Creates (first start) or reuses (later starts) a development CA and leaf
 * certificates for the given edges and runners, all ECDSA P-256.
 *
 * - The directory is 0700 and keys are 0600 PKCS#8 PEM.
 * - A leaf is (re)issued when it is missing, unreadable, not issued by the
 *   current CA, does not match its key, carries other SANs than requested, or
 *   expires within a third of its validity. A CA in that state is replaced and
 *   every requested leaf reissued.
 * - Files are written to a temporary name and renamed into place, under an
 *   exclusive lock file (`.lock`), so two processes starting together (edge
 *   and runner) end up with one consistent CA.
 *
 * This is a development convenience, not a production PKI: the CA key sits
 * next to the leaves. See docs/security/trust-model.md.
 *
 * @example
 * const pki = await ensureDevPki({ dir: ".data/pki", edgeIds: ["edge-local"], runnerIds: ["local"] });
 * const material = loadTlsMaterial({ caPath: pki.caCertPath, ...pki.runners.local });
 */
export async function ensureDevPki(options: DevPkiOptions): Promise<DevPki> {
  const validityDays = options.validityDays ?? 30;
  const caValidityDays = options.caValidityDays ?? 365;
  if (!(validityDays > 0) || !(caValidityDays >= validityDays)) {
    throw new DevPkiError(
      "invalid_options",
      `validityDays must be > 0 and caValidityDays >= validityDays (got ${validityDays}, ${caValidityDays})`,
    );
  }
  for (const id of [...options.edgeIds, ...options.runnerIds, ...(options.monitorIds ?? [])]) {
    if (!ID_PATTERN.test(id)) {
      throw new DevPkiError(
        "invalid_id",
        `invalid id ${JSON.stringify(id)}: use 1-64 of A-Z a-z 0-9 . _ -`,
      );
    }
  }
  const hosts = options.hosts ?? DEFAULT_HOSTS;
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  await chmod(options.dir, 0o700);

  const release = await acquireLock(join(options.dir, ".lock"), options.lockTimeoutMs ?? 30_000);
  try {
    const caCertPath = join(options.dir, "ca.crt");
    const caKeyPath = join(options.dir, "ca.key");
    let ca = await readCa(caCertPath, caKeyPath);
    if (ca === undefined) {
      ca = await createCa(caCertPath, caKeyPath, caValidityDays);
    }
    const result: DevPki = { caCertPath, edges: {}, runners: {}, monitors: {} };
    const leaves: Array<[kind: LeafKind, id: string]> = [
      ...options.edgeIds.map((id) => ["edge", id] as [LeafKind, string]),
      ...options.runnerIds.map((id) => ["runner", id] as [LeafKind, string]),
      ...(options.monitorIds ?? []).map((id) => ["monitor", id] as [LeafKind, string]),
    ];
    // A CA whose key WebCrypto cannot import (it is imported only to issue) is replaced, and
    // every leaf checked again against the new one.
    for (let pass = 0; ; pass++) {
      let replaced = false;
      for (const [kind, id] of leaves) {
        const leaf: DevPkiLeaf = {
          certPath: join(options.dir, `${kind}-${id}.crt`),
          keyPath: join(options.dir, `${kind}-${id}.key`),
        };
        const identity =
          kind === "edge"
            ? edgeIdentity(id)
            : kind === "runner"
              ? runnerIdentity(id)
              : monitorIdentity(id);
        if (!(await leafIsCurrent(leaf, ca, identity, hosts))) {
          const usable = await ca.signingKey().then(
            () => true,
            () => false,
          );
          if (!usable && pass === 0) {
            ca = await createCa(caCertPath, caKeyPath, caValidityDays);
            replaced = true;
            break;
          }
          await issueLeaf(leaf, ca, { kind, id, identity, hosts, validityDays });
        }
        if (kind === "edge") result.edges[id] = leaf;
        else if (kind === "runner") result.runners[id] = leaf;
        else result.monitors[id] = leaf;
      }
      if (!replaced) return result;
    }
  } finally {
    await release();
  }
}

/** Reads the CA if it is present, consistent and not due for renewal. */
async function readCa(certPath: string, keyPath: string): Promise<CaMaterial | undefined> {
  try {
    const certPem = await readFile(certPath, "utf8");
    const keyPem = await readFile(keyPath, "utf8");
    const cert = new NodeX509(certPem);
    const key = createPrivateKey(keyPem);
    if (!cert.ca || !cert.checkPrivateKey(key) || dueForRenewal(cert)) return undefined;
    let imported: Promise<webcrypto.CryptoKey> | undefined;
    const signingKey = () => {
      imported ??= crypto.subtle.importKey(
        "pkcs8",
        key.export({ type: "pkcs8", format: "der" }),
        EC_PARAMS,
        false,
        ["sign"],
      );
      return imported;
    };
    return { cert, certPem, signingKey };
  } catch {
    return undefined;
  }
}

async function createCa(
  certPath: string,
  keyPath: string,
  validityDays: number,
): Promise<CaMaterial> {
  const {
    BasicConstraintsExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectKeyIdentifierExtension,
    X509CertificateGenerator,
  } = await import("./x509-lib.js");
  const keys = (await crypto.subtle.generateKey(EC_PARAMS, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: `CN=mcp-gateway dev CA ${new Date(now).toISOString().slice(0, 10)}, O=mcp-gateway (development only)`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + validityDays * DAY_MS),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const certPem = cert.toString("pem");
  await writeAtomic(keyPath, await pkcs8Pem(keys.privateKey), 0o600);
  await writeAtomic(certPath, `${certPem}\n`, 0o644);
  const signingKey = keys.privateKey;
  return { cert: new NodeX509(certPem), certPem, signingKey: async () => signingKey };
}

async function leafIsCurrent(
  leaf: DevPkiLeaf,
  ca: CaMaterial,
  identity: string,
  hosts: string[],
): Promise<boolean> {
  try {
    const keyMode = (await stat(leaf.keyPath)).mode;
    if ((keyMode & 0o077) !== 0) return false;
    const cert = new NodeX509(await readFile(leaf.certPath));
    const key = createPrivateKey(await readFile(leaf.keyPath));
    if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) return false;
    if (!cert.checkPrivateKey(key) || dueForRenewal(cert)) return false;
    const actual = parseSubjectAltName(cert.subjectAltName ?? "").map(normalizeSan);
    return sameStrings(actual, expectedSans(identity, hosts).map(normalizeSan));
  } catch {
    return false;
  }
}

async function issueLeaf(
  leaf: DevPkiLeaf,
  ca: CaMaterial,
  spec: {
    kind: LeafKind;
    id: string;
    identity: string;
    hosts: string[];
    validityDays: number;
  },
): Promise<void> {
  const {
    AuthorityKeyIdentifierExtension,
    BasicConstraintsExtension,
    ExtendedKeyUsage,
    ExtendedKeyUsageExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectAlternativeNameExtension,
    SubjectKeyIdentifierExtension,
    X509CertificateGenerator,
  } = await import("./x509-lib.js");
  const keys = (await crypto.subtle.generateKey(EC_PARAMS, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const caNotAfter = new Date(ca.cert.validTo).getTime();
  const names: JsonGeneralNames = [{ type: "url", value: spec.identity }];
  for (const host of spec.hosts) {
    names.push({ type: isIpAddress(host) ? "ip" : "dns", value: host });
  }
  // Edges dial runners (client) and may serve (server); runners serve and may
  // later call the edge to register, so both carry both purposes.
  // Monitors only ever dial (client authentication only).
  const usages =
    spec.kind === "edge"
      ? [ExtendedKeyUsage.clientAuth, ExtendedKeyUsage.serverAuth]
      : spec.kind === "runner"
        ? [ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]
        : [ExtendedKeyUsage.clientAuth];
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: `CN=${spec.kind} ${spec.id}, O=mcp-gateway (development only)`,
      issuer: ca.cert.subject.replaceAll("\n", ", "),
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(Math.min(now + spec.validityDays * DAY_MS, caNotAfter)),
      publicKey: keys.publicKey,
      signingKey: await ca.signingKey(),
      signingAlgorithm: SIGNING,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension(usages, false),
        new SubjectAlternativeNameExtension(names, false),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await AuthorityKeyIdentifierExtension.create(
          await crypto.subtle.importKey(
            "spki",
            ca.cert.publicKey.export({ type: "spki", format: "der" }),
            EC_PARAMS,
            true,
            ["verify"],
          ),
          false,
          crypto,
        ),
      ],
    },
    crypto,
  );
  // Key first, then certificate: a watcher that sees the new certificate also
  // finds the matching key.
  await writeAtomic(leaf.keyPath, await pkcs8Pem(keys.privateKey), 0o600);
  await writeAtomic(leaf.certPath, `${cert.toString("pem")}\n`, 0o644);
}

/** True when less than a third of the certificate's validity period remains. */
function dueForRenewal(cert: NodeX509, now = Date.now()): boolean {
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  return to - now < (to - from) / 3;
}

function expectedSans(identity: string, hosts: string[]): string[] {
  return [
    `URI:${identity}`,
    ...hosts.map((h) => (isIpAddress(h) ? `IP Address:${h}` : `DNS:${h}`)),
  ];
}

function sameStrings(a: string[], b: string[]): boolean {
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.length === sb.length && sa.every((v, i) => v === sb[i]);
}

function isIpAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

/** Canonical text of a SAN entry, so that `IP Address:::1` and `IP Address:0:0:0:0:0:0:0:1` compare equal. */
function normalizeSan(entry: string): string {
  const prefix = "IP Address:";
  return entry.startsWith(prefix) ? prefix + normalizeIp(entry.slice(prefix.length)) : entry;
}

function normalizeIp(ip: string): string {
  if (!ip.includes(":")) return ip;
  const [head = "", tail = ""] = ip.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === "" ? [] : tail.split(":");
  const groups = ip.includes("::")
    ? [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t]
    : h;
  return groups.map((g) => Number.parseInt(g, 16).toString(16)).join(":");
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString("hex");
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  return KeyObject.from(key).export({ type: "pkcs8", format: "pem" }).toString();
}

/** Writes to a temporary file beside the target, then renames it into place. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  await rename(await writeTempFile(path, data, mode), path);
}

/**
 * Takes an exclusive lock file (O_EXCL). A lock whose holder process is gone,
 * or that is older than a minute, is considered stale and broken.
 */
async function acquireLock(path: string, timeoutMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(
        path,
        fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL,
        0o600,
      );
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (await lockIsStale(path)) {
      await rm(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new DevPkiError(
        "lock_timeout",
        `timed out waiting for the dev PKI lock ${path}; remove it if no process holds it`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 25 + Math.random() * 50));
  }
}

async function lockIsStale(path: string): Promise<boolean> {
  try {
    const [info, text] = await Promise.all([stat(path), readFile(path, "utf8")]);
    if (Date.now() - info.mtimeMs > 60_000) return true;
    const pid = Number.parseInt(text, 10);
    if (!Number.isInteger(pid) || pid <= 0) return Date.now() - info.mtimeMs > 2_000;
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ESRCH";
    }
  } catch {
    return false;
  }
}
