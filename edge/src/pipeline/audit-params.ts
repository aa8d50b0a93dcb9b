import { createHash } from "node:crypto";
import { canonicalJson } from "../audit/chain.js";

/** Default largest audited parameters, bytes of canonical JSON. */
export const DEFAULT_MAX_AUDIT_PARAMS_BYTES = 16 * 1024;

/** Characters kept of a long string value (and of each element in an array's head). */
const HEAD_CHARS = 128;
/** Elements kept of a long array. */
const HEAD_ELEMENTS = 8;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function clip(value: unknown): unknown {
  return typeof value === "string" && value.length > HEAD_CHARS
    ? `${value.slice(0, HEAD_CHARS)}…`
    : value;
}

/** A stand-in for a value too large to keep: its size, digest and a short head. */
function digestOf(value: unknown, text: string): Record<string, unknown> {
  const d: Record<string, unknown> = {
    $truncated: true,
    $bytes: Buffer.byteLength(text),
    $sha256: sha256(text),
  };
  if (Array.isArray(value)) {
    d.$count = value.length;
    d.$head = value.slice(0, HEAD_ELEMENTS).map((v) => (typeof v === "object" ? "…" : clip(v)));
  } else if (typeof value === "string") {
    d.$head = clip(value);
  }
  return d;
}

/**
 * Audit parameters bounded in size (issue 21, finding 3): parameters whose
 * canonical JSON fits `maxBytes` are kept as they are; otherwise every
 * top-level value larger than its share is replaced by
 * `{$truncated, $bytes, $sha256, $count?, $head?}` and `$params` records the
 * size and SHA-256 of the whole original (RFC 8785 canonical JSON, the form
 * the chain hashes), so anyone holding the request can show it is the one
 * audited. The record stays HMAC-chained like any other.
 *
 * @example
 * store.appendAudit({ ...entry, params: boundAuditParams(entry.params, 16 * 1024) });
 */
export function boundAuditParams(
  params: Record<string, unknown>,
  maxBytes: number = DEFAULT_MAX_AUDIT_PARAMS_BYTES,
): Record<string, unknown> {
  const full = canonicalJson(params);
  const bytes = Buffer.byteLength(full);
  if (bytes <= maxBytes) return params;
  const entries = Object.entries(params);
  const share = Math.max(256, Math.floor(maxBytes / (entries.length + 1)));
  const out: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    const text = canonicalJson(value ?? null);
    out[key] = Buffer.byteLength(text) <= share ? value : digestOf(value, text);
  }
  out.$params = { $truncated: true, $bytes: bytes, $sha256: sha256(full) };
  return out;
}

/** The digest {@link boundAuditParams} records for `params` (to check an audited request). */
export function auditParamsDigest(params: Record<string, unknown>): string {
  return sha256(canonicalJson(params));
}
