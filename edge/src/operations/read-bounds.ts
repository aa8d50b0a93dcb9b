import { Code, ConnectError } from "@connectrpc/connect";
import { principalKey } from "../rate-limit/keys.js";
import type { OutputChunk, PrincipalRecord, TaskStore } from "../store/types.js";

/** Options for {@link createReadBounds}. */
export interface ReadBoundsOptions {
  /** Issuer of the principals (part of every budget key). */
  issuer: string;
  /** Bytes of responses a principal may read per second, sustained. */
  bytesPerSecond: number;
  /** Bytes a principal may read at once; a new principal starts with this much. */
  burstBytes: number;
  /** Most concurrent output followers (StreamTaskOutput, MCP run) of one task on this edge. */
  followersPerTask: number;
  /** Most concurrent output followers of one principal on this edge. */
  followersPerPrincipal: number;
  /** Most principals whose budgets are tracked (least recently used are forgotten). */
  maxKeys?: number;
  /** Clock in ms (default performance.now); injectable for tests. */
  now?: () => number;
}

/** Byte budgets and follower bounds of the read operations. */
export interface ReadBounds {
  /**
   * Refuses (ResourceExhausted, with retry-after) when the principal's byte
   * budget is spent; call before a read.
   */
  check(principal: PrincipalRecord): void;
  /** Spends `bytes` of the principal's budget (may go into debt: the next calls wait). */
  spend(principal: PrincipalRecord, bytes: number): void;
  /** Waits until the principal's budget is positive again, or `signal` aborts (for streams). */
  pace(principal: PrincipalRecord, signal: AbortSignal): Promise<void>;
  /**
   * Registers a follower of `taskId`; returns its release function.
   * @throws ConnectError ResourceExhausted naming the bound that is reached.
   */
  follow(principal: PrincipalRecord, taskId: string): () => void;
}

interface Budget {
  tokens: number;
  at: number;
}

/**
 * Reads priced by bytes, not only by calls (issue 21, finding 5): a byte
 * budget per principal (token bucket in bytes that may go into debt, so one
 * large response is allowed and paid for afterwards) next to the call-count
 * rate limit, and bounds on concurrent followers per task and per principal.
 *
 * @example
 * const bounds = createReadBounds({ issuer, bytesPerSecond: 8 << 20, burstBytes: 64 << 20, followersPerTask: 32, followersPerPrincipal: 16 });
 * bounds.check(p); const res = await read(); bounds.spend(p, res.byteLength);
 */
