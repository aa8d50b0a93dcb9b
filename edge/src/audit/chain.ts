import { createHash, createHmac } from "node:crypto";
import { availableParallelism } from "node:os";
import canonicalize from "canonicalize";
import type {
  AuditEntry,
  AuditRangeSource,
  AuditRecord,
  RawAuditRow,
  TaskStore,
} from "../store/types.js";
import { isCanonicalJsonText } from "./jcs-check.js";
import type { AuditKey } from "./keys.js";
import type { VerifyPool } from "./verify-pool.js";

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
   * Called with each verified record's sequence number and hash, in order (e.g. to
   * compare them with signed checkpoints); returning a string fails the record with
   * that reason.
   */
  onRecord?: (seq: number, hash: string) => string | undefined;
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
 * Whether `body` is the RFC 8785 form of `parsed` (its JSON.parse): the one-pass text
 * check (jcs-check.ts), the full canonicalizer for nesting it leaves alone. Format 1
 * bodies (no `v`) were written by JSON.stringify with sorted keys, which escapes a lone
 * surrogate where JCS has no form for it: such a body is accepted as written.
 */
function isCanonical(parsed: ParsedBody, body: string): boolean {
  const fast = isCanonicalJsonText(body);
  if (fast === true) return true;
  if (fast === undefined) {
    try {
      if (canonicalize(parsed) === body) return true;
    } catch {
      // not representable in JCS: see format 1 below
    }
  }
  return parsed.v === undefined && JSON.stringify(parsed) === body && keysSorted(parsed);
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
 * What one stored row says on its own, before it is placed in the chain: the key that
 * signed it (null: unkeyed) and the first thing wrong with it, if any. `early` failures
 * (unreadable, misplaced, non-canonical, unknown or expired key) come before the
 * keyed-after-keyed rule in the verdict; `late` ones (hash, indexed columns) after it.
 * Independent of every other row, so rows can be inspected on worker threads.
 */
export interface RecordInspection {
  keyId: string | null;
  early?: string;
  late?: string;
}

/** Inspects one row against the given keys (see {@link RecordInspection}). */
export function inspectAuditRecord(
  row: RawAuditRow,
  keys: ReadonlyMap<string, AuditKey>,
): RecordInspection {
  // Rows come from a database an attacker may have written: whatever they hold, the answer
  // is a verdict on this record, never an exception (which would hide an earlier break).
  if (typeof row.body !== "string") {
    return { keyId: null, early: "stored body is not text" };
  }
  try {
    return inspectBody(row, keys);
  } catch (err) {
    return {
      keyId: null,
      early: `record cannot be checked: ${String((err as Error).message ?? err).slice(0, 200)}`,
    };
  }
}

function inspectBody(row: RawAuditRow, keys: ReadonlyMap<string, AuditKey>): RecordInspection {
  let parsed: ParsedBody;
  try {
    parsed = JSON.parse(row.body) as ParsedBody;
  } catch {
    return { keyId: null, early: "stored body is not valid JSON" };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { keyId: null, early: "stored body is not a JSON object" };
  }
  if (parsed.seq !== row.seq || parsed.prevHash !== row.prevHash) {
    return { keyId: null, early: "stored body does not match the record's position" };
  }
  if (parsed.v !== undefined && parsed.v !== 1 && parsed.v !== AUDIT_FORMAT_VERSION) {
    return { keyId: null, early: `unknown record format v=${String(parsed.v)}` };
  }
  if (!isCanonical(parsed, row.body)) {
    return {
      keyId: null,
      early: "stored body is not RFC 8785 canonical JSON (duplicate or reordered members)",
    };
  }
  let key: AuditKey | undefined;
  if (parsed.keyId !== undefined) {
    key = typeof parsed.keyId === "string" ? keys.get(parsed.keyId) : undefined;
    if (!key) {
      return {
        keyId: null,
        early: `record is keyed with audit key ${String(parsed.keyId)}, which was not given (pass the edge's audit key file to verify it)`,
      };
    }
    if (key.validUntilSeq !== undefined && row.seq > key.validUntilSeq) {
      return {
        keyId: key.id,
        early: `record is signed by audit key ${key.id} after its validity window (validUntilSeq ${key.validUntilSeq}): a retired key cannot sign new records`,
      };
    }
    if (key.validUntil !== undefined && parsed.time > key.validUntil) {
      return {
        keyId: key.id,
        early: `record is signed by audit key ${key.id} after its validity window (validUntil ${new Date(key.validUntil).toISOString()}): a retired key cannot sign new records`,
      };
    }
  }
  const keyId = key?.id ?? null;
  if (chainHash(row.prevHash, row.body, key) !== row.hash) {
    return { keyId, late: "hash does not match the record's content (record modified)" };
  }
  if (row.columns) {
    const differ = columnsDiffer(auditIndexColumns(parsed), row.columns);
    if (differ) {
      return {
        keyId,
        late: `indexed columns (${differ}) disagree with the signed body (listings would show or hide the record wrongly)`,
      };
    }
  }
  return { keyId };
}

/**
 * A row-by-row chain verifier: contiguous sequence, each body is RFC 8785
 * canonical and re-hashes to its hash (HMAC under the named key, within that
 * key's validity window), each prevHash names the previous record, the indexed
 * columns agree with the body. Detects modified, deleted, inserted and
 * reordered records; with keys, also a chain recomputed by someone without the
 * key; a truncated tail is detected against an anchored head or checkpoints.
 *
 * `place` takes a row with its {@link inspectAuditRecord} result (computed here
 * or on a worker thread) and applies what depends on order; `push` does both.
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
  const place = (
    seq: number,
    rowPrevHash: string,
    hash: string,
    inspection: RecordInspection,
  ): boolean => {
    if (bad) return false;
    if (seq !== prevSeq + 1) {
      return fail(seq, `sequence jumps from ${prevSeq} to ${seq} (record deleted or inserted)`);
    }
    if (rowPrevHash !== prevHash) {
      return fail(seq, "prevHash does not name the previous record (chain broken or reordered)");
    }
    if (inspection.early !== undefined) return fail(seq, inspection.early);
    if (inspection.keyId !== null) {
      keyedSeen = true;
    } else if (keyedSeen) {
      return fail(
        seq,
        "record is not keyed but follows keyed records (rewritten without the audit key)",
      );
    } else if (requireKeyed) {
      return fail(
        seq,
        "record is not keyed (rewritten without the audit key, or written before the edge had one)",
      );
    }
    if (inspection.late !== undefined) return fail(seq, inspection.late);
    const extra = options.onRecord?.(seq, hash);
    if (extra !== undefined) return fail(seq, extra);
    const keyId = inspection.keyId ?? "";
    const range = keyRanges[keyId];
    if (range) range.last = seq;
    else keyRanges[keyId] = { first: seq, last: seq };
    prevSeq = seq;
    prevHash = hash;
    checked++;
    return true;
  };
  return {
    keys,
    place,
    /** Checks the next row; false once the chain is broken. */
    push(row: RawAuditRow): boolean {
      if (bad) return false;
      return place(row.seq, row.prevHash, row.hash, inspectAuditRecord(row, keys));
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

/** Options of {@link verifyAuditRows}: where the per-record work runs. */
export interface ParallelVerifyOptions {
  /**
   * Worker threads that inspect records (parse, canonical form, HMAC, columns) while
   * this thread places them in the chain. Default: the machine's parallelism (at most
   * 8); 0 inspects everything on this thread. The verdict is the same either way.
   */
  threads?: number;
  /** Records verified on this thread before workers start (default 8192: small chains never start one). */
  parallelAfter?: number;
}

/** Rows per job handed to (or read by) a worker. */
const JOB_ROWS = 4096;

const defaultThreads = () => Math.min(8, availableParallelism());

/**
 * Verifies a store's rows as they stream in, without holding them all in memory.
 * Past the first `parallelAfter` rows, records are inspected on worker threads in
 * batches and placed in order here (see {@link ParallelVerifyOptions}).
 */
export async function verifyAuditRows(
  rows: AsyncIterable<RawAuditRow> | Iterable<RawAuditRow>,
  options: VerifyOptions & ParallelVerifyOptions = {},
): Promise<ChainVerdict> {
  const v = createChainVerifier(options);
  const threads = options.threads ?? defaultThreads();
  const parallelAfter = options.parallelAfter ?? 8192;
  let pool: VerifyPool | undefined;
  let batch: RawAuditRow[] = [];
  let seen = 0;
  let broken = false;
  try {
    for await (const row of rows) {
      if (pool === undefined && (threads === 0 || seen < parallelAfter)) {
        seen++;
        broken = !v.push(row);
        if (broken) break;
        continue;
      }
      batch.push(row);
      if (batch.length === JOB_ROWS) {
        pool ??= await startPool(v.keys, threads);
        broken = !(await pool.submitRows(batch, v.place));
        batch = [];
        if (broken) break;
      }
    }
    if (!broken && batch.length > 0) {
      pool ??= await startPool(v.keys, threads);
      broken = !(await pool.submitRows(batch, v.place));
    }
    if (!broken) await pool?.drain(v.place);
  } finally {
    await pool?.close();
  }
  return v.verdict();
}

/**
 * Verifies a store's whole chain, as `audit verify` does: when the store lets worker
 * threads read it by sequence range (a SQLite file) and the chain is long, each worker
 * reads and inspects its own ranges and this thread only places the answers; otherwise
 * {@link verifyAuditRows} over the store's rows. Records appended while it runs are not
 * verified (the chain is verified up to the head it had when this started).
 */
export async function verifyStoreAudit(
  store: Pick<TaskStore, "auditRows" | "auditHead" | "auditRangeSource">,
  options: Omit<VerifyOptions, "startAfter"> & ParallelVerifyOptions = {},
): Promise<ChainVerdict> {
  const threads = options.threads ?? defaultThreads();
  const parallelAfter = options.parallelAfter ?? 8192;
  const source = threads > 0 ? store.auditRangeSource?.() : undefined;
  const head = source ? await store.auditHead() : undefined;
  // Ranges need an integer head; anything else (a table rewritten with other types) is
  // left to the streaming verifier, which reports it.
  if (!source || !head || !Number.isSafeInteger(head.seq) || head.seq <= parallelAfter) {
    return verifyAuditRows(store.auditRows(), options);
  }
  const v = createChainVerifier(options);
  const pool = await startPool(v.keys, threads, source);
  try {
    // The first range has no lower bound: a record stored below seq 1, however far, is
    // read and breaks the chain there, as when streaming.
    let from: number | null = null;
    for (let to = JOB_ROWS; ; to += JOB_ROWS) {
      const last = Math.min(to, head.seq);
      if (!(await pool.submitRange(from, last, v.place))) break;
      if (last >= head.seq) {
        await pool.drain(v.place);
        break;
      }
      from = last + 1;
    }
  } finally {
    await pool.close();
  }
  return v.verdict();
}

async function startPool(
  keys: ReadonlyMap<string, AuditKey>,
  threads: number,
  source?: AuditRangeSource,
): Promise<VerifyPool> {
  const { createVerifyPool } = await import("./verify-pool.js");
  return createVerifyPool([...keys.values()], threads, source);
}
