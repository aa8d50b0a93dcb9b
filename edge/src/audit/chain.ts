import { createHash, createHmac } from "node:crypto";
import canonicalize from "canonicalize";
import type { AuditEntry, AuditRecord, RawAuditRow } from "../store/types.js";
import type { AuditKey } from "./keys.js";

/** prevHash of the first record of a chain. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * Current record format. 2: RFC 8785 (JCS) canonical body with `v: 2`; records
 * without `v` are format 1 (written before JCS), whose bodies are the same
 * canonical form for the values the gateway writes and verify unchanged.
 * See docs/security/audit-format.md.
 */
export const AUDIT_FORMAT_VERSION = 2;

/** A lone UTF-16 surrogate (not part of a pair). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Replaces lone UTF-16 surrogates (which JCS cannot encode) with U+FFFD, deeply. */
function wellFormed(value: unknown): unknown {
  if (typeof value === "string") return value.replace(LONE_SURROGATE, "\uFFFD");
  if (Array.isArray(value)) return value.map(wellFormed);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wellFormed(v)]));
  }
  return value;
}

/**
 * RFC 8785 JSON Canonicalization Scheme (via the `canonicalize` package):
 * keys sorted by UTF-16 code units, no whitespace, ECMAScript number and
 * string serialization, so any JCS implementation reproduces the same bytes.
 * `undefined` object members are dropped; lone surrogates become U+FFFD.
 *
 * @throws TypeError for non-finite numbers and values with no JSON form.
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(wellFormed(value));
  } catch (err) {
    throw new TypeError(`canonicalJson: ${(err as Error).message}`);
  }
  if (text === undefined) throw new TypeError("canonicalJson: value has no JSON form");
  return text;
}

/**
 * The body that is hashed: the entry plus its position in the chain, the
 * format version and, for a keyed chain, the id of the key (so a verifier
 * knows which key to use and a record cannot be moved to another key's chain
 * unnoticed).
 */
export function auditBody(
  entry: AuditEntry,
  seq: number,
  prevHash: string,
  keyId?: string,
): string {
  return canonicalJson({ ...entry, seq, prevHash, keyId, v: AUDIT_FORMAT_VERSION });
}

/**
 * The hash of a record (the link): HMAC-SHA256 under the audit key when there
 * is one, plain sha256 otherwise, over `prevHash || "\n" || body`, lowercase hex.
 * Unkeyed chains detect edits only against an anchored head or checkpoints.
 */
export function chainHash(prevHash: string, body: string, key?: AuditKey): string {
  const h = key ? createHmac("sha256", key.secret) : createHash("sha256");
  return h.update(prevHash).update("\n").update(body).digest("hex");
}

/** The copies of body fields that stores keep in indexed columns for listing. */
export interface AuditIndexColumns {
  time: number;
  /** principal.sub, "" when none. */
  principal: string;
  /** principal.tenant, "" when none. */
  tenant: string;
  operation: string;
  decision: string;
}

/** NUL is not storable in PostgreSQL text: both stores index it as U+FFFD. */
function indexText(value: string): string {
  return value.includes("\0") ? value.replaceAll("\0", "\uFFFD") : value;
}

/**
 * The indexed columns a store writes for a record (the same function for
 * every store, and what `audit verify` expects to find next to the body).
 */
export function auditIndexColumns(
  record: Pick<AuditEntry, "time" | "principal" | "operation" | "decision">,
): AuditIndexColumns {
  return {
    time: record.time,
    principal: indexText(record.principal?.sub ?? ""),
    tenant: indexText(record.principal?.tenant ?? ""),
    operation: indexText(record.operation),
    decision: record.decision,
  };
}

/** Builds the stored record for an entry appended after `prev`, keyed when `key` is given. */
export function sealAuditRecord(
  entry: AuditEntry,
  prev: { seq: number; hash: string } | undefined,
  key?: AuditKey,
): { record: AuditRecord; body: string } {
  const seq = (prev?.seq ?? 0) + 1;
  const prevHash = prev?.hash ?? GENESIS_HASH;
  const body = auditBody(entry, seq, prevHash, key?.id);
  // The record is the body as stored (JCS may have replaced lone surrogates) plus the hash.
  const record = { ...(JSON.parse(body) as AuditRecord), hash: chainHash(prevHash, body, key) };
  return { record, body };
}

