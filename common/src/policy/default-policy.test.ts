import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { policyCorpus } from "./corpus.js";
import { parseDecision } from "./decision.js";
import { createPolicyEngine, type PolicyEngine } from "./engine.js";
import type { PolicyInput } from "./input.js";
import { buildPolicyBundle, evalPolicyFile, evalWithOpa, REPO_ROOT } from "./tools.js";

const logger = pino({ level: "silent" });
const EXAMPLES = join(REPO_ROOT, "docs/policy/examples");

async function example(name: string): Promise<PolicyInput> {
  return JSON.parse(await readFile(join(EXAMPLES, name), "utf8")) as PolicyInput;
}

function withCommand(base: PolicyInput, command: string, args: string[]): PolicyInput {
  return { ...base, command: { command, args, env: {}, cwd: "", timeout_seconds: 0 } };
}

function withFile(
  base: PolicyInput,
  operation: PolicyInput["operation"],
  path: string,
): PolicyInput {
  const mode = ({ read_file: "read", write_file: "write", delete_file: "delete" } as const)[
    operation as "read_file"
  ];
  const { command: _omit, ...rest } = base;
  return { ...rest, operation, file: { path, mode: mode ?? "list" } };
}

describe("default policy evaluated in wasm", () => {
  let dir: string;
  let bundlePath: string;
  let engine: PolicyEngine;
  let execute: PolicyInput;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "default-policy-"));
    bundlePath = await buildPolicyBundle({ outPath: join(dir, "bundle.tar.gz") });
    engine = await createPolicyEngine({ bundlePath, logger, pollIntervalMs: 0 });
    execute = await example("execute-allowed.json");
  });
  after(async () => {
    engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("decides every documented example as its file name says", async () => {
    const names = (await readdir(EXAMPLES)).filter((n) => n.endsWith(".json"));
    assert.ok(names.length >= 6, "docs/policy/examples should hold the examples");
    for (const name of names) {
      const d = engine.decide(await example(name));
      const expectAllow = name.endsWith("-allowed.json");
      assert.equal(d.allow, expectAllow, `${name}: ${d.denyReasons.join("; ")}`);
      if (!expectAllow) assert.ok(d.denyReasons.length > 0, name);
    }
  });

  it("gives the same decisions as the OPA CLI (Go) on a corpus", async () => {
    const corpus: PolicyInput[] = [];
    for (const name of await readdir(EXAMPLES)) {
      if (name.endsWith(".json")) corpus.push(await example(name));
    }
    const commands: [string, string[]][] = [
      ["rm", ["-rf", "/*"]],
      ["rm", ["-rf", "build"]],
      ["/usr/bin/sudo", ["ls"]],
      ["bash", ["-c", "ls; s\\udo id"]],
      ["sh", ["-c", "echo ok | wc -c"]],
      ["env", ["A=1", "timeout", "5", "mkfs.ext4", "/dev/x"]],
      ["chmod", ["-R", "777", "/"]],
      ["wget", ["http://example.org"]],
      ["python3", ["-c", "print('a;b|c')"]],
      ["bash", ["-c", "cd src && npm test 2>&1 | tee log.txt; echo done"]],
      ["env", ["A=1", "nice", "-n", "5", "sh", "-c", "FOO=1 time chmod 777 /etc"]],
      ["bash", ["-c", "if true; then rm -rf --no-preserve-root /; fi"]],
      ["xargs", ["curl", "http://x"]],
      ["sh", ["-c", "echo `reboot` $(su root)\tsudo"]],
    ];
    for (const [command, args] of commands) corpus.push(withCommand(execute, command, args));
    corpus.push({
      ...withCommand(execute, "ls", []),
      command: {
        command: "ls",
        args: [],
        env: { LD_PRELOAD: "x", OK: "1" },
        cwd: "",
        timeout_seconds: 900,
      },
    });
    for (const path of [".git/hooks/pre-commit", "./.git//hooks/x", "a/../b", "src/ok.ts"]) {
      corpus.push(withFile(execute, "write_file", path));
    }
    corpus.push(withFile(execute, "read_file", ".ssh/id_rsa"));
    // Control characters are found without regex.match (JSON-escape pre-check).
    for (const path of ["a\u0000b", "a\tb", "a\u007fb", "é/ü.txt", 'q"uo\\te', "a/.env", ".env"]) {
      corpus.push(withFile(execute, "write_file", path));
    }
    // Limits: a role granting limits (admin), and a tenant capping them.
    const admin = { ...execute.principal, roles: ["admin"] };
    corpus.push({ ...execute, principal: admin });
    corpus.push({ ...execute, principal: { ...admin, tenant: "example-restricted" } });
    corpus.push({ ...execute, principal: { ...admin, roles: ["admin", "developer", "ghost"] } });
    // Large numbers in messages (format_int differs between Go and wasm above 2^32).
    corpus.push({
      ...execute,
      sandbox: {
        limits: { ...execute.sandbox.limits, memory_bytes: 8589934592, max_output_bytes: 1e12 },
      },
    });

    const goDecisions = (await evalWithOpa(corpus)) as {
      allow: boolean;
      deny_reasons: string[];
      warnings: string[];
      obligations: unknown;
    }[];
    assert.equal(goDecisions.length, corpus.length);
    corpus.forEach((input, i) => {
      const wasm = engine.decide(input);
      const go = goDecisions[i];
      assert.ok(go, `case ${i}`);
      const label = `case ${i}: ${JSON.stringify(input.command ?? input.file)}`;
      assert.equal(wasm.allow, go.allow, label);
      assert.deepEqual(wasm.denyReasons, go.deny_reasons, label);
      assert.deepEqual(wasm.warnings, go.warnings, label);
      assert.deepEqual(wasm.obligations, go.obligations, label);
    });
    // The corpus must exercise both outcomes.
    assert.ok(goDecisions.some((d) => d.allow));
    assert.ok(goDecisions.some((d) => !d.allow));
  });

  it("gives the same decisions as the OPA CLI (Go) on 1,500 generated inputs", async () => {
    const corpus = policyCorpus(execute, 1500, 20261124);
    const goDecisions = await evalWithOpa(corpus);
    assert.equal(goDecisions.length, corpus.length);
    const reasons = new Set<string>();
    let allowed = 0;
    corpus.forEach((input, i) => {
      const go = parseDecision(goDecisions[i], engine.revision());
      const wasm = engine.decide(input);
      assert.deepEqual(wasm, go, `case ${i}: ${JSON.stringify(input).slice(0, 300)}`);
      if (wasm.allow) allowed++;
      for (const r of wasm.denyReasons) reasons.add(r.replace(/"[^"]*"/g, '""'));
    });
    // The corpus must exercise both outcomes and many different rules.
    assert.ok(allowed > 100 && allowed < corpus.length - 100, `allowed ${allowed}`);
    assert.ok(reasons.size >= 25, `only ${reasons.size} kinds of deny reasons`);
  });

  it("evalPolicyFile decides an input file like the engine", async () => {
    const d = await evalPolicyFile(bundlePath, join(EXAMPLES, "execute-denied.json"));
    assert.equal(d.allow, false);
    assert.ok(
      d.denyReasons.includes("rm --no-preserve-root is not allowed"),
      d.denyReasons.join("; "),
    );
    assert.equal(d.revision, engine.revision());
  });

  it("evalPolicyFile fails closed on a missing bundle", async () => {
    const d = await evalPolicyFile(
      join(dir, "nope.tar.gz"),
      join(EXAMPLES, "execute-allowed.json"),
    );
    assert.equal(d.allow, false);
    assert.match(d.denyReasons[0] ?? "", /policy unavailable/);
  });
});
