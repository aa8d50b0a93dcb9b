import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "node:tls";
import { defaultAuditKeyPath } from "@mcp-gateway/edge/store";
import Database from "better-sqlite3";
import {
  connectJson,
  type Gateway,
  type Proc,
  ROOT,
  runCli,
  startGateway,
  startProc,
} from "./harness.js";

/** Audit records as `audit export` prints them. */
interface Rec {
  seq: number;
  operation: string;
  decision: string;
  outcome: string;
  reasons: string[];
  details: Record<string, unknown>;
  principal: { sub: string } | null;
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
/** A JWT that parses but does not verify: its claims are what the record may name, never the token. */
const FORGED = `${b64({ alg: "ES256", typ: "JWT", kid: "nope" })}.${b64({ sub: "mallory", iss: "https://evil.example", exp: 4_000_000_000 })}.${"A".repeat(86)}`;

let gw: Gateway;
let edge: Proc;
let url: string;
let configPath: string;
let exportPath: string;
let bundleCopy: string;
let dev: string;
let auditor: string;
const WINDOW_MS = 1000;

const lines = (text: string): Rec[] =>
  text
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Rec);
const exported = async () =>
  lines(
    await runCli(["audit", "export"], { MCP_GATEWAY_DATA_DIR: gw.dataDir }).then((r) => r.stdout),
  );
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function restartEdge(): Promise<void> {
  const started = await startProc(
    ["edge", "--port", "0", "--runner", `runner-local=${gw.runnerUrl}`, "--config", configPath],
    /edge listening on (https?:\/\/[^\s(]+)/,
    { MCP_GATEWAY_DATA_DIR: gw.dataDir },
  );
  edge = started.proc;
  url = started.match[1] as string;
}

before(async () => {
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "mcp-audit-trail-"));
  configPath = join(dir, "edge.json");
  exportPath = join(dir, "export", "audit.jsonl");
  bundleCopy = join(dir, "bundle.tar.gz");
  copyFileSync(join(ROOT, "policies", "build", "bundle.tar.gz"), bundleCopy);
  writeFileSync(
    configPath,
    JSON.stringify({
      policyBundle: bundleCopy,
      corsOrigins: ["https://console.example"],
      rateLimit: { ratePerSecond: 50, burst: 50 },
      // This suite's own flood of bad tokens tests the audit's aggregation, not the pacing.
      authFailures: { failureDelayMs: 0 },
      internalPort: 0,
      audit: {
        checkpoints: { everyRecords: 25, everyMs: 300 },
        export: [{ type: "file", path: exportPath }],
        securityEvents: { windowMs: WINDOW_MS, perSource: 3, maxRecords: 20, maxSources: 10 },
      },
    }),
  );
  gw = await startGateway({ edgeArgs: ["--config", configPath] });
  edge = gw.edge;
  url = gw.url;
  dev = await gw.token("dana", ["developer"]);
  auditor = await gw.token("audra", ["auditor"]);
});
after(async () => {
  await edge?.stop();
  await gw?.stop();
});