/** Result of {@link verifyAuditChain}. */
export interface ChainVerdict {
  ok: boolean;
  /** Records checked. */
  checked: number;
  /** Hash of the last record (the head to anchor elsewhere). */
  head: string;
  /** Sequence number of the last verified record (0 for an empty chain). */
  headSeq: number;
  /** First bad record and why, when not ok. */
  firstBad?: { seq: number; reason: string };
  /** Per audit key id ("" for unkeyed records): first and last sequence number it signed. */
  keyRanges: Record<string, { first: number; last: number }>;
}

/** Options for verifying a chain. */
export interface VerifyOptions {
  /** An anchored head hash: a chain that ends before it had its tail removed. */
  expectHead?: string;
  /** Continue after an already verified record instead of from the genesis. */
  startAfter?: { seq: number; hash: string };
  /**
   * Audit keys (current and retired) to check keyed records with. A keyed
   * record whose key is not given fails verification: it cannot be checked.
   * A record signed by a key after its validity window (`validUntilSeq`,
   * `validUntil`) fails too.
   */
  keys?: readonly AuditKey[];
  /**
   * Refuse unkeyed records. Default: true when `keys` are given, so a record
   * rewritten without a key (a downgrade) is caught. False accepts unkeyed
   * records only *before* the first keyed one (a chain started before the
   * edge had a key): after a keyed record an unkeyed one is always refused.
   */
  requireKeyed?: boolean;
  /**
   * Called with each verified record's parsed body (e.g. to compare it with
   * signed checkpoints); returning a string fails the record with that reason.
   */
  onRecord?: (seq: number, hash: string, body: AuditRecord) => string | undefined;
}

