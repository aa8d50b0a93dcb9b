/**
 * Audit benchmark: the cost of the chain on the request path and of proving it.
 *   - append: store.appendAudit on a SQLite file (WAL, synchronous=FULL) —
 *     keyed (HMAC-SHA256, RFC 8785 body, what the edge does) against the same
 *     store unkeyed (sha256) as the baseline, round-robin; p50/p99 per append.
 *   - verify: `audit verify`'s code path (verifyStoreAudit: JSON parse, RFC 8785
 *     form check, HMAC, columns, key window, checkpoint comparison; records read
 *     and inspected by worker threads, placed in order here) over BENCH_RECORDS
 *     records (default 1,000,000; target ≤ 10 s), against a baseline that only
 *     reads the same rows, the same verifier on one thread, and — when
 *     `npm run build` has made dist/ — the release CLI's `audit verify` as a
 *     whole process.
 *
 *   npm run bench:audit          (node --import tsx test/bench/audit.bench.ts)
 *   BENCH_RECORDS=200000 npm run bench:audit
 */

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { verifyStoreAudit } from "../../edge/src/audit/chain.js";
import { auditKeyFromSecret } from "../../edge/src/audit/keys.js";
import { fillSqliteAuditChain, sampleAuditEntry } from "../../edge/src/store/contract.js";
import { createSqliteStore } from "../../edge/src/store/sqlite.js";

const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const APPENDS = Number(process.env.BENCH_APPENDS ?? 4000);
const TARGET_VERIFY_S = 10;

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "audit-bench-"));
  const key = auditKeyFromSecret(randomBytes(32));
  console.log(
    `load average before: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  try {
    // --- append latency, keyed vs unkeyed, round-robin in chunks of 100.
    const keyed = createSqliteStore({ path: join(dir, "keyed.db"), auditKey: key });
    const plain = createSqliteStore({ path: join(dir, "plain.db") });
    const times: Record<string, number[]> = { keyed: [], unkeyed: [] };
    const entry = sampleAuditEntry({
      params: { command: "git", args: ["status", "--short"], env: { HOME: "[redacted]" } },
      details: { protocol: "connect", source: "127.0.0.1" },
    });
    for (let i = 0; i < APPENDS; i += 100) {
      for (const [name, store] of [
        ["keyed", keyed],
        ["unkeyed", plain],
      ] as const) {
        for (let j = 0; j < 100; j++) {
          const t = performance.now();
          await store.appendAudit({ ...entry, time: Date.now() });
          times[name]?.push(performance.now() - t);
        }
      }
    }
    await keyed.close();
    await plain.close();
    const row = (name: string) => {
      const s = [...(times[name] ?? [])].sort((a, b) => a - b);
      return { name, p50: pct(s, 50), p99: pct(s, 99) };
    };
    const k = row("keyed");
    const u = row("unkeyed");
    console.log(`\nappend (${APPENDS} each, SQLite synchronous=FULL):`);
    for (const r of [k, u]) {
      console.log(`  ${r.name.padEnd(8)} p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms`);
    }
    console.log(`  keyed/unkeyed p99 ratio ${(k.p99 / u.p99).toFixed(2)}`);

    // --- verify throughput over RECORDS rows written straight into a SQLite file.
    // Laid out as an edge's data directory, so the release CLI can verify it too.
    const dataDir = join(dir, "data");
    const path = join(dataDir, "gateway.db");
    const t0 = performance.now();
    fillSqliteAuditChain(path, RECORDS, key, (i) => ({
      ...entry,
      time: 1_700_000_000_000 + i,
      operation: i % 3 ? "execute" : "read_file",
    }));
    console.log(
      `\nwrote ${RECORDS} records in ${((performance.now() - t0) / 1000).toFixed(1)} s (seal + insert)`,
    );

    const store = createSqliteStore({ path, auditKey: key });
    const t = performance.now();
    let n = 0;
    for (const _ of store.rawAudit()) n++;
    const readS = (performance.now() - t) / 1000;
    // audit verify's path: the store's async rows, records inspected on worker threads
    // (the default), against the same verifier on one thread, round-robin, best of 2.
    const verifyOnce = async (threads: number | undefined) => {
      const t0 = performance.now();
      const verdict = await verifyStoreAudit(store, {
        keys: [key],
        onRecord: (seq) => (seq === -1 ? "never" : undefined),
        ...(threads === undefined ? {} : { threads }),
      });
      if (!verdict.ok || verdict.checked !== RECORDS) throw new Error(JSON.stringify(verdict));
      return (performance.now() - t0) / 1000;
    };
    // The release CLI (`npm run build`), as an operator runs it: process start included.
    const cli = join(import.meta.dirname, "..", "..", "dist", "mcp-gateway.mjs");
    const keyFile = join(dataDir, "audit.key");
    await writeFile(keyFile, `${key.secret.toString("base64")}\n`, { mode: 0o600 });
    const cliOnce = () => {
      const t0 = performance.now();
      const r = spawnSync(
        process.execPath,
        [cli, "audit", "verify", "--data-dir", dataDir, "--audit-key-file", keyFile],
        { encoding: "utf8" },
      );
      if (r.status !== 0 || !r.stdout.includes(`intact: ${RECORDS} records`)) {
        throw new Error(`audit verify: ${r.status} ${r.stdout} ${r.stderr}`);
      }
      return (performance.now() - t0) / 1000;
    };
    let oneS = Number.POSITIVE_INFINITY;
    let verifyS = Number.POSITIVE_INFINITY;
    let cliS = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 2; round++) {
      oneS = Math.min(oneS, await verifyOnce(0));
      verifyS = Math.min(verifyS, await verifyOnce(undefined));
      if (existsSync(cli)) cliS = Math.min(cliS, cliOnce());
    }
    await store.close();
    console.log(`verify ${RECORDS} records (audit verify's code path, best of 2):`);
    console.log(
      `  read rows only (baseline) ${readS.toFixed(2)} s  (${Math.round(n / readS)} rows/s)`,
    );
    console.log(
      `  one thread                ${oneS.toFixed(2)} s  (${Math.round(RECORDS / oneS)} records/s), ratio to baseline ${(oneS / readS).toFixed(2)}`,
    );
    console.log(
      `  workers (${availableParallelism()} cores)       ${verifyS.toFixed(2)} s  (${Math.round(RECORDS / verifyS)} records/s), ratio to baseline ${(verifyS / readS).toFixed(2)}, to one thread ${(verifyS / oneS).toFixed(2)}`,
    );
    console.log(
      existsSync(cli)
        ? `  release CLI audit verify  ${cliS.toFixed(2)} s  (whole process: ${Math.round(RECORDS / cliS)} records/s)`
        : "  release CLI audit verify  not measured: run npm run build first",
    );
    const scaled = (Math.min(verifyS, cliS) * 1_000_000) / RECORDS;
    console.log(
      `  1,000,000 records: ${scaled.toFixed(2)} s — target ≤ ${TARGET_VERIFY_S} s: ${scaled <= TARGET_VERIFY_S ? "met" : "MISSED"}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
    console.log(
      `load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
  }
}

await main();
