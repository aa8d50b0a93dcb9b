import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { sampleAuditEntry } from "../store/contract.js";
import { createSqliteStore } from "../store/sqlite.js";
import type { AuditRecord, RawAuditRow } from "../store/types.js";
import {
  AUDIT_FORMAT_VERSION,
  canonicalJson,
  chainHash,
  sealAuditRecord,
  verifyAuditChain,
} from "./chain.js";
import { type AuditKey, auditKeyFromSecret, loadAuditKeys } from "./keys.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "audit-chain-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Appends `n` sealed records to `rows` with `key`. */
function extend(rows: RawAuditRow[], n: number, key: AuditKey): RawAuditRow[] {
  for (let i = 0; i < n; i++) {
    const prev = rows[rows.length - 1];
    const { record, body } = sealAuditRecord(
      sampleAuditEntry({ time: 1_700_000_000_000 + rows.length * 1000 }),
      prev && { seq: prev.seq, hash: prev.hash },
      key,
    );
    rows.push({ seq: record.seq, prevHash: record.prevHash, hash: record.hash, body });
  }
  return rows;
}

describe("RFC 8785 canonical bodies", () => {
  it("serializes like JCS: sorted keys by UTF-16 units, ES number form, minimal escapes", () => {
    assert.equal(
      canonicalJson({
        b: [1e21, 0.5, -0, "\u2028", 'q"\\\n\u0001'],
        a: null,
        é: 1,
        Z: true,
        u: undefined,
      }),
      '{"Z":true,"a":null,"b":[1e+21,0.5,0,"\u2028","q\\"\\\\\\n\\u0001"],"é":1}',
    );
    // Lone surrogates have no JCS form: they are replaced, never a reason to fail an append.
    assert.equal(canonicalJson({ s: "a\ud800b" }), '{"s":"a\ufffdb"}');
    assert.throws(() => canonicalJson({ n: Number.NaN }), TypeError);
  });

  it("seals format 2 records whose returned record is the stored body", () => {
    const key = auditKeyFromSecret(randomBytes(32));
    const { record, body } = sealAuditRecord(
      sampleAuditEntry({ params: { s: "x\udc00" } }),
      undefined,
      key,
    );
    const { hash, ...rest } = record;
    assert.equal(canonicalJson(rest), body);
    assert.equal(record.v, AUDIT_FORMAT_VERSION);
    assert.equal(record.keyId, key.id);
    assert.deepEqual(record.params, { s: "x\ufffd" });
    assert.equal(hash, chainHash(record.prevHash, body, key));
  });

  it("verifies bodies with integer-like keys, which JavaScript objects reorder", () => {
    const key = auditKeyFromSecret(randomBytes(32));
    const { record, body } = sealAuditRecord(
      sampleAuditEntry({ params: { metadata: { "10": "a", "9": "b", x: "c" } } }),
      undefined,
      key,
    );
    assert.match(body, /"10":"a","9":"b"/);
    const rows = [{ seq: 1, prevHash: record.prevHash, hash: record.hash, body }];
    assert.equal(verifyAuditChain(rows, { keys: [key] }).ok, true);
  });

  it("refuses a body that re-hashes correctly but is not canonical (rewritten with the key)", () => {
    const key = auditKeyFromSecret(randomBytes(32));
    const rows = extend([], 2, key);
    const second = rows[1] as RawAuditRow;
    // Same members, pretty-printed: a second parser could read it differently from ours.
    const body = JSON.stringify(JSON.parse(second.body), null, 1);
    rows[1] = { ...second, body, hash: chainHash(second.prevHash, body, key) };
    const v = verifyAuditChain(rows, { keys: [key] });
    assert.equal(v.ok, false);
    assert.equal(v.firstBad?.seq, 2);
    assert.match(v.firstBad?.reason ?? "", /RFC 8785/);
  });
});

