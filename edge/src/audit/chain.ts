import { createHash, createHmac } from "node:crypto";
import type { AuditEntry, AuditRecord, RawAuditRow } from "../store/types.js";
import type { AuditKey } from "./keys.js";

/** prevHash of the first record of a chain. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * Canonical JSON: object keys sorted, no whitespace, so the same record always
 * hashes the same wherever it was stored and read back.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new TypeError("canonicalJson: non-finite number");
    }
    return JSON.stringify(value ?? null);
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/**
 * The body that is hashed: the entry plus its position in the chain and, for
 * a keyed chain, the id of the key (so a verifier knows which key to use and
 * a record cannot be moved to another key's chain unnoticed).
 */
export function auditBody(
  entry: AuditEntry,
  seq: number,
  prevHash: string,
  keyId?: string,
): string {
  return canonicalJson({ ...entry, seq, prevHash, keyId });
}

/**
 * The hash of a record over the previous hash and the canonical body:
 * HMAC-SHA256 under the audit key when there is one, plain sha256 otherwise
 * (unkeyed chains detect edits only against an anchored head).
 */
export function chainHash(prevHash: string, body: string, key?: AuditKey): string {
  const h = key ? createHmac("sha256", key.secret) : createHash("sha256");
  return h.update(prevHash).update("\n").update(body).digest("hex");
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
  return { record: { ...entry, seq, prevHash, hash: chainHash(prevHash, body, key) }, body };
}

/** Result of {@link verifyAuditChain}. */
export interface ChainVerdict {
  ok: boolean;
  /** Records checked. */
  checked: number;
  /** Hash of the last record (the head to anchor elsewhere). */
  head: string;
  /** First bad record and why, when not ok. */
  firstBad?: { seq: number; reason: string };
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
   */
  keys?: readonly AuditKey[];
  /**
   * Refuse unkeyed records. Default: true when `keys` are given, so a record
   * rewritten without a key (a downgrade) is caught. False accepts unkeyed
   * records only *before* the first keyed one (a chain started before the
   * edge had a key): after a keyed record an unkeyed one is always refused.
   */
  requireKeyed?: boolean;
}

/**
 * A row-by-row chain verifier: contiguous sequence, each body re-hashes to its
 * hash (HMAC under the named key for keyed records), each prevHash names the
 * previous record. Detects modified, deleted, inserted and reordered records;
 * with keys, also a chain recomputed by someone without the key; a truncated
 * tail is detected when an anchored head is expected.
 */
function createChainVerifier(options: VerifyOptions) {
  const keys = new Map((options.keys ?? []).map((k) => [k.id, k]));
  const requireKeyed = options.requireKeyed ?? keys.size > 0;
  /** Once a keyed record was seen, every later one must be keyed too. */
  let keyedSeen = false;
  let prevSeq = options.startAfter?.seq ?? 0;
  let prevHash = options.startAfter?.hash ?? GENESIS_HASH;
  let checked = 0;
  let bad: ChainVerdict | undefined;
  const fail = (seq: number, reason: string) => {
    bad = { ok: false, checked, head: prevHash, firstBad: { seq, reason } };
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
      let parsed: { seq?: unknown; prevHash?: unknown; keyId?: unknown };
      try {
        parsed = JSON.parse(row.body) as { seq?: unknown; prevHash?: unknown; keyId?: unknown };
      } catch {
        return fail(row.seq, "stored body is not valid JSON");
      }
      if (parsed.seq !== row.seq || parsed.prevHash !== row.prevHash) {
        return fail(row.seq, "stored body does not match the record's position");
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
          firstBad: {
            seq: prevSeq + 1,
            reason: "chain ends before the anchored head (tail removed)",
          },
        };
      }
      return { ok: true, checked, head: prevHash };
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
