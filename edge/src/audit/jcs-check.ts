/**
 * A one-pass check that a JSON text is already in its RFC 8785 (JCS) canonical form —
 * what `canonicalize(JSON.parse(text)) === text` answers, without building and
 * re-serializing the value. `audit verify` runs it on every record (issue 18: a million
 * records in ≤ 10 s); the differential test in jcs-check.test.ts holds it to the
 * `canonicalize` library on generated and hand-picked texts.
 *
 * The canonical form (RFC 8785 §3.2, which is ECMAScript's JSON.stringify with sorted
 * members): no whitespace; object members in strictly ascending UTF-16 order of their
 * unescaped names (so no duplicates); strings escape only `"`, `\`, the control
 * characters (`\b \t \n \f \r` or `\u00xx` in lowercase hex), everything else literal,
 * and no lone surrogates (I-JSON); numbers as ECMAScript's Number::toString writes them.
 */

/** Nesting past this is answered by the caller's slow path (undefined). */
const MAX_DEPTH = 256;

const isLowerHex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * Scans the string token whose opening quote is at `i`; returns the index after its
 * closing quote, or -1 when it is not in canonical form (or not a string).
 */
function scanString(text: string, i: number): number {
  const n = text.length;
  i++;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c === 0x5c) {
      const e = text.charCodeAt(i + 1);
      if (e === 0x75) {
        // \uXXXX only for control characters without a short form: a lone surrogate is
        // not I-JSON (RFC 8785 refuses it) and everything else is written as is.
        if (text.charCodeAt(i + 2) !== 0x30 || text.charCodeAt(i + 3) !== 0x30) return -1;
        const h = text.charCodeAt(i + 4);
        const l = text.charCodeAt(i + 5);
        if ((h !== 0x30 && h !== 0x31) || !isLowerHex(l)) return -1;
        const u = (h - 0x30) * 16 + (l <= 0x39 ? l - 0x30 : l - 0x57);
        if (u === 0x08 || u === 0x09 || u === 0x0a || u === 0x0c || u === 0x0d) return -1;
        i += 6;
      } else if (
        e === 0x22 || // \"
        e === 0x5c || // \\
        e === 0x62 || // \b
        e === 0x74 || // \t
        e === 0x6e || // \n
        e === 0x66 || // \f
        e === 0x72 // \r
      ) {
        i += 2; // (\/ and the like are not canonical)
      } else {
        return -1;
      }
    } else if (c < 0x20) {
      return -1; // must be escaped
    } else if (c >= 0xd800 && c <= 0xdfff) {
      // Only a high surrogate followed by a low one: a lone surrogate is not I-JSON.
      const next = text.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return -1;
      i += 2;
    } else {
      i++;
    }
  }
  return -1;
}

/** Scans the number at `i`; returns the index after it, or -1 when it is not canonical. */
function scanNumber(text: string, i: number): number {
  const start = i;
  let c = text.charCodeAt(i);
  if (c === 0x2d) c = text.charCodeAt(++i);
  if (c === 0x30) {
    c = text.charCodeAt(++i);
  } else if (c >= 0x31 && c <= 0x39) {
    do c = text.charCodeAt(++i);
    while (isDigit(c));
  } else {
    return -1;
  }
  let plain = true;
  if (c === 0x2e) {
    plain = false;
    c = text.charCodeAt(++i);
    if (!isDigit(c)) return -1;
    do c = text.charCodeAt(++i);
    while (isDigit(c));
  }
  if (c === 0x65 || c === 0x45) {
    plain = false;
    c = text.charCodeAt(++i);
    if (c === 0x2b || c === 0x2d) c = text.charCodeAt(++i);
    if (!isDigit(c)) return -1;
    do c = text.charCodeAt(++i);
    while (isDigit(c));
  }
  const digits = i - start - (text.charCodeAt(start) === 0x2d ? 1 : 0);
  // A short integer is its own shortest form (except -0); anything else must round-trip
  // through ECMAScript's Number::toString (no "1.0", "1e2", "1E+21", "-0"…).
  if (plain && digits <= 15)
    return text.charCodeAt(start) === 0x2d && digits === 1 && text.charCodeAt(start + 1) === 0x30
      ? -1
      : i;
  const literal = text.slice(start, i);
  return String(Number(literal)) === literal ? i : -1;
}

