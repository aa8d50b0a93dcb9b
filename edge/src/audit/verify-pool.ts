/**
 * Worker threads for `audit verify` on long chains (issue 18: 1,000,000 records in
 * ≤ 10 s). What a record says on its own — JSON, RFC 8785 form, key and window, HMAC,
 * indexed columns ({@link inspectAuditRecord}) — is independent of every other record,
 * so workers inspect batches while the calling thread places the answers in order in the
 * chain (sequence, links, keyed-after-keyed, checkpoints), exactly as the one-thread
 * verifier does. Rows reach a worker one of two ways: handed over in batches (any
 * store), or read by the worker itself by sequence range (a SQLite file), which leaves
 * the calling thread almost idle.
 */
import { Worker } from "node:worker_threads";
import type { AuditRangeSource, RawAuditRow } from "../store/types.js";
import type { RecordInspection } from "./chain.js";
import type { AuditKey } from "./keys.js";

/** A key as handed to a worker (structured clone turns Buffers into Uint8Arrays). */
export interface WorkerKey {
  id: string;
  secret: Uint8Array;
  validUntilSeq?: number;
  validUntil?: number;
}

/** What a worker starts with. */
export interface WorkerSetup {
  keys: WorkerKey[];
  source: AuditRangeSource | null;
}

/**
 * One job: rows handed over column-wise (flat arrays clone far faster than row
 * objects), or a sequence range the worker reads from the source itself.
 */
export type BatchRequest =
  | {
      id: number;
      kind: "rows";
      seq: Float64Array;
      prevHash: string[];
      hash: string[];
      body: string[];
      /** The indexed columns, when the store keeps them (all rows or none). */
      columns: {
        time: Float64Array;
        principal: string[];
        tenant: string[];
        operation: string[];
        decision: string[];
      } | null;
    }
  | { id: number; kind: "range"; from: number | null; to: number };

/** A worker's answer for one job. */
export interface BatchResult {
  id: number;
  /** Rows inspected (up to and including a failed one). */
  n: number;
  /** Per row: index of the signing key in the pool's key list, -1 unkeyed. */
  keyIdx: Int32Array;
  /** The first row that failed on its own. */
  fail?: { index: number; early?: string; late?: string };
  /** Range jobs: each row's position in the chain (the caller has no rows of its own). */
  links?: { seq: Float64Array; prevHash: string[]; hash: string[] };
  /** The worker could not do the job (e.g. the database did not open). */
  error?: string;
}

/** Places one inspected record in the chain; false once the chain is broken. */
export type Placer = (
  seq: number,
  prevHash: string,
  hash: string,
  inspection: RecordInspection,
) => boolean;

/** See {@link createVerifyPool}. */
export interface VerifyPool {
  /** Hands a batch of rows to a worker; see {@link VerifyPool.submitRange}. */
  submitRows(rows: RawAuditRow[], place: Placer): Promise<boolean>;
  /**
   * Has a worker read and inspect the rows with from ≤ seq ≤ to (no lower bound when
   * from is null); places every job
   * already answered, in order, and waits while too many are out. False once a placed
   * record broke the chain.
   */
  submitRange(from: number | null, to: number, place: Placer): Promise<boolean>;
  /** Waits for and places every job still out. */
  drain(place: Placer): Promise<boolean>;
  /** Stops the workers. */
  close(): Promise<void>;
}

/** Packs rows into a rows job. */
export function packRows(id: number, rows: readonly RawAuditRow[]): BatchRequest {
  const n = rows.length;
  const seq = new Float64Array(n);
  const prevHash: string[] = new Array(n);
  const hash: string[] = new Array(n);
  const body: string[] = new Array(n);
  const columns = rows.every((r) => r.columns !== undefined)
    ? {
        time: new Float64Array(n),
        principal: new Array<string>(n),
        tenant: new Array<string>(n),
        operation: new Array<string>(n),
        decision: new Array<string>(n),
      }
    : null;
  for (let i = 0; i < n; i++) {
    const r = rows[i] as RawAuditRow;
    seq[i] = r.seq;
    prevHash[i] = r.prevHash;
    hash[i] = r.hash;
    body[i] = r.body;
    if (columns && r.columns) {
      columns.time[i] = r.columns.time;
      columns.principal[i] = r.columns.principal;
      columns.tenant[i] = r.columns.tenant;
      columns.operation[i] = r.columns.operation;
      columns.decision[i] = r.columns.decision;
    }
  }
  return { id, kind: "rows", seq, prevHash, hash, body, columns };
}

/** Row `i` of a rows job. */
export function unpackRow(b: Extract<BatchRequest, { kind: "rows" }>, i: number): RawAuditRow {
  const c = b.columns;
  return {
    seq: b.seq[i] as number,
    prevHash: b.prevHash[i] as string,
    hash: b.hash[i] as string,
    body: b.body[i] as string,
    ...(c
      ? {
          columns: {
            time: c.time[i] as number,
            principal: c.principal[i] as string,
            tenant: c.tenant[i] as string,
            operation: c.operation[i] as string,
            decision: c.decision[i] as string,
          },
        }
      : {}),
  };
}

/** Set by the release bundle: its worker entry, relative to this file's location. */
declare const __MCPG_AUDIT_VERIFY_WORKER__: string | undefined;

