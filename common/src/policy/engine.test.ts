import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { ZERO_LIMITS } from "./decision.js";
import { createPolicyEngine, type PolicyEngine } from "./engine.js";
import type { PolicyInput } from "./input.js";
import { buildPolicyBundle } from "./tools.js";

const logger = pino({ level: "silent" });

function executeInput(command: string, args: string[]): PolicyInput {
  return {
    principal: { sub: "alice", roles: ["developer"], tenant: "acme", scopes: [] },
    operation: "execute",
    command: { command, args, env: {}, cwd: "", timeout_seconds: 0 },
    workspace: "ws-1",
    network: "unspecified",
    sandbox: { limits: { ...ZERO_LIMITS } },
    metadata: {},
    request: { protocol: "connect", trace_id: "t", source: "test" },
    time: { now_ns: 0, rfc3339: "1970-01-01T00:00:00Z" },
  };
}

describe("createPolicyEngine with the default bundle", () => {
  let dir: string;
  let engine: PolicyEngine;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "policy-engine-"));
    const bundlePath = await buildPolicyBundle({ outPath: join(dir, "bundle.tar.gz") });
    engine = await createPolicyEngine({ bundlePath, logger, pollIntervalMs: 0 });
  });
  after(async () => {
    engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("allows a harmless command with the default obligations", () => {
    const d = engine.decide(executeInput("ls", ["-la"]));
    assert.equal(d.allow, true, d.denyReasons.join("; "));
    assert.deepEqual(d.denyReasons, []);
    assert.equal(d.obligations.network, "none");
    assert.equal(d.obligations.max_timeout_seconds, 300);
    assert.equal(d.obligations.limits.memory_bytes, 536870912);
    assert.match(d.revision, /^[0-9a-f]{16}$/);
    assert.equal(engine.revision(), d.revision);
  });

  it("denies sudo, even as an absolute path inside bash -c, with a human reason", () => {
    const d = engine.decide(executeInput("bash", ["-c", "echo hi && /usr/bin/sudo id"]));
    assert.equal(d.allow, false);
    assert.ok(
      d.denyReasons.some((r) => r.includes('"sudo" is denied')),
      d.denyReasons.join("; "),
    );
  });

  it("returns frozen decisions, reused only for identical policy results", () => {
    const a = engine.decide(executeInput("ls", ["-la"]));
    const b = engine.decide(executeInput("cat", ["README.md"]));
    // Both were evaluated; their results are the same text, so the same Decision comes back.
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.obligations.limits));
    assert.throws(() => {
      (a.denyReasons as string[]).push("x");
    }, TypeError);
    const denied = engine.decide(executeInput("sudo", ["id"]));
    assert.equal(denied.allow, false);
    assert.notEqual(denied, a);
    assert.equal(engine.stats().decisions >= 3, true);
  });

  it("keeps at most a bounded number of result texts and still decides the evicted ones", () => {
    const first = engine.decide({ ...executeInput("ls", []), operation: "op-0" as "execute" });
    assert.match(first.denyReasons.join("; "), /unknown operation "op-0"/);
    for (let i = 1; i <= 300; i++) {
      const d = engine.decide({ ...executeInput("ls", []), operation: `op-${i}` as "execute" });
      assert.match(d.denyReasons.join("; "), new RegExp(`unknown operation "op-${i}"`));
    }
    // op-0's result was evicted: it is evaluated and parsed again (a new, equal object).
    const again = engine.decide({ ...executeInput("ls", []), operation: "op-0" as "execute" });
    assert.notEqual(again, first);
    assert.deepEqual(again, first);
  });
});
