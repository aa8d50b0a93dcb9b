import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { fillSqliteAuditChain, sampleAuditEntry } from "../store/contract.js";
import { createSqliteStore } from "../store/sqlite.js";
import {
  type ChainVerdict,
  chainHash,
  type VerifyOptions,
  verifyAuditChain,
  verifyAuditRows,
  verifyStoreAudit,
} from "./chain.js";
import { type AuditKey, auditKeyFromSecret } from "./keys.js";

/** More than a few jobs of 4,096 rows, so workers answer out of order and ranges split. */
const N = 13_000;

describe("audit verify on worker threads gives the one-thread verdict", () => {
  let dir: string;
  let base: string;
  let key: AuditKey;
  let head: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "verify-pool-"));
    base = join(dir, "base.db");
    key = auditKeyFromSecret(randomBytes(32));
    head =
      fillSqliteAuditChain(base, N, key, (i) =>
        sampleAuditEntry({ time: 1_700_000_000_000 + i, operation: `op${i % 7}` }),
      )?.hash ?? "";
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of the chain with `tamper` applied to its database. */
  let copies = 0;
  const variant = (tamper: (db: Database.Database) => void) => {
    const path = join(dir, `v${copies++}.db`);
    copyFileSync(base, path);
    const db = new Database(path);
    tamper(db);
    db.close();
    return path;
  };

  /** The three ways, which must agree: one thread, rows handed to workers, ranges read by workers. */
  const verdicts = async (path: string, options: VerifyOptions) => {
    const store = createSqliteStore({ path });
    try {
      const one = verifyAuditChain(store.rawAudit(), options);
      const rows = await verifyAuditRows(store.auditRows(), {
        ...options,
        threads: 2,
        parallelAfter: 0,
      });
      const ranges = await verifyStoreAudit(store, { ...options, threads: 2, parallelAfter: 0 });
      assert.deepEqual(rows, one, "rows on workers");
      assert.deepEqual(ranges, one, "ranges read by workers");
      return one;
    } finally {
      await store.close();
    }
  };

  const broken = (v: ChainVerdict, seq: number, reason: RegExp) => {
    assert.equal(v.ok, false, JSON.stringify(v));
    assert.equal(v.firstBad?.seq, seq, JSON.stringify(v.firstBad));
    assert.match(v.firstBad?.reason ?? "", reason);
  };

  it("an intact chain", async () => {
    const v = await verdicts(base, { keys: [key], expectHead: head });
    assert.equal(v.ok, true);
    assert.equal(v.checked, N);
    assert.equal(v.head, head);
  });

  it("a modified record", async () => {
    const path = variant((db) =>
      db.prepare("UPDATE audit SET body = replace(body, 'allow', 'deny') WHERE seq = 9001").run(),
    );
    broken(await verdicts(path, { keys: [key] }), 9001, /record modified/);
  });

  it("a deleted record, and a tail removed before the anchored head", async () => {
    broken(
      await verdicts(
        variant((db) => db.prepare("DELETE FROM audit WHERE seq = 5000").run()),
        {
          keys: [key],
        },
      ),
      5001,
      /sequence jumps from 4999 to 5001/,
    );
    broken(
      await verdicts(
        variant((db) => db.prepare(`DELETE FROM audit WHERE seq > ${N - 100}`).run()),
        { keys: [key], expectHead: head },
      ),
      N - 99,
      /tail removed/,
    );
  });

  it("rows stored outside the chain's range: below its start and far past its end", async () => {
    const copyOf = (seq: number, from: number) =>
      `INSERT INTO audit (seq, time, principal, tenant, operation, decision, prev_hash, hash, body)
       SELECT ${seq}, time, principal, tenant, operation, decision, prev_hash, hash, body FROM audit WHERE seq = ${from}`;
    broken(
      await verdicts(
        variant((db) => db.prepare(copyOf(0, 1)).run()),
        { keys: [key] },
      ),
      0,
      /sequence jumps from 0 to 0/,
    );
    // The ranges stop at the first gap instead of walking a trillion empty ones.
    broken(
      await verdicts(
        variant((db) => db.prepare(copyOf(1e12, 5)).run()),
        { keys: [key] },
      ),
      1e12,
      /sequence jumps/,
    );
  });

  it("a row stored far below the chain, and a body stored as a blob: verdicts, not exceptions", async () => {
    const copyOf = (seq: bigint, from: number) =>
      `INSERT INTO audit (seq, time, principal, tenant, operation, decision, prev_hash, hash, body)
       SELECT ${seq}, time, principal, tenant, operation, decision, prev_hash, hash, body FROM audit WHERE seq = ${from}`;
    const low = await verdicts(
      variant((db) => db.prepare(copyOf(-(2n ** 62n), 1)).run()),
      { keys: [key] },
    );
    assert.equal(low.ok, false, "a row at seq -2^62 is found");
    assert.match(low.firstBad?.reason ?? "", /sequence jumps/);
    broken(
      await verdicts(
        variant((db) =>
          db.prepare("UPDATE audit SET body = CAST(body AS BLOB) WHERE seq = 7001").run(),
        ),
        { keys: [key] },
      ),
      7001,
      /not text/,
    );
  });

  it("a tail rewritten without the key, indexed columns changed, a non-canonical body signed", async () => {
    const rewritten = variant((db) => {
      const rows = db
        .prepare("SELECT seq, prev_hash, body FROM audit WHERE seq >= 7000 ORDER BY seq")
        .all() as { seq: number; prev_hash: string; body: string }[];
      const update = db.prepare("UPDATE audit SET prev_hash = ?, hash = ?, body = ? WHERE seq = ?");
      let prevHash = rows[0]?.prev_hash ?? "";
      for (const r of rows) {
        const body = JSON.stringify({ ...JSON.parse(r.body), keyId: undefined, prevHash });
        const hash = createHash("sha256").update(prevHash).update("\n").update(body).digest("hex");
        update.run(prevHash, hash, body, r.seq);
        prevHash = hash;
      }
    });
    const v = await verdicts(rewritten, { keys: [key] });
    assert.equal(v.ok, false);
    assert.equal(v.firstBad?.seq, 7000, JSON.stringify(v.firstBad));

    broken(
      await verdicts(
        variant((db) =>
          db.prepare("UPDATE audit SET principal = 'mallory' WHERE seq = 3000").run(),
        ),
        { keys: [key] },
      ),
      3000,
      /indexed columns \(principal\)/,
    );

    const spaced = variant((db) => {
      const r = db.prepare("SELECT prev_hash, body FROM audit WHERE seq = 6000").get() as {
        prev_hash: string;
        body: string;
      };
      const body = r.body.replace('"decision":', '"decision": ');
      const hash = chainHash(r.prev_hash, body, key);
      db.prepare("UPDATE audit SET body = ?, hash = ? WHERE seq = 6000").run(body, hash);
    });
    broken(await verdicts(spaced, { keys: [key] }), 6000, /not RFC 8785 canonical/);
  });

  it("a key past its validity window, and a checkpoint that disagrees", async () => {
    const retired = { ...key, validUntilSeq: 4000 };
    const current = auditKeyFromSecret(randomBytes(32));
    broken(await verdicts(base, { keys: [current, retired] }), 4001, /after its validity window/);
    broken(
      await verdicts(base, {
        keys: [key],
        onRecord: (seq) => (seq === 8000 ? "differs from the checkpoint" : undefined),
      }),
      8000,
      /differs from the checkpoint/,
    );
  });
});
