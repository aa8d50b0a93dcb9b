import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { auditKeyFromSecret } from "../../edge/src/audit/keys.js";
import { sampleAuditEntry } from "../../edge/src/store/contract.js";
import { createSqliteStore } from "../../edge/src/store/sqlite.js";

const CLI = resolve(import.meta.dirname, "entry", "cli.ts");

describe("mcp-gateway <command> --help", () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", CLI, ...args], { encoding: "utf8" });

  it("prints the command's own lines of the help, under their heading, and exits 0", () => {
    const dev = run("dev", "--help");
    assert.equal(dev.status, 0, dev.stderr);
    assert.equal(
      dev.stdout,
      "Servers:\n  dev    [--config f.json] [--port p]   edge + one local runner on embedded defaults (the\n                              file's edge settings, e.g. mcp.upstreams, on top of them)\n",
    );
    // A command's name inside another's description ("edge + one local runner") is not its line.
    const edge = run("edge", "--help");
    assert.equal(edge.status, 0);
    assert.match(edge.stdout, /^Servers:\n {2}edge {3}\[--config f\.json\]/);
    assert.doesNotMatch(edge.stdout, /dev /);
    // Names of the object prototype are no commands.
    const proto = run("constructor", "--help");
    assert.equal(proto.status, 2);
    assert.match(proto.stderr, /unknown command "constructor"/);
    const logs = run("logs", "-h");
    assert.equal(logs.status, 0);
    assert.match(logs.stdout, /^Client \(flags: --url/);
    assert.match(logs.stdout, /logs \[-f\] <task-id>/);
  });

  it("dev --config refuses what dev sets itself, and a file it cannot read, before starting", () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-dev-config-"));
    try {
      const file = join(dir, "edge.json");
      writeFileSync(file, JSON.stringify({ runners: [{ id: "r", url: "https://r:1" }] }));
      const set = run("dev", "--config", file);
      assert.equal(set.status, 2);
      assert.match(set.stderr, /"runners" is set by dev itself/);
      writeFileSync(file, JSON.stringify({ auth: { issuer: "https://idp.example" } }));
      assert.match(run("dev", "--config", file).stderr, /"auth" is set by dev itself/);
      // A file that is no valid edge configuration is refused before anything starts.
      writeFileSync(file, JSON.stringify({ mcp: { upstreams: [{ name: "x", kind: "http" }] } }));
      const invalid = run("dev", "--config", file, "--data-dir", join(dir, "data"));
      assert.equal(invalid.status, 2);
      assert.match(invalid.stderr, /mcp\.upstreams\.0\.url/);
      assert.doesNotMatch(`${invalid.stdout}${invalid.stderr}`, /"name":"runner"|listening/);
      const missing = run("dev", "--config", join(dir, "missing.json"));
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /cannot read config file .*missing\.json: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("shows the same lines after a usage error (exit 2); flags after -- are the command's", () => {
    const bad = run("token", "--bogus");
    assert.equal(bad.status, 2);
    assert.match(
      bad.stderr,
      /mcp-gateway token: Unknown option '--bogus'\n\nAdmin:\n {2}token --sub s/,
    );
    // `exec -- cmd --help`: --help belongs to cmd, so the CLI tries to run it (no gateway here).
    const passed = run("exec", "--url", "http://127.0.0.1:9", "--", "ls", "--help");
    assert.notEqual(passed.status, 0);
    assert.doesNotMatch(passed.stdout, /Client \(flags/);
  });
});

describe("mcp-gateway writing into a pipe", () => {
  it("audit export exits 141 (SIGPIPE), without a stack trace, when its reader closes the pipe early", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-epipe-"));
    try {
      const secret = randomBytes(32);
      const keyFile = join(dir, "audit.key");
      writeFileSync(keyFile, `${secret.toString("base64")}\n`, { mode: 0o600 });
      const store = createSqliteStore({
        path: join(dir, "gateway.db"),
        auditKey: auditKeyFromSecret(secret),
      });
      // Far more than a pipe buffer (64 KiB) of JSON lines.
      for (let i = 0; i < 2000; i++) await store.appendAudit(sampleAuditEntry({ time: i }));
      await store.close();
      const child = spawn(
        process.execPath,
        ["--import", "tsx", CLI, "audit", "export", "--data-dir", dir],
        {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, MCP_GATEWAY_AUDIT_KEY_FILE: keyFile },
        },
      );
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      // Like `| head -1`: read the first chunk, then close the pipe.
      child.stdout.once("data", () => child.stdout.destroy());
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      assert.equal(code, 141, stderr);
      assert.doesNotMatch(stderr, /EPIPE|Error|at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