/**
 * Whether the member name text[a..b) (quotes excluded) sorts strictly before
 * text[c..d) in UTF-16 order of the unescaped names.
 */
function nameBefore(text: string, a: number, b: number, c: number, d: number): boolean {
  const len = Math.min(b - a, d - c);
  for (let k = 0; k < len; k++) {
    const x = text.charCodeAt(a + k);
    const y = text.charCodeAt(c + k);
    if (x === 0x5c || y === 0x5c) {
      // An escape: compare the unescaped names.
      const p = JSON.parse(text.slice(a - 1, b + 1)) as string;
      const q = JSON.parse(text.slice(c - 1, d + 1)) as string;
      return p < q;
    }
    if (x !== y) return x < y;
  }
  return b - a < d - c;
}

/**
 * True when `text` is exactly the RFC 8785 serialization of the JSON value it denotes,
 * false when it is not (or not JSON), undefined when it nests deeper than this check
 * goes (ask the full canonicalizer).
 */
export function isCanonicalJsonText(text: string): boolean | undefined {
  const n = text.length;
  let i = 0;
  /** Per open container: 0 array, 1 object. */
  const kinds: number[] = [];
  /** Per open object: the previous member name's start and end (quotes excluded). */
  const names: number[] = [];
  for (;;) {
    // --- a value at i
    const c = text.charCodeAt(i);
    let opened = false;
    if (c === 0x22) {
      i = scanString(text, i);
      if (i < 0) return false;
    } else if (c === 0x7b || c === 0x5b) {
      i++;
      const close = c === 0x7b ? 0x7d : 0x5d;
      if (text.charCodeAt(i) === close) {
        i++;
      } else {
        if (kinds.length === MAX_DEPTH) return undefined;
        kinds.push(c === 0x7b ? 1 : 0);
        opened = true;
        if (c === 0x7b) {
          // The first member's name.
          if (text.charCodeAt(i) !== 0x22) return false;
          const end = scanString(text, i);
          if (end < 0 || text.charCodeAt(end) !== 0x3a) return false;
          names.push(i + 1, end - 1);
          i = end + 1;
        }
      }
    } else if (c === 0x74) {
      if (!text.startsWith("true", i)) return false;
      i += 4;
    } else if (c === 0x66) {
      if (!text.startsWith("false", i)) return false;
      i += 5;
    } else if (c === 0x6e) {
      if (!text.startsWith("null", i)) return false;
      i += 4;
    } else {
      i = scanNumber(text, i);
      if (i < 0) return false;
    }
    if (opened) continue;
    // --- after a value: close containers until one continues with a comma
    for (;;) {
      const depth = kinds.length;
      if (depth === 0) return i === n;
      const d = text.charCodeAt(i++);
      if (kinds[depth - 1] === 0) {
        if (d === 0x2c) break;
        if (d !== 0x5d) return false;
        kinds.pop();
        continue;
      }
      if (d === 0x7d) {
        kinds.pop();
        names.length -= 2;
        continue;
      }
      if (d !== 0x2c || text.charCodeAt(i) !== 0x22) return false;
      // The next member's name: strictly after the previous one (no duplicates).
      const end = scanString(text, i);
      if (end < 0 || text.charCodeAt(end) !== 0x3a) return false;
      const k = names.length;
      if (!nameBefore(text, names[k - 2] as number, names[k - 1] as number, i + 1, end - 1)) {
        return false;
      }
      names[k - 2] = i + 1;
      names[k - 1] = end - 1;
      i = end + 1;
      break;
    }
  }
}