describe("audit key validity windows", () => {
  const old = auditKeyFromSecret(randomBytes(32));
  const next = auditKeyFromSecret(randomBytes(32));

  it("fails a record signed by a retired key after validUntilSeq, naming the key and window", () => {
    const rows = extend(extend([], 3, old), 2, next); // old signed 1..3, next 4..5
    const retired = { ...old, validUntilSeq: 3 };
    assert.equal(verifyAuditChain(rows, { keys: [next, retired] }).ok, true);
    // Someone holding the leaked retired key appends a record signed with it.
    const forged = extend([...rows], 1, old);
    const v = verifyAuditChain(forged, { keys: [next, retired] });
    assert.equal(v.ok, false);
    assert.equal(v.firstBad?.seq, 6);
    assert.match(v.firstBad?.reason ?? "", new RegExp(`${old.id}.*validUntilSeq 3`));
    // Without the window the same forgery verifies: the gap the window closes.
    assert.equal(verifyAuditChain(forged, { keys: [next, old] }).ok, true);
  });

  it("fails a record signed by a retired key after validUntil (time)", () => {
    const rows = extend([], 3, old); // times 1_700_000_000_000 + 0, 1000, 2000
    const v = verifyAuditChain(rows, {
      keys: [{ ...old, validUntil: 1_700_000_001_000 }],
    });
    assert.equal(v.firstBad?.seq, 3);
    assert.match(v.firstBad?.reason ?? "", /validUntil 2023-11-14T22:13:21\.000Z/);
  });

  it("reports each key's first and last seq (what to write as validUntilSeq)", () => {
    const rows = extend(extend([], 2, old), 3, next);
    assert.deepEqual(verifyAuditChain(rows, { keys: [next, old] }).keyRanges, {
      [old.id]: { first: 1, last: 2 },
      [next.id]: { first: 3, last: 5 },
    });
  });

  it("reads windows from the key file and refuses a window on the signing key", async () => {
    const s1 = randomBytes(32).toString("base64");
    const s2 = randomBytes(32).toString("base64");
    const path = join(dir, "windows.key");
    await writeFile(path, `${s1}\n${s2} validUntilSeq=41 validUntil=2030-01-01T00:00:00Z\n`, {
      mode: 0o600,
    });
    const [signing, retired] = await loadAuditKeys(path);
    assert.equal(signing?.validUntilSeq, undefined);
    assert.equal(retired?.validUntilSeq, 41);
    assert.equal(retired?.validUntil, Date.parse("2030-01-01T00:00:00Z"));
    await writeFile(path, `${s2} validUntilSeq=41\n${s1}\n`, { mode: 0o600 });
    await assert.rejects(loadAuditKeys(path), /must not have a validity window/);
    await writeFile(path, `${s1}\n${s2} until=5\n`, { mode: 0o600 });
    await assert.rejects(loadAuditKeys(path), /unknown attribute "until=5"/);
  });
});

describe("indexed columns agree with signed bodies", () => {
  it("catches a listing column changed without touching the body", async () => {
    const key = auditKeyFromSecret(randomBytes(32));
    const path = join(dir, "columns.db");
    const store = createSqliteStore({ path, auditKey: key });
    await store.appendAudit(sampleAuditEntry());
    await store.appendAudit(sampleAuditEntry({ decision: "deny", outcome: "denied" }));
    assert.equal(verifyAuditChain(store.rawAudit(), { keys: [key] }).ok, true);
    // Hide the denial from `decision=deny` listings by editing the indexed copy only.
    const db = new Database(path);
    db.prepare("UPDATE audit SET decision = 'allow', principal = 'bob' WHERE seq = 2").run();
    db.close();
    const v = verifyAuditChain(store.rawAudit(), { keys: [key] });
    assert.equal(v.ok, false);
    assert.equal(v.firstBad?.seq, 2);
    assert.match(v.firstBad?.reason ?? "", /indexed columns \(principal, decision\)/);
    await store.close();
  });
});

describe("migration of format 1 chains (before RFC 8785)", () => {
  it("verifies a chain written by the previous code and continues it with format 2", async () => {
    const fixture = JSON.parse(
      await readFile(new URL("./testdata/chain-v1.json", import.meta.url), "utf8"),
    ) as { keySecretBase64: string; rows: RawAuditRow[] };
    const key = auditKeyFromSecret(Buffer.from(fixture.keySecretBase64, "base64"));
    assert.equal(verifyAuditChain(fixture.rows, { keys: [key] }).ok, true);
    // The same rows in a database created by the previous schema, then opened by this code.
    const path = join(dir, "v1.db");
    createSqliteStore({ path }).close();
    const db = new Database(path);
    const insert = db.prepare(
      `INSERT INTO audit (seq, time, principal, tenant, operation, decision, prev_hash, hash, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const r of fixture.rows) {
      const b = JSON.parse(r.body) as AuditRecord;
      insert.run(
        r.seq,
        b.time,
        b.principal?.sub ?? "",
        b.principal?.tenant ?? "",
        b.operation,
        b.decision,
        r.prevHash,
        r.hash,
        r.body,
      );
    }
    db.close();
    const store = createSqliteStore({ path, auditKey: key });
    const appended = await store.appendAudit(sampleAuditEntry());
    assert.equal(appended.seq, fixture.rows.length + 1);
    const v = verifyAuditChain(store.rawAudit(), { keys: [key] });
    assert.deepEqual([v.ok, v.checked], [true, fixture.rows.length + 1]);
    const listed = await store.listAudit({ limit: 10 });
    assert.deepEqual(
      listed.map((r) => r.v),
      [undefined, undefined, undefined, AUDIT_FORMAT_VERSION],
    );
    await store.close();
  });
});