/** True when every object's own keys are in strictly ascending UTF-16 order. */
function keysSorted(value: unknown): boolean {
  if (value === null || typeof value !== "object") return true;
  if (Array.isArray(value)) return value.every(keysSorted);
  let prev: string | undefined;
  for (const k of Object.keys(value)) {
    if (prev !== undefined && !(prev < k)) return false;
    prev = k;
    if (!keysSorted((value as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * Whether `body` is the RFC 8785 form of `parsed` (its JSON.parse). Fast
 * path: JCS is ECMAScript JSON.stringify with sorted keys, so a body that
 * JSON.stringify reproduces (no whitespace, no duplicate members, standard
 * escapes and number forms) with sorted keys is canonical. Objects with
 * integer-like keys, which JavaScript reorders, take the full canonicalizer.
 */
function isCanonical(parsed: unknown, body: string): boolean {
  if (JSON.stringify(parsed) === body && keysSorted(parsed)) return true;
  try {
    return canonicalize(parsed) === body;
  } catch {
    return false;
  }
}

/** Parsed fields the verifier reads from a body. */
type ParsedBody = AuditRecord & { keyId?: unknown; v?: unknown };

/** Names of the stored columns that differ from the ones the body implies. */
function columnsDiffer(body: AuditIndexColumns, stored: AuditIndexColumns): string | undefined {
  const norm = (v: string | number) => (typeof v === "string" ? indexText(v) : v);
  const names = (Object.keys(body) as (keyof AuditIndexColumns)[]).filter(
    (k) => body[k] !== norm(stored[k]),
  );
  return names.length === 0 ? undefined : names.join(", ");
}

/**
 * A row-by-row chain verifier: contiguous sequence, each body is RFC 8785
 * canonical and re-hashes to its hash (HMAC under the named key, within that
 * key's validity window), each prevHash names the previous record, the indexed
 * columns agree with the body. Detects modified, deleted, inserted and
 * reordered records; with keys, also a chain recomputed by someone without the
 * key; a truncated tail is detected against an anchored head or checkpoints.
 */
function createChainVerifier(options: VerifyOptions) {
  const keys = new Map((options.keys ?? []).map((k) => [k.id, k]));
  const requireKeyed = options.requireKeyed ?? keys.size > 0;
  /** Once a keyed record was seen, every later one must be keyed too. */
  let keyedSeen = false;
  let prevSeq = options.startAfter?.seq ?? 0;
  let prevHash = options.startAfter?.hash ?? GENESIS_HASH;
  let checked = 0;
  const keyRanges: Record<string, { first: number; last: number }> = {};
  let bad: ChainVerdict | undefined;
  const fail = (seq: number, reason: string) => {
    bad = {
      ok: false,
      checked,
      head: prevHash,
      headSeq: prevSeq,
      firstBad: { seq, reason },
      keyRanges,
    };
    return false;
  };
  return {
    /** Checks the next row; false once the chain is broken. */
    push(row: RawAuditRow): boolean {
      if (bad) return false;
      if (row.seq !== prevSeq + 1) {
        return fail(
          row.seq,
          `sequence jumps from ${prevSeq} to ${row.seq} (record deleted or inserted)`,
        );
      }
      if (row.prevHash !== prevHash) {
        return fail(
          row.seq,
          "prevHash does not name the previous record (chain broken or reordered)",
        );
      }
      let parsed: ParsedBody;
      try {
        parsed = JSON.parse(row.body) as ParsedBody;
      } catch {
        return fail(row.seq, "stored body is not valid JSON");
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        return fail(row.seq, "stored body is not a JSON object");
      }
      if (parsed.seq !== row.seq || parsed.prevHash !== row.prevHash) {
        return fail(row.seq, "stored body does not match the record's position");
      }
      if (parsed.v !== undefined && parsed.v !== 1 && parsed.v !== AUDIT_FORMAT_VERSION) {
        return fail(row.seq, `unknown record format v=${String(parsed.v)}`);
      }
      if (!isCanonical(parsed, row.body)) {
        return fail(
          row.seq,
          "stored body is not RFC 8785 canonical JSON (duplicate or reordered members)",
        );
      }
      let key: AuditKey | undefined;
      if (parsed.keyId !== undefined) {
        key = typeof parsed.keyId === "string" ? keys.get(parsed.keyId) : undefined;
        if (!key) {
          return fail(
            row.seq,
            `record is keyed with audit key ${String(parsed.keyId)}, which was not given (pass the edge's audit key file to verify it)`,
          );
        }
        if (key.validUntilSeq !== undefined && row.seq > key.validUntilSeq) {
          return fail(
            row.seq,
            `record is signed by audit key ${key.id} after its validity window (validUntilSeq ${key.validUntilSeq}): a retired key cannot sign new records`,
          );
        }
        if (key.validUntil !== undefined && parsed.time > key.validUntil) {
          return fail(
            row.seq,
            `record is signed by audit key ${key.id} after its validity window (validUntil ${new Date(key.validUntil).toISOString()}): a retired key cannot sign new records`,
          );
        }
        keyedSeen = true;
      } else if (keyedSeen) {
        return fail(
          row.seq,
          "record is not keyed but follows keyed records (rewritten without the audit key)",
        );
      } else if (requireKeyed) {
        return fail(
          row.seq,
          "record is not keyed (rewritten without the audit key, or written before the edge had one)",
        );
      }
      if (chainHash(row.prevHash, row.body, key) !== row.hash) {
        return fail(row.seq, "hash does not match the record's content (record modified)");
      }
      if (row.columns) {
        const differ = columnsDiffer(auditIndexColumns(parsed), row.columns);
        if (differ) {
          return fail(
            row.seq,
            `indexed columns (${differ}) disagree with the signed body (listings would show or hide the record wrongly)`,
          );
        }
      }
      const extra = options.onRecord?.(row.seq, row.hash, parsed);
      if (extra !== undefined) return fail(row.seq, extra);
      const keyId = key?.id ?? "";
      const range = keyRanges[keyId];
      if (range) range.last = row.seq;
      else keyRanges[keyId] = { first: row.seq, last: row.seq };
      prevSeq = row.seq;
      prevHash = row.hash;
      checked++;
      return true;
    },
    verdict(): ChainVerdict {
      if (bad) return bad;
      if (options.expectHead !== undefined && options.expectHead !== prevHash) {
        return {
          ok: false,
          checked,
          head: prevHash,
          headSeq: prevSeq,
          firstBad: {
            seq: prevSeq + 1,
            reason: "chain ends before the anchored head (tail removed)",
          },
          keyRanges,
        };
      }
      return { ok: true, checked, head: prevHash, headSeq: prevSeq, keyRanges };
    },
  };
}

/** Verifies stored rows in order (see {@link verifyAuditRows} for a store's async rows). */
export function verifyAuditChain(
  rows: Iterable<RawAuditRow>,
  options: VerifyOptions = {},
): ChainVerdict {
  const v = createChainVerifier(options);
  for (const row of rows) if (!v.push(row)) break;
  return v.verdict();
}

/** Verifies a store's rows as they stream in, without holding them all in memory. */
export async function verifyAuditRows(
  rows: AsyncIterable<RawAuditRow>,
  options: VerifyOptions = {},
): Promise<ChainVerdict> {
  const v = createChainVerifier(options);
  for await (const row of rows) if (!v.push(row)) break;
  return v.verdict();
}
