// Small pure helpers of the console (no DOM), unit-tested under Node.

/** A command line split into the program and its arguments. */
export interface CommandLine {
  command: string;
  args: string[];
}

/**
 * Splits a command line into words the way a POSIX shell would quote them —
 * single quotes, double quotes, backslash escapes — but without expansion,
 * globbing, pipes or redirections (the gateway runs an argv, never a shell;
 * `sh -c '…'` asks for one explicitly). Throws on an unterminated quote.
 *
 * @example
 * splitCommandLine(`sh -c 'echo "a b"'`) // { command: "sh", args: ["-c", 'echo "a b"'] }
 */
export function splitCommandLine(line: string): CommandLine {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | "" = "";
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quote === "'") {
      if (ch === "'") quote = "";
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = "";
      else if (ch === "\\" && i + 1 < line.length && '"\\$`'.includes(line[i + 1] as string)) {
        word += line[++i];
      } else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote !== "") throw new Error(`unterminated ${quote === "'" ? "single" : "double"} quote`);
  if (inWord) words.push(word);
  const [command = "", ...args] = words;
  return { command, args };
}

/** Quotes one word for display so that {@link splitCommandLine} gives it back. */
export function quoteWord(word: string): string {
  if (word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A command and its arguments as one line a person can read (and paste back). */
export function formatCommandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map(quoteWord).join(" ");
}

/** Bytes as "512 B", "1.5 KiB", "12 MiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Milliseconds as "850 ms", "3.2 s", "2 min 5 s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** The claims a console shows about its user (decoded for display only: the edge verifies). */
export interface TokenClaims {
  sub: string;
  roles: string[];
  tenant: string;
  /** Expiry, ms since the epoch; undefined when the token has none. */
  expiresAt: number | undefined;
}

function base64UrlDecode(s: string): string {
  const b64 = s.replaceAll("-", "+").replaceAll("_", "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/**
 * Reads a JWT's claims without verifying it (the console only shows them; the
 * edge verifies every call). Throws a readable error when the text is not a JWT.
 */
export function readClaims(token: string): TokenClaims {
  const parts = token.trim().split(".");
  if (parts.length !== 3)
    throw new Error("This is not an access token (expected a JWT: three parts separated by dots).");
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(base64UrlDecode(parts[1] as string)) as Record<string, unknown>;
  } catch {
    throw new Error("This is not an access token (its payload cannot be read).");
  }
  const roles = Array.isArray(payload.roles)
    ? payload.roles.filter((r) => typeof r === "string")
    : [];
  return {
    sub: typeof payload.sub === "string" ? payload.sub : "",
    roles,
    tenant: typeof payload.tenant === "string" ? payload.tenant : "",
    expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : undefined,
  };
}

/** One audit event's place in the chain, as ListAuditEvents returns it. */
export interface ChainLink {
  seq: bigint;
  hash: string;
  prevHash: string;
}

/** What the browser can check of the audit chain without the key. */
export interface LinkCheck {
  /** Adjacent pairs (seq n, n+1) in the listing whose prev_hash matched. */
  consistent: number;
  /** Sequence numbers whose prev_hash does not match the previous record's hash. */
  broken: bigint[];
  /** Gaps in the listing (filters, other tenants): pairs that cannot be compared here. */
  gaps: number;
}

/**
 * Checks the hash links between consecutive records of a listing: record n+1
 * must name record n's hash as its prev_hash. The HMAC of each record needs
 * the audit key, which never leaves the edge host (`mcp-gateway audit verify`).
 */
export function checkLinks(events: readonly ChainLink[]): LinkCheck {
  const result: LinkCheck = { consistent: 0, broken: [], gaps: 0 };
  for (let i = 1; i < events.length; i++) {
    const prev = events[i - 1] as ChainLink;
    const cur = events[i] as ChainLink;
    if (cur.seq !== prev.seq + 1n) result.gaps++;
    else if (cur.prevHash === prev.hash) result.consistent++;
    else result.broken.push(cur.seq);
  }
  return result;
}
