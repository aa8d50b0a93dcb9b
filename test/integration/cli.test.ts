import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Gateway, runCli, startGateway } from "./harness.js";

let gw: Gateway;
let env: Record<string, string>;

before(async () => {
  gw = await startGateway();
  env = { MCP_GATEWAY_URL: gw.url, MCP_GATEWAY_TOKEN: await gw.token("cli-user", ["developer"]) };
});
after(async () => {
  await gw?.stop();
});

describe("mcp-gateway CLI against a running gateway", () => {
  it("exec streams output and exits with the task's exit code", async () => {
    const r = await runCli(["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], env);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, "out\n");
    assert.match(r.stderr, /err\n/);
    assert.match(r.stderr, /\[mcp\] task-[0-9a-f-]{36}/);
  });

  it("exec --json prints one JSON line per chunk, ending with the exit", async () => {
    const r = await runCli(["exec", "--json", "--", "echo", "json"], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], { seq: 1, kind: "stdout", data: "json\n" });
    assert.equal(lines.at(-1)?.kind, "exit");
    assert.equal(lines.at(-1)?.status, "completed");
  });

  it("exec -d, status --json, logs and cancel", async () => {
    const d = await runCli(["exec", "-d", "--", "sh", "-c", "echo hi; sleep 30"], env);
    const id = d.stdout.trim();
    assert.match(id, /^task-[0-9a-f-]{36}$/);
    const c = await runCli(["cancel", id], env);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout.trim(), `${id} cancelled`);
    const s = await runCli(["status", "--json", id], env);
    const status = JSON.parse(s.stdout) as Record<string, unknown>;
    assert.equal(status.status, "cancelled");
    assert.equal(status.owner, "cli-user");
    const l = await runCli(["logs", id], env);
    assert.equal(l.code, 130, "a cancelled task's logs exit 130");
  });

  it("put, cat, ls and rm files in a workspace", async () => {
    const put = await runCli(["put", "-p", "-w", "files", "-", "notes/a.txt"], env, "some notes\n");
    assert.equal(put.code, 0, put.stderr);
    const cat = await runCli(["cat", "-w", "files", "notes/a.txt"], env);
    assert.equal(cat.stdout, "some notes\n");
    const ls = await runCli(["ls", "--json", "-w", "files", "notes"], env);
    assert.deepEqual(
      (JSON.parse(ls.stdout) as Array<{ name: string }>).map((e) => e.name),
      ["a.txt"],
    );
    const rm = await runCli(["rm", "-w", "files", "notes/a.txt"], env);
    assert.equal(rm.code, 0, rm.stderr);
    const gone = await runCli(["cat", "-w", "files", "notes/a.txt"], env);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /\[not_found\]/);
  });

  it("reports errors with their code and usage errors with exit 2", async () => {
    const denied = await runCli(["exec", "--", "sudo", "id"], env);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /\[permission_denied\] permission denied: .*sudo/i);
    const usage = await runCli(["exec"], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /exec needs a command/);
    const unknown = await runCli(["frobnicate"], env);
    assert.equal(unknown.code, 2);
  });

  it("policy eval prints the decision for a request document", async () => {
    const r = await runCli(
      ["policy", "eval", "--input", "docs/policy/examples/execute-denied.json"],
      env,
    );
    assert.equal(r.code, 3, r.stderr);
    const d = JSON.parse(r.stdout) as { allow: boolean; denyReasons: string[] };
    assert.equal(d.allow, false);
    assert.ok(d.denyReasons.length > 0);
  });
});
