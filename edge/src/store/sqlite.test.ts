import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { verifyAuditChain } from "../audit/chain.js";
import { runStoreContract, sampleAuditEntry, sampleTask } from "./contract.js";
import { createSqliteStore } from "./sqlite.js";

const dir = mkdtempSync(join(tmpdir(), "mcp-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("sqlite store", () => {
  it("persists tasks across reopen and refuses to change a terminal task", async () => {
    const path = join(dir, "a.db");
    const store = createSqliteStore({ path });
    await store.createTask(sampleTask("task-1", { metadata: { team: "a" } }));
    await store.updateTask("task-1", { state: "completed", finishedAt: 5 });
    const after = await store.updateTask("task-1", { state: "running" });
    assert.equal(after?.state, "completed");
    await store.close();
    const again = createSqliteStore({ path });
    const t = await again.getTask("task-1");
    assert.equal(t?.state, "completed");
    assert.deepEqual(t?.metadata, { team: "a" });
    assert.equal(await again.updateTask("task-missing", { state: "failed" }), undefined);
    await again.close();
  });

  it("numbers output per task from 1 and reads after a sequence", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    await store.createTask(sampleTask("task-2"));
    assert.equal(await store.appendOutput("task-2", "stdout", new TextEncoder().encode("a"), 1), 1);
    assert.equal(await store.appendOutput("task-2", "stderr", new TextEncoder().encode("b"), 2), 2);
    assert.equal(await store.appendOutput("task-3", "stdout", new TextEncoder().encode("c"), 2), 1);
    const rest = await store.readOutput("task-2", 1, 10);
    assert.equal(rest.length, 1);
    assert.equal(rest[0]?.kind, "stderr");
    assert.equal(new TextDecoder().decode(rest[0]?.data), "b");
    await store.close();
  });

  it("keeps a verifiable audit chain and detects tampering", async () => {
    const path = join(dir, "audit.db");
    const store = createSqliteStore({ path });
    for (const op of ["execute", "read_file", "execute", "cancel_task"])
      await store.appendAudit(sampleAuditEntry({ operation: op }));
    assert.equal(verifyAuditChain(store.rawAudit()).ok, true);
    const denied = await store.listAudit({ operation: "execute", limit: 10 });
    assert.deepEqual(
      denied.map((r) => r.seq),
      [1, 3],
    );
    await store.close();

    const db = new Database(path);
    db.prepare("UPDATE audit SET body = replace(body, 'echo', 'rm') WHERE seq = 2").run();
    db.close();
    const reopened = createSqliteStore({ path });
    const verdict = verifyAuditChain(reopened.rawAudit());
    assert.equal(verdict.ok, false);
    assert.equal(verdict.firstBad?.seq, 2);
    assert.match(verdict.firstBad?.reason ?? "", /modified/);
    await reopened.close();
  });

  it("detects a deleted record and a removed tail against an anchored head", async () => {
    const store = createSqliteStore({ path: join(dir, "del.db") });
    for (const op of ["a", "b", "c"]) await store.appendAudit(sampleAuditEntry({ operation: op }));
    const rows = [...store.rawAudit()];
    const head = rows[2]?.hash ?? "";
    assert.equal(
      verifyAuditChain([rows[0], rows[2]].filter((r) => r !== undefined)).firstBad?.seq,
      3,
    );
    assert.equal(verifyAuditChain(rows.slice(0, 2), { expectHead: head }).ok, false);
    assert.equal(verifyAuditChain(rows, { expectHead: head }).ok, true);
    await store.close();
  });
});

let contractStores = 0;
runStoreContract("sqlite", {
  async open() {
    // A file, so that a second connection can change the schema under the store.
    const path = join(dir, `contract-${++contractStores}.db`);
    const store = createSqliteStore({ path });
    const exec = (sql: string) => {
      const db = new Database(path);
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
    };
    return {
      store,
      rawAudit: async () => [...store.rawAudit()],
      async refuseAuditInserts() {
        exec(
          "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
        );
        return async () => exec("DROP TRIGGER refuse_audit");
      },
    };
  },
});