export function createReadBounds(options: ReadBoundsOptions): ReadBounds {
  const now = options.now ?? (() => performance.now());
  const perMs = options.bytesPerSecond / 1000;
  const maxKeys = options.maxKeys ?? 100_000;
  const budgets = new Map<string, Budget>();
  const perTask = new Map<string, number>();
  const perPrincipal = new Map<string, number>();

  function budget(key: string): Budget {
    const t = now();
    let b = budgets.get(key);
    if (!b) {
      if (budgets.size >= maxKeys) {
        const oldest = budgets.keys().next().value;
        if (oldest !== undefined) budgets.delete(oldest);
      }
      b = { tokens: options.burstBytes, at: t };
    } else {
      budgets.delete(key); // re-inserted below: Map order is the LRU order
      b.tokens = Math.min(options.burstBytes, b.tokens + Math.max(0, t - b.at) * perMs);
      b.at = t;
    }
    budgets.set(key, b);
    return b;
  }
  const waitMs = (b: Budget) => (b.tokens > 0 ? 0 : Math.ceil((1 - b.tokens) / perMs));
  const keyOf = (p: PrincipalRecord) => principalKey(options.issuer, p);
  const bump = (m: Map<string, number>, k: string, d: number) => {
    const n = (m.get(k) ?? 0) + d;
    if (n <= 0) m.delete(k);
    else m.set(k, n);
  };

  return {
    check(principal) {
      const wait = waitMs(budget(keyOf(principal)));
      if (wait > 0) {
        const seconds = Math.max(1, Math.ceil(wait / 1000));
        throw new ConnectError(
          `read budget of ${options.bytesPerSecond} bytes/s exceeded for ${principal.sub}; retry in ${seconds}s`,
          Code.ResourceExhausted,
          { "retry-after": String(seconds) },
        );
      }
    },
    spend(principal, bytes) {
      budget(keyOf(principal)).tokens -= bytes;
    },
    async pace(principal, signal) {
      for (;;) {
        const wait = waitMs(budget(keyOf(principal)));
        if (wait === 0 || signal.aborted) return;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(wait, 1000));
          signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    follow(principal, taskId) {
      const key = keyOf(principal);
      if ((perTask.get(taskId) ?? 0) >= options.followersPerTask) {
        throw new ConnectError(
          `task ${taskId} already has ${options.followersPerTask} followers on this edge, its limit; poll GetTaskStatus or retry later`,
          Code.ResourceExhausted,
          { "retry-after": "5" },
        );
      }
      if ((perPrincipal.get(key) ?? 0) >= options.followersPerPrincipal) {
        throw new ConnectError(
          `${principal.sub} already follows ${options.followersPerPrincipal} task outputs on this edge, the limit`,
          Code.ResourceExhausted,
          { "retry-after": "5" },
        );
      }
      bump(perTask, taskId, 1);
      bump(perPrincipal, key, 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        bump(perTask, taskId, -1);
        bump(perPrincipal, key, -1);
      };
    },
  };
}

/** The last bytes of each output stream of a task, as {@link readOutputTail} returns them. */
export interface OutputTail {
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** True when earlier output of that stream exists that is not in the tail. */
  stdoutCut: boolean;
  stderrCut: boolean;
}

/** Chunks read per store query while walking backwards: doubling from the first to the last. */
const FIRST_WINDOW = 4;
const MAX_WINDOW = 64;

/** Highest stored seq of finished tasks (it never changes again), most recent last. */
const lastSeqOf = new Map<string, number>();
const LAST_SEQ_ENTRIES = 4096;

/**
 * The last `maxBytes` of stdout and of stderr of a task, read from the end
 * (issue 21, finding 5): the highest stored seq is found by exponential and
 * binary search (seq may skip numbers), then windows are read backwards until
 * both tails are full or `4 × maxBytes` were scanned — never the whole output.
 *
 * @example
 * const tail = await readOutputTail(store, taskId, 64 * 1024);
 */
export async function readOutputTail(
  store: Pick<TaskStore, "readOutput">,
  taskId: string,
  maxBytes: number,
  finished = false,
): Promise<OutputTail> {
  const hi = (finished ? lastSeqOf.get(taskId) : undefined) ?? (await lastSeq(store, taskId));
  if (finished) {
    lastSeqOf.delete(taskId);
    lastSeqOf.set(taskId, hi);
    if (lastSeqOf.size > LAST_SEQ_ENTRIES) {
      const oldest = lastSeqOf.keys().next().value;
      if (oldest !== undefined) lastSeqOf.delete(oldest);
    }
  }
  const parts: Record<"stdout" | "stderr", Uint8Array[]> = { stdout: [], stderr: [] };
  const bytes = { stdout: 0, stderr: 0 };
  const cut = { stdout: false, stderr: false };
  let scanned = 0;
  let window = FIRST_WINDOW;
  let end = hi; // chunks with seq <= end are still to read
  while (end > 0) {
    const start = Math.max(0, end - window);
    const chunks: OutputChunk[] = (await store.readOutput(taskId, start, window)).filter(
      (c) => c.seq <= end,
    );
    window = Math.min(MAX_WINDOW, window * 2);
    for (let i = chunks.length - 1; i >= 0; i--) {
      const c = chunks[i];
      if (!c || c.kind === "event") continue;
      scanned += c.data.byteLength;
      const room = maxBytes - bytes[c.kind];
      if (room <= 0) {
        cut[c.kind] = true;
        continue;
      }
      const piece = c.data.byteLength > room ? c.data.subarray(c.data.byteLength - room) : c.data;
      if (piece.byteLength < c.data.byteLength) cut[c.kind] = true;
      parts[c.kind].unshift(piece);
      bytes[c.kind] += piece.byteLength;
    }
    end = start;
    const full = bytes.stdout >= maxBytes && bytes.stderr >= maxBytes;
    if (end > 0 && (full || scanned >= 4 * maxBytes)) {
      // Older output is not looked at: neither tail can claim to be the whole stream.
      cut.stdout = true;
      cut.stderr = true;
      break;
    }
  }
  return {
    stdout: Buffer.concat(parts.stdout),
    stderr: Buffer.concat(parts.stderr),
    stdoutCut: cut.stdout,
    stderrCut: cut.stderr,
  };
}

/**
 * The highest stored seq of a task (0 when none): the smallest `after` with
 * nothing stored beyond it, by exponential then binary search — seq may skip.
 */
async function lastSeq(store: Pick<TaskStore, "readOutput">, taskId: string): Promise<number> {
  const exists = async (after: number) => (await store.readOutput(taskId, after, 1)).length > 0;
  if (!(await exists(0))) return 0;
  let hi = 1;
  while (await exists(hi)) hi *= 2;
  let lo = Math.floor(hi / 2);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await exists(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}
