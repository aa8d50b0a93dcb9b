/**
 * Worker thread of `audit verify` (see verify-pool.ts): inspects jobs of audit rows —
 * JSON, canonical form, key window, HMAC, indexed columns — handed over or read from the
 * store by sequence range, and answers per row the index of the key that signed it (-1:
 * unkeyed) and the first row that failed on its own, if any.
 */
import { parentPort, workerData } from "node:worker_threads";
import { openAuditRangeReader } from "../store/sqlite.js";
import type { RawAuditRow } from "../store/types.js";
import { inspectAuditRecord } from "./chain.js";
import type { AuditKey } from "./keys.js";
import { type BatchRequest, type BatchResult, unpackRow, type WorkerSetup } from "./verify-pool.js";

const setup = workerData as WorkerSetup;
const keys = new Map<string, AuditKey>(
  setup.keys.map((k) => [k.id, { ...k, secret: Buffer.from(k.secret) }]),
);
const indexOf = new Map(setup.keys.map((k, i) => [k.id, i]));
let reader: ReturnType<typeof openAuditRangeReader> | undefined;

function inspect(id: number, count: number, row: (i: number) => RawAuditRow): BatchResult {
  const keyIdx = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const r = inspectAuditRecord(row(i), keys);
    keyIdx[i] = r.keyId === null ? -1 : (indexOf.get(r.keyId) ?? -1);
    if (r.early !== undefined || r.late !== undefined) {
      const fail = {
        index: i,
        ...(r.early !== undefined ? { early: r.early } : {}),
        ...(r.late !== undefined ? { late: r.late } : {}),
      };
      return { id, n: i + 1, keyIdx, fail };
    }
  }
  return { id, n: count, keyIdx };
}

parentPort?.on("message", (req: BatchRequest) => {
  let result: BatchResult;
  try {
    if (req.kind === "rows") {
      result = inspect(req.id, req.seq.length, (i) => unpackRow(req, i));
    } else {
      if (!setup.source) throw new Error("no range source");
      reader ??= openAuditRangeReader(setup.source.sqlite);
      const rows = reader.read(req.from, req.to);
      result = inspect(req.id, rows.length, (i) => rows[i] as RawAuditRow);
      const n = result.n;
      const seq = new Float64Array(n);
      const prevHash: string[] = new Array(n);
      const hash: string[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const row = rows[i] as RawAuditRow;
        seq[i] = row.seq;
        prevHash[i] = row.prevHash;
        hash[i] = row.hash;
      }
      result.links = { seq, prevHash, hash };
    }
  } catch (err) {
    result = { id: req.id, n: 0, keyIdx: new Int32Array(0), error: (err as Error).message };
  }
  const transfer: ArrayBuffer[] = [result.keyIdx.buffer as ArrayBuffer];
  if (result.links) transfer.push(result.links.seq.buffer as ArrayBuffer);
  parentPort?.postMessage(result, transfer);
});