/** Starts one worker: the bundle's entry, or (development) this directory's TypeScript under tsx. */
function startWorker(workerData: WorkerSetup): Worker {
  if (typeof __MCPG_AUDIT_VERIFY_WORKER__ === "string") {
    return new Worker(new URL(__MCPG_AUDIT_VERIFY_WORKER__, import.meta.url), { workerData });
  }
  // A worker does not inherit the `--import tsx` hooks: register them (tsx resolved from
  // here, not from the working directory), then load the source.
  const tsx = import.meta.resolve("tsx/esm/api");
  const source = new URL("./verify-worker.ts", import.meta.url).href;
  return new Worker(
    `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); });`,
    { eval: true, workerData },
  );
}

/** Jobs out per worker before a submit waits (keeps memory bounded). */
const OUT_PER_WORKER = 2;

interface Out {
  rows?: RawAuditRow[];
  result?: BatchResult;
  settled: Promise<void>;
}

/**
 * Starts `threads` workers (at least one) that inspect with `keys`, reading ranges
 * from `source` when given.
 */
export function createVerifyPool(
  keys: readonly AuditKey[],
  threads: number,
  source?: AuditRangeSource,
): VerifyPool {
  const setup: WorkerSetup = {
    keys: keys.map((k) => ({
      id: k.id,
      secret: new Uint8Array(k.secret),
      ...(k.validUntilSeq !== undefined ? { validUntilSeq: k.validUntilSeq } : {}),
      ...(k.validUntil !== undefined ? { validUntil: k.validUntil } : {}),
    })),
    source: source ?? null,
  };
  const waiting = new Map<number, (r: BatchResult) => void>();
  let closing = false;
  /** Why the pool cannot answer any more (a worker died): later jobs fail at once. */
  let broken: string | undefined;
  const workers = Array.from({ length: Math.max(1, threads) }, () => {
    const w = startWorker(setup);
    w.on("message", (r: BatchResult) => {
      waiting.get(r.id)?.(r);
      waiting.delete(r.id);
    });
    const failAll = (why: string) => {
      broken ??= why;
      for (const [id, settle] of waiting) {
        settle({ id, n: 0, keyIdx: new Int32Array(0), error: why });
      }
      waiting.clear();
    };
    w.on("error", (err) => failAll(err.message));
    w.on("exit", (code) => {
      if (!closing) failAll(`worker exited (code ${code})`);
    });
    return w;
  });
  const out: Out[] = [];
  let nextId = 0;

  /** Places the oldest job's records (waiting for its answer); false when the chain broke. */
  const placeHead = async (place: Placer): Promise<boolean> => {
    const head = out.shift();
    if (!head) return true;
    await head.settled;
    const r = head.result as BatchResult;
    if (r.error !== undefined) throw new Error(`audit verify worker failed: ${r.error}`);
    for (let i = 0; i < r.n; i++) {
      const idx = r.keyIdx[i] ?? -1;
      const keyId = idx >= 0 ? (keys[idx]?.id ?? null) : null;
      const failed = r.fail?.index === i ? r.fail : undefined;
      const inspection: RecordInspection = failed
        ? {
            keyId,
            ...(failed.early !== undefined ? { early: failed.early } : {}),
            ...(failed.late !== undefined ? { late: failed.late } : {}),
          }
        : { keyId };
      const ok = r.links
        ? place(
            r.links.seq[i] as number,
            r.links.prevHash[i] as string,
            r.links.hash[i] as string,
            inspection,
          )
        : (() => {
            const row = head.rows?.[i] as RawAuditRow;
            return place(row.seq, row.prevHash, row.hash, inspection);
          })();
      if (!ok || failed) return false;
    }
    return true;
  };

  const submit = async (req: BatchRequest, rows: RawAuditRow[] | undefined, place: Placer) => {
    const entry: Out = { ...(rows ? { rows } : {}), settled: Promise.resolve() };
    entry.settled = new Promise<void>((resolve) => {
      waiting.set(req.id, (r) => {
        entry.result = r;
        resolve();
      });
    });
    if (broken !== undefined) {
      waiting.get(req.id)?.({ id: req.id, n: 0, keyIdx: new Int32Array(0), error: broken });
      waiting.delete(req.id);
      out.push(entry);
      return placeHeadsUntilFailure(place);
    }
    const worker = workers[req.id % workers.length] as Worker;
    if (req.kind === "rows") {
      const transfer: ArrayBuffer[] = [req.seq.buffer as ArrayBuffer];
      if (req.columns) transfer.push(req.columns.time.buffer as ArrayBuffer);
      worker.postMessage(req, transfer);
    } else {
      worker.postMessage(req);
    }
    out.push(entry);
    // Place what has come back; wait only while too many jobs are out.
    while (out.length > 0) {
      const first = out[0] as Out;
      if (first.result === undefined && out.length <= OUT_PER_WORKER * workers.length) break;
      if (!(await placeHead(place))) return false;
    }
    return true;
  };

  /** Places every job out, in order (the pool is broken: the first failed job throws). */
  const placeHeadsUntilFailure = async (place: Placer) => {
    while (out.length > 0) if (!(await placeHead(place))) return false;
    return true;
  };

  return {
    submitRows: (rows, place) => submit(packRows(nextId++, rows), rows, place),
    submitRange: (from, to, place) =>
      submit({ id: nextId++, kind: "range", from, to }, undefined, place),
    async drain(place) {
      while (out.length > 0) if (!(await placeHead(place))) return false;
      return true;
    },
    async close() {
      closing = true;
      out.length = 0;
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
