import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sampleAuditEntry } from "../store/contract.js";
import type { RawAuditRow } from "../store/types.js";
import { chainHash, GENESIS_HASH, sealAuditRecord, verifyAuditChain } from "./chain.js";
import { type AuditKey, auditKeyFromSecret, ensureAuditKeys, loadAuditKeys } from "./keys.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "audit-keys-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Seals `n` records into rows, as a store would keep them. */
function chain(n: number, key?: AuditKey): RawAuditRow[] {
  const rows: RawAuditRow[] = [];
  for (let i = 0; i < n; i++) {
    const prev = rows[rows.length - 1];
    const { record, body } = sealAuditRecord(
      sampleAuditEntry({ operation: i % 2 ? "read_file" : "execute" }),
      prev && { seq: prev.seq, hash: prev.hash },
      key,
    );
    rows.push({ seq: record.seq, prevHash: record.prevHash, hash: record.hash, body });
  }
  return rows;
}

/**
 * What someone with database write access but no key can do: change a
 * record's body and recompute every hash from there on with plain sha256
 * (dropping or keeping the key id).
 */
function forge(rows: RawAuditRow[], at: number, keepKeyId: boolean): RawAuditRow[] {
  const out: RawAuditRow[] = [];
  let prevHash = GENESIS_HASH;
  for (const row of rows) {
    if (row.seq < at) {
      out.push(row);
      prevHash = row.hash;
      continue;
    }
    const doc = JSON.parse(row.body) as Record<string, unknown>;
    if (row.seq === at) doc.operation = "list_audit";
    doc.prevHash = prevHash;
    if (!keepKeyId) delete doc.keyId;
    const keys = Object.keys(doc).sort();
    const body = `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(doc[k])}`).join(",")}}`;
    const hash = chainHash(prevHash, body);
    out.push({ seq: row.seq, prevHash, hash, body });
    prevHash = hash;
  }
  return out;
}

describe("keyed audit chain", () => {
  const key = auditKeyFromSecret(randomBytes(32));

  it("seals records with the key id in the body and verifies them with the key", () => {
    const rows = chain(5, key);
    for (const r of rows) assert.equal((JSON.parse(r.body) as { keyId: string }).keyId, key.id);
    const verdict = verifyAuditChain(rows, { keys: [key] });
    assert.deepEqual(verdict, {
      ok: true,
      checked: 5,
      head: rows[4]?.hash,
      headSeq: 5,
      keyRanges: { [key.id]: { first: 1, last: 5 } },
    });
    // The keyed hash is not the plain sha256 of the same bytes.
    const first = rows[0] as RawAuditRow;
    assert.notEqual(first.hash, chainHash(first.prevHash, first.body));
  });

  it("catches a tail rewritten and re-hashed without the key, with or without the key id", () => {
    const rows = chain(6, key);
    const keepId = verifyAuditChain(forge(rows, 3, true), { keys: [key] });
    assert.equal(keepId.ok, false);
    assert.equal(keepId.firstBad?.seq, 3);
    assert.match(keepId.firstBad?.reason ?? "", /modified/);

    const dropId = verifyAuditChain(forge(rows, 3, false), { keys: [key] });
    assert.equal(dropId.ok, false);
    assert.equal(dropId.firstBad?.seq, 3);
    assert.match(dropId.firstBad?.reason ?? "", /not keyed/);
    // Without keys (and without an anchored head) an unkeyed forgery looks intact: the
    // reason the edge keys its chain.
    const unkeyed = forge(chain(6), 3, false);
    assert.equal(verifyAuditChain(unkeyed).ok, true);
  });

  it("fails a keyed record whose key was not given, naming the key", () => {
    const rows = chain(2, key);
    const v = verifyAuditChain(rows);
    assert.equal(v.ok, false);
    assert.equal(v.firstBad?.seq, 1);
    assert.ok(v.firstBad?.reason.includes(key.id), v.firstBad?.reason);
    const other = auditKeyFromSecret(randomBytes(32));
    assert.equal(verifyAuditChain(rows, { keys: [other] }).ok, false);
  });

  it("verifies a chain across a key rotation with the retired key kept", () => {
    const next = auditKeyFromSecret(randomBytes(32));
    const rows = chain(3, key);
    const last = rows[2] as RawAuditRow;
    const { record, body } = sealAuditRecord(
      sampleAuditEntry(),
      { seq: last.seq, hash: last.hash },
      next,
    );
    rows.push({ seq: record.seq, prevHash: record.prevHash, hash: record.hash, body });
    assert.equal(verifyAuditChain(rows, { keys: [next, key] }).ok, true);
    assert.equal(verifyAuditChain(rows, { keys: [next] }).firstBad?.seq, 1);
  });

  it("accepts an unkeyed prefix only when asked to (--allow-unkeyed)", () => {
    const rows = chain(2);
    const last = rows[1] as RawAuditRow;
    const { record, body } = sealAuditRecord(
      sampleAuditEntry(),
      { seq: last.seq, hash: last.hash },
      key,
    );
    rows.push({ seq: record.seq, prevHash: record.prevHash, hash: record.hash, body });
    assert.equal(verifyAuditChain(rows, { keys: [key] }).firstBad?.seq, 1);
    assert.equal(verifyAuditChain(rows, { keys: [key], requireKeyed: false }).ok, true);
  });

  it("never accepts an unkeyed record after a keyed one, even with requireKeyed false", () => {
    const rows = chain(5, key);
    const forged = forge(rows, 4, false); // records 4 and 5 re-chained without key ids
    const v = verifyAuditChain(forged, { keys: [key], requireKeyed: false });
    assert.equal(v.ok, false);
    assert.equal(v.firstBad?.seq, 4);
    assert.match(v.firstBad?.reason ?? "", /follows keyed records/);
  });
});

describe("audit key files", () => {
  it("creates a 0600 key on first use and returns the same key afterwards", async () => {
    const path = join(dir, "new", "audit.key");
    const [a] = await ensureAuditKeys(path);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, "new"))).mode & 0o777, 0o700);
    const [b] = await ensureAuditKeys(path);
    assert.ok(a && b);
    assert.equal(a.id, b.id);
    assert.match(a.id, /^k-[0-9a-f]{16}$/);
    assert.equal(a.secret.length, 32);
  });

  it("uses the first key to sign and keeps the others for verification", async () => {
    const path = join(dir, "two.key");
    const s1 = randomBytes(32);
    const s2 = randomBytes(48);
    await writeFile(path, `# rotated\n${s1.toString("base64")}\n\n${s2.toString("base64")}\n`, {
      mode: 0o600,
    });
    const keys = await loadAuditKeys(path);
    assert.deepEqual(
      keys.map((k) => k.id),
      [auditKeyFromSecret(s1).id, auditKeyFromSecret(s2).id],
    );
  });

  it("refuses missing, group-readable, malformed, short and empty key files with clear errors", async () => {
    await assert.rejects(loadAuditKeys(join(dir, "nope.key")), {
      code: "audit_key_missing",
      message: /does not exist/,
    });
    const loose = join(dir, "loose.key");
    await writeFile(loose, `${randomBytes(32).toString("base64")}\n`);
    await chmod(loose, 0o644);
    await assert.rejects(loadAuditKeys(loose), {
      code: "audit_key_permissions",
      message: /chmod 600/,
    });
    const bad = join(dir, "bad.key");
    await writeFile(bad, "not base64 at all!\n", { mode: 0o600 });
    await assert.rejects(loadAuditKeys(bad), { code: "audit_key_invalid", message: /line 1/ });
    const short = join(dir, "short.key");
    await writeFile(short, `${randomBytes(16).toString("base64")}\n`, { mode: 0o600 });
    await assert.rejects(loadAuditKeys(short), { message: /at least 32 bytes, got 16/ });
    const empty = join(dir, "empty.key");
    await writeFile(empty, "# nothing here\n", { mode: 0o600 });
    await assert.rejects(loadAuditKeys(empty), { message: /holds no key/ });
    // The secret never appears in an error message.
    const text = await readFile(short, "utf8");
    await loadAuditKeys(short).catch((err: Error) => {
      assert.ok(!err.message.includes(text.trim()));
    });
  });
});
