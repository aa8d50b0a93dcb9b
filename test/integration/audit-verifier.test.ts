import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  checkpointPublicKeyPath,
  createSqliteStore,
  defaultAuditKeyPath,
  defaultCheckpointKeyPath,
  loadAuditKeys,
} from "@mcp-gateway/edge/store";
import { loadCheckpointSigner, signCheckpoint } from "../../edge/src/audit/checkpoints.js";
import { sampleAuditEntry } from "../../edge/src/store/contract.js";
import { ROOT, runCli } from "./harness.js";

const VERIFIER = join(ROOT, "scripts", "audit", "verify_chain.py");
const dir = mkdtempSync(join(tmpdir(), "audit-verifier-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the Python verifier; fails the test loudly if python3 is missing (scripts/install-audit-verifier.sh). */
function python(args: string[]): { code: number | null; out: string } {
  const r = spawnSync("python3", [VERIFIER, ...args], { encoding: "utf8" });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("an independent verifier in another language (scripts/audit/verify_chain.py)", () => {
  it("verifies the chain and checkpoints from `audit export --raw`, and catches tampering", async () => {
    const keyFile = defaultAuditKeyPath(dir);
    mkdirSync(join(dir, "audit"), { recursive: true, mode: 0o700 });
    const old = randomBytes(32).toString("base64");
    const current = randomBytes(32).toString("base64");
    writeFileSync(keyFile, `${old}\n`, { mode: 0o600 });
    const [oldKey] = await loadAuditKeys(keyFile);
    writeFileSync(keyFile, `${current}\n`, { mode: 0o600 });
    const [newKey] = await loadAuditKeys(keyFile);
    // 20 records under a retired key, 30 under the current one, with unicode and escapes.
    let store = createSqliteStore({ path: join(dir, "gateway.db"), auditKey: oldKey });
    for (let i = 0; i < 20; i++) {
      await store.appendAudit(sampleAuditEntry({ params: { s: `ü ✓ 😀 "q" \\ ${i}\n` } }));
    }
    await store.close();
    store = createSqliteStore({ path: join(dir, "gateway.db"), auditKey: newKey });
    const signer = await loadCheckpointSigner(defaultCheckpointKeyPath(dir), true);
    const cps: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await store.appendAudit(sampleAuditEntry({ operation: `op-${i}` }));
      if (r.seq % 10 === 0) {
        cps.push(
          JSON.stringify(
            signCheckpoint(signer, { seq: r.seq, head: r.hash, time: r.time, edge: "e1" }),
          ),
        );
      }
    }
    await store.close();
    writeFileSync(keyFile, `${current}\n${old} validUntilSeq=20\n`, { mode: 0o600 });
    const cpFile = join(dir, "checkpoints.jsonl");
    writeFileSync(cpFile, `{"level":30,"msg":"other log line"}\n${cps.join("\n")}\n`);
    const raw = await runCli(["audit", "export", "--raw", "--data-dir", dir]);
    assert.equal(raw.code, 0, raw.stderr);
    const rowsFile = join(dir, "rows.jsonl");
    writeFileSync(rowsFile, raw.stdout);
    const pub = checkpointPublicKeyPath(defaultCheckpointKeyPath(dir));

    const ok = python([rowsFile, keyFile, cpFile, pub]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /^OK 50 records, head [0-9a-f]{64}/);

    // One changed character in record 7's body.
    const rows = raw.stdout.trim().split("\n");
    const tampered = [...rows];
    tampered[6] = (rows[6] as string).replace("execute", "exekute");
    writeFileSync(rowsFile, `${tampered.join("\n")}\n`);
    const bad = python([rowsFile, keyFile]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.out, /BROKEN at record 7/);

    // A record past the retired key's window.
    writeFileSync(keyFile, `${old} validUntilSeq=5\n`, { mode: 0o600 });
    writeFileSync(rowsFile, `${rows.join("\n")}\n`);
    const late = python([rowsFile, keyFile]);
    assert.match(late.out, /BROKEN at record 6/);

    // A checkpoint that does not match the chain (the chain lost its tail).
    writeFileSync(keyFile, `${old}\n`, { mode: 0o600 });
    writeFileSync(rowsFile, `${rows.slice(0, 20).join("\n")}\n`);
    const cut = python([rowsFile, keyFile, cpFile, pub]);
    assert.notEqual(cut.code, 0);
    assert.match(cut.out, /checkpoint at 30 does not match the chain/);
  });
});