describe("security events in the audit chain", () => {
  it("records every kind of refusal and lifecycle event, found in `audit export` and the live export", async () => {
    // Authentication failure: reason and the token's claimed sub/iss, never the token.
    const bad = await connectJson(url, "ListAuditEvents", {}, FORGED);
    assert.equal(bad.status, 401);
    // Rate limit: one principal well past its burst.
    const burst: Awaited<ReturnType<typeof connectJson>>[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (burst.length < 200) {
          burst.push(await connectJson(url, "ListAuditEvents", { pageSize: 1 }, auditor));
        }
      }),
    );
    assert.ok(
      burst.some((r) => r.body.code === "resource_exhausted"),
      JSON.stringify([...new Set(burst.map((r) => `${r.status}:${String(r.body.code)}`))]),
    );
    // Origin: a CORS preflight and an MCP call from a page the gateway does not trust.
    const preflight = await fetch(`${url}/mcp.McpService/ListAuditEvents`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.status, 403);
    const mcp = await fetch(`${url}/mcp`, {
      method: "POST",
      headers: { origin: "https://evil.example", "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(mcp.status, 403);
    // mTLS identity: the edge's own certificate (a valid CA chain, not a runner) at the registry port.
    const internal = /"internalUrl":"https:\/\/([^"]+)"/.exec(edge.stdout())?.[1] ?? "";
    const [host, port] = [
      internal.slice(0, internal.lastIndexOf(":")),
      internal.slice(internal.lastIndexOf(":") + 1),
    ];
    const pki = join(gw.dataDir, "pki");
    await new Promise<void>((resolve) => {
      const s = connect({
        host,
        port: Number(port),
        ca: readFileSync(join(pki, "ca.crt")),
        cert: readFileSync(join(pki, "edge-edge-local.crt")),
        key: readFileSync(join(pki, "edge-edge-local.key")),
        ALPNProtocols: ["h2"],
        rejectUnauthorized: false,
      });
      s.on("error", () => resolve());
      s.on("close", () => resolve());
    });
    // mTLS identity at the runner's port: the runner's own certificate (not an edge). The runner
    // counts it and the edge records it from its next probe (the runner keeps no chain).
    const runnerAddr = new URL(gw.runnerUrl);
    await new Promise<void>((resolve) => {
      const s = connect({
        host: runnerAddr.hostname.replace(/^\[|\]$/g, ""),
        port: Number(runnerAddr.port),
        ca: readFileSync(join(pki, "ca.crt")),
        cert: readFileSync(join(pki, "runner-runner-local.crt")),
        key: readFileSync(join(pki, "runner-runner-local.key")),
        ALPNProtocols: ["h2"],
        rejectUnauthorized: false,
      });
      s.on("error", () => resolve());
      s.on("close", () => resolve());
    });
    // Policy bundle failure: a broken bundle replaces the file; the last good one stays in use.
    await writeFile(`${bundleCopy}.tmp`, "not a bundle");
    const { rename } = await import("node:fs/promises");
    await rename(`${bundleCopy}.tmp`, bundleCopy);
    await sleep(WINDOW_MS + 3000); // policy watcher (2 s) and the aggregation window

    const records = await exported();
    const ops = new Set(records.map((r) => r.operation));
    for (const op of [
      "security.auth_failed",
      "security.rate_limited",
      "security.origin_refused",
      "security.mtls_refused",
      "security.policy_loaded",
      "security.policy_load_failed",
      "security.tools_changed",
    ]) {
      assert.ok(ops.has(op), `${op} missing from export: ${[...ops].join(" ")}`);
    }
    const auth = records.find((r) => r.operation === "security.auth_failed");
    assert.equal(auth?.details.claimedSub, "mallory");
    assert.equal(auth?.details.claimedIss, "https://evil.example");
    assert.ok(auth?.reasons[0], "the failure reason is recorded");
    assert.equal(auth?.decision, "deny");
    const rl = records.find((r) => r.operation === "security.rate_limited");
    assert.equal(rl?.principal?.sub, "audra");
    const origins = records.filter((r) => r.operation === "security.origin_refused");
    assert.ok(
      origins.length >= 2 && origins.every((r) => r.details.origin === "https://evil.example"),
    );
    const mtls = records.find(
      (r) => r.operation === "security.mtls_refused" && r.details.port === "registry",
    );
    assert.deepEqual(mtls?.details.identities, ["spiffe://mcp-gateway/edge/edge-local"]);
    const atRunner = records.find(
      (r) => r.operation === "security.mtls_refused" && r.details.port === "runner",
    );
    assert.ok(atRunner, "the runner's refusal is in the chain");
    assert.equal(atRunner.details.runner, "runner-local");
    assert.deepEqual(atRunner.details.identities, ["spiffe://mcp-gateway/runner/runner-local"]);
    assert.equal(atRunner.details.count, 1);
    assert.deepEqual(atRunner.reasons, ["identity_not_allowed"]);
    const exportText = await readFile(exportPath, "utf8");
    assert.ok(
      !exportText.includes(FORGED.split(".")[2] as string),
      "the token never reaches the trail",
    );
    // The live export has them too, in order.
    await sleep(1500);
    const live = lines(await readFile(exportPath, "utf8"));
    const liveOps = new Set(live.map((r) => r.operation));
    for (const op of ops) assert.ok(liveOps.has(op), `${op} missing from the live export`);
  });

  it("bounds a flood of 10,000 bad tokens, counts every one, and keeps serving", async () => {
    const before = (await exported()).length;
    const started = Date.now();
    let sent = 0;
    await Promise.all(
      Array.from({ length: 25 }, async () => {
        while (sent < 10_000) {
          sent++;
          const r = await fetch(`${url}/mcp.McpService/ListAuditEvents`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${FORGED}` },
            body: "{}",
          });
          await r.arrayBuffer();
          assert.equal(r.status, 401);
        }
      }),
    );
    const windows = Math.ceil((Date.now() - started) / WINDOW_MS) + 2;
    await sleep(WINDOW_MS * 2);
    // Still serving, and the flood is in the chain as counts.
    const ok = await connectJson(url, "ListAuditEvents", { pageSize: 1 }, auditor);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const added = (await exported()).slice(before);
    const flood = added.filter(
      (r) =>
        (r.operation === "security.auth_failed" && r.details.claimedSub === "mallory") ||
        (r.operation === "security.aggregated" && r.details.kind === "auth_failed"),
    );
    // At most perSource individual records and one aggregate per window (one source).
    assert.ok(flood.length <= windows * 4, `${flood.length} records for ${windows} windows`);
    assert.ok(flood.length * 20 <= 10_000, `${flood.length} records for 10,000 refusals`);
    const total = flood.reduce(
      (n, r) => n + (r.operation === "security.aggregated" ? Number(r.details.count) : 1),
      0,
    );
    assert.equal(total, 10_000, "every refusal is counted exactly once");
  });
});

/** Rewrites record `at` and re-chains every later record with the HMAC key (what a holder of the DB and the key can do). */
function rechain(dbPath: string, keyFile: string, at: number): void {
  const secret = Buffer.from(
    readFileSync(keyFile, "utf8")
      .split("\n")
      .find((l) => l !== "" && !l.startsWith("#"))
      ?.split(" ")[0] ?? "",
    "base64",
  );
  const db = new Database(dbPath);
  const rows = db
    .prepare("SELECT seq, prev_hash AS prevHash, hash, body FROM audit WHERE seq >= ? ORDER BY seq")
    .all(at) as { seq: number; prevHash: string; hash: string; body: string }[];
  let prevHash = rows[0]?.prevHash ?? "";
  const update = db.prepare("UPDATE audit SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?");
  for (const row of rows) {
    const doc = JSON.parse(row.body) as Record<string, unknown>;
    if (row.seq === at) doc.outcome = "rewritten";
    doc.prevHash = prevHash;
    const keys = Object.keys(doc).sort();
    const body = `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(doc[k])}`).join(",")}}`;
    const hash = createHmac("sha256", secret)
      .update(prevHash)
      .update("\n")
      .update(body)
      .digest("hex");
    update.run(body, prevHash, hash, row.seq);
    prevHash = hash;
  }
  db.close();
}

describe("signed checkpoints outside the store", () => {
  let head = 0;
  const copyDir = (name: string) => {
    const d = join(gw.dataDir, name);
    mkdirSync(d, { recursive: true });
    copyFileSync(join(gw.dataDir, "gateway.db"), join(d, "gateway.db"));
    return join(d, "gateway.db");
  };
  const verify = (dataDir: string, extra: string[] = []) =>
    runCli([
      "audit",
      "verify",
      "--json",
      "--data-dir",
      dataDir,
      "--audit-key-file",
      defaultAuditKeyPath(gw.dataDir),
      ...extra,
    ]);
  const withCheckpoints = ["--checkpoints", "", "--checkpoint-public-key", ""];

  before(async () => {
    // 120 decided calls (a developer is denied ListAuditEvents: one record each). A call refused
    // by the rate limit is only counted into an aggregate, so it is retried after a pause: how
    // many records there are must not depend on how fast this machine is.
    for (let denied = 0; denied < 120; ) {
      const res = await connectJson(url, "ListAuditEvents", { pageSize: 1 }, dev);
      if (res.status === 403) denied++;
      else if (res.status === 429) await sleep(25);
      else assert.fail(`ListAuditEvents as a developer answered ${res.status}`);
    }
    await edge.stop(); // a final checkpoint covers the head
    withCheckpoints[1] = join(gw.dataDir, "audit", "checkpoints.jsonl");
    withCheckpoints[3] = join(gw.dataDir, "audit", "checkpoint.key.pub");
    const v = JSON.parse((await verify(gw.dataDir, withCheckpoints)).stdout) as {
      ok: boolean;
      headSeq: number;
      checkpoints: number;
    };
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.ok(v.checkpoints > 3);
    head = v.headSeq;
    assert.ok(head > 200);
  });

  it("catches the last 100 records deleted from the database, naming the missing tail", async () => {
    const db = new Database(copyDir("cut"));
    db.prepare("DELETE FROM audit WHERE seq > ?").run(head - 100);
    db.close();
    const plain = JSON.parse((await verify(join(gw.dataDir, "cut"))).stdout) as { ok: boolean };
    assert.equal(plain.ok, true, "a cut tail is a valid chain by itself");
    const r = await verify(join(gw.dataDir, "cut"), withCheckpoints);
    assert.equal(r.code, 1);
    const v = JSON.parse(r.stdout) as { firstBad: { seq: number; reason: string } };
    assert.equal(v.firstBad.seq, head - 99);
    assert.match(v.firstBad.reason, new RegExp(`records ${head - 99}\\.\\.${head} are missing`));
  });

  it("catches a chain rewritten with the HMAC key but without the checkpoint key", async () => {
    const path = copyDir("rewritten");
    rechain(path, defaultAuditKeyPath(gw.dataDir), 100);
    const plain = JSON.parse((await verify(join(gw.dataDir, "rewritten"))).stdout) as {
      ok: boolean;
    };
    assert.equal(plain.ok, true, "with the HMAC key a rewrite is a valid chain by itself");
    const r = await verify(join(gw.dataDir, "rewritten"), withCheckpoints);
    assert.equal(r.code, 1);
    const v = JSON.parse(r.stdout) as { firstBad: { seq: number; reason: string } };
    assert.ok(v.firstBad.seq >= 100 && v.firstBad.seq <= 125, String(v.firstBad.seq));
    assert.match(v.firstBad.reason, /differs from the checkpoint signed by edge edge-local/);
    assert.match(v.firstBad.reason, /first changed record is in seq (\d+)\.\./);
    const from = Number(/in seq (\d+)\.\./.exec(v.firstBad.reason)?.[1]);
    assert.ok(from <= 100 && from > 100 - 25, `range starts at ${from}`);
    // A forged checkpoint line (signature not by the checkpoint key) is rejected, not trusted.
    const forgedFile = join(gw.dataDir, "forged.jsonl");
    const cps = (await readFile(withCheckpoints[1] as string, "utf8")).trim().split("\n");
    const lastCp = JSON.parse(cps[cps.length - 1] as string) as Record<string, unknown>;
    await writeFile(forgedFile, `${JSON.stringify({ ...lastCp, head: "f".repeat(64) })}\n`);
    const f = await verify(gw.dataDir, [
      "--checkpoints",
      forgedFile,
      "--checkpoint-public-key",
      withCheckpoints[3] as string,
    ]);
    assert.equal(f.code, 1);
    assert.match(f.stdout, /bad signature/);
  });

  it("exporter resumes after an edge restart without gaps; a rotated audit key is recorded", async () => {
    // Rotate the audit key: a new signing key first, the old one kept with its window.
    const keyFile = defaultAuditKeyPath(gw.dataDir);
    const old = (await readFile(keyFile, "utf8"))
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"));
    await copyFile(keyFile, `${keyFile}.bak`);
    await writeFile(
      keyFile,
      `${randomBytes(32).toString("base64")}\n${old[0]} validUntilSeq=${head}\n`,
      { mode: 0o600 },
    );
    await restartEdge();
    const token = await gw.token("dana", ["developer"]);
    for (let i = 0; i < 30; i++) await connectJson(url, "ListAuditEvents", { pageSize: 1 }, token);
    await edge.stop();
    const all = await exported();
    const last = all[all.length - 1]?.seq ?? 0;
    const seen = new Set(lines(await readFile(exportPath, "utf8")).map((r) => r.seq));
    const missing = Array.from({ length: last }, (_, i) => i + 1).filter((s) => !seen.has(s));
    assert.deepEqual(missing, [], "no record missed across the restart");
    const rotated = all.find((r) => r.operation === "security.audit_key_rotated");
    assert.equal(rotated?.details.previousKeyLastSeenSeq, head);
    // The whole chain verifies across the rotation, with the old key's window.
    const v = await runCli(["audit", "verify"], { MCP_GATEWAY_DATA_DIR: gw.dataDir });
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, new RegExp(`records 1\\.\\.${head}`));
  });
});
