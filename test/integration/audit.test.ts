import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rename } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { defaultAuditKeyPath } from "@mcp-gateway/edge/store";
import Database from "better-sqlite3";
import { connectJson, type Gateway, runCli, startGateway, waitForTask } from "./harness.js";

let gw: Gateway;
let dev: string;
let auditor: string;

before(async () => {
  gw = await startGateway();
  dev = await gw.token("dana", ["developer"]);
  auditor = await gw.token("audra", ["auditor"]);
});
after(async () => {
  await gw?.stop();
});

describe("audit trail", () => {
  it("records allowed and denied calls and task outcomes, listable by an auditor of the tenant", async () => {
    const ok = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "echo", args: ["audited"] },
      dev,
    );
    const taskId = String(ok.body.taskId);
    await waitForTask(gw.url, dev, taskId);
    const denied = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "sudo", args: ["-i"] },
      dev,
    );
    assert.equal(denied.body.code, "permission_denied");

    const page = await connectJson(
      gw.url,
      "ListAuditEvents",
      { principal: "dana", pageSize: 100 },
      auditor,
    );
    assert.equal(page.status, 200, JSON.stringify(page.body));
    const events = page.body.events as Array<Record<string, unknown>>;
    const ops = events.map((e) => `${e.operation}:${e.decision ?? ""}:${e.outcome}`);
    assert.ok(ops.includes("execute:allow:allowed"), ops.join(" "));
    assert.ok(ops.includes("execute:deny:denied"), ops.join(" "));
    const finished = events.find((e) => e.operation === "task_finished" && e.taskId === taskId);
    assert.equal(finished?.outcome, "completed");
    assert.equal(finished?.runnerId, "runner-local");
    const details = JSON.parse(String(finished?.detailsJson)) as Record<string, unknown>;
    assert.equal(details.exitCode ?? 0, 0);
    assert.equal(details.stdoutBytes, "audited\n".length, "bytes out are recorded");
    assert.ok(Number(details.durationMs) > 0);
    const deniedEvent = events.find((e) => e.decision === "deny");
    assert.ok(((deniedEvent?.reasons ?? []) as string[]).some((r) => /sudo/i.test(r)));
    for (const e of events) assert.match(String(e.hash), /^[0-9a-f]{64}$/);
  });

  it("is refused to a developer with permission_denied", async () => {
    const r = await connectJson(gw.url, "ListAuditEvents", {}, dev);
    assert.equal(r.body.code, "permission_denied");
  });

  it("`audit verify` says intact, then names the first tampered record", async () => {
    const env = { MCP_GATEWAY_DATA_DIR: gw.dataDir };
    const intact = await runCli(["audit", "verify"], env);
    assert.equal(intact.code, 0, intact.stderr);
    assert.match(intact.stdout, /audit chain intact: \d+ records/);

    const db = new Database(join(gw.dataDir, "gateway.db"));
    // The first of dana's records (the chain starts with the edge's own security events).
    const { seq } = db
      .prepare("SELECT min(seq) AS seq FROM audit WHERE principal = 'dana'")
      .get() as { seq: number };
    db.prepare("UPDATE audit SET body = replace(body, '\"dana\"', '\"eve\"') WHERE seq = ?").run(
      seq,
    );
    db.close();
    const broken = await runCli(["audit", "verify", "--json"], env);
    assert.equal(broken.code, 1);
    const verdict = JSON.parse(broken.stdout) as {
      ok: boolean;
      firstBad: { seq: number; reason: string };
    };
    assert.equal(verdict.ok, false);
    assert.equal(verdict.firstBad.seq, seq);
    assert.match(verdict.firstBad.reason, /modified/);
  });

  it("is keyed: a record rewritten with every later hash recomputed (no key) is caught", async () => {
    const env = { MCP_GATEWAY_DATA_DIR: gw.dataDir };
    const db = new Database(join(gw.dataDir, "gateway.db"));
    const rows = db
      .prepare("SELECT seq, prev_hash AS prevHash, hash, body FROM audit ORDER BY seq")
      .all() as { seq: number; prevHash: string; hash: string; body: string }[];
    assert.ok(rows.length >= 4);
    const keyId = (JSON.parse(rows[0]?.body ?? "{}") as { keyId?: string }).keyId;
    assert.match(keyId ?? "", /^k-[0-9a-f]{16}$/, "records carry the audit key id");
    // What database write access allows without the key: edit record 2, then re-chain
    // everything after it with sha256, keeping the key ids.
    let prevHash = rows[0]?.hash ?? "";
    const update = db.prepare("UPDATE audit SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?");
    for (const row of rows.slice(1)) {
      const doc = JSON.parse(row.body) as Record<string, unknown>;
      if (row.seq === 2) doc.operation = "list_audit";
      doc.prevHash = prevHash;
      const body = JSON.stringify(doc);
      const hash = createHash("sha256").update(prevHash).update("\n").update(body).digest("hex");
      update.run(body, prevHash, hash, row.seq);
      prevHash = hash;
    }
    db.close();
    const forged = await runCli(["audit", "verify", "--json"], env);
    assert.equal(forged.code, 1, forged.stdout);
    const verdict = JSON.parse(forged.stdout) as { firstBad: { seq: number; reason: string } };
    assert.equal(verdict.firstBad.seq, 2);
    assert.match(verdict.firstBad.reason, /modified/);
    // Without the key the CLI cannot vouch for a keyed chain, and says which key it needs.
    const noKey = await runCli(
      ["audit", "verify", "--audit-key-file", join(gw.dataDir, "missing.key")],
      env,
    );
    assert.notEqual(noKey.code, 0);
    assert.match(noKey.stderr + noKey.stdout, /does not exist/);
    // And with no key at all it refuses to vouch for the chain instead of checking sha256 only.
    const keyPath = defaultAuditKeyPath(gw.dataDir);
    await rename(keyPath, `${keyPath}.away`);
    try {
      const none = await runCli(["audit", "verify"], env);
      assert.notEqual(none.code, 0);
      assert.match(none.stderr + none.stdout, /no audit key: the chain cannot be authenticated/);
      const links = await runCli(["audit", "verify", "--allow-unkeyed", "--json"], env);
      assert.equal(links.code, 1, "keyed records cannot be checked without their key");
      assert.match(links.stdout, /which was not given/);
    } finally {
      await rename(`${keyPath}.away`, keyPath);
    }
  });

  it("`audit export` writes JSON lines", async () => {
    const r = await runCli(["audit", "export", "--format", "jsonl"], {
      MCP_GATEWAY_DATA_DIR: gw.dataDir,
    });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number });
    assert.ok(lines.length >= 4);
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
  });
});
