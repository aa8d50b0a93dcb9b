import assert from "node:assert/strict";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { createPolicyEngine, type ReloadResult } from "./engine.js";
import type { PolicyInput } from "./input.js";
import { buildRegoBundle } from "./tools.js";

const logger = pino({ level: "silent" });

const OBLIGATIONS = `{
  "max_timeout_seconds": 10,
  "network": "none",
  "limits": {
    "memory_bytes": 1, "max_processes": 1, "max_file_size_bytes": 1,
    "max_open_files": 1, "cpu_seconds": 1, "max_output_bytes": 1
  }
}`;

/** A well-formed policy that allows everything and says which fixture it is. */
function allowAll(marker: string): string {
  return `package mcp.authz
decision := {"allow": true, "deny_reasons": [], "warnings": ["${marker}"], "obligations": ${OBLIGATIONS}}
`;
}

/** A well-formed policy that denies everything. */
const DENY_ALL = `package mcp.authz
decision := {"allow": false, "deny_reasons": ["fixture says no"], "warnings": [], "obligations": ${OBLIGATIONS}}
`;

const input = {
  principal: { sub: "a", roles: [], tenant: "t", scopes: [] },
  operation: "get_task",
} as unknown as PolicyInput;

/** Collects onReload results and lets a test wait for the next one. */
function reloadRecorder() {
  const results: ReloadResult[] = [];
  let waiter: ((r: ReloadResult) => void) | undefined;
  return {
    results,
    onReload(r: ReloadResult) {
      results.push(r);
      waiter?.(r);
      waiter = undefined;
    },
    next(): Promise<ReloadResult> {
      return new Promise((resolve) => {
        waiter = resolve;
      });
    },
  };
}

describe("policy engine fail-closed behaviour", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "policy-reload-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports the new revision after a reload even when the policy result text is unchanged", async () => {
    const path = join(dir, "same-result.tar.gz");
    await buildRegoBundle({
      modules: { "p.rego": allowAll("same") },
      outPath: path,
      revision: "rev-a",
    });
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    try {
      const a1 = engine.decide(input);
      assert.equal(a1.revision, "rev-a");
      assert.equal(engine.decide(input), a1, "a repeated result is converted once");
      await buildRegoBundle({
        modules: { "p.rego": allowAll("same") },
        outPath: path,
        revision: "rev-b",
      });
      assert.equal(await engine.reload(), true);
      const b1 = engine.decide(input);
      assert.equal(b1.revision, "rev-b");
      assert.deepEqual(b1.warnings, a1.warnings);
    } finally {
      engine.close();
    }
  });

  it("denies everything with a clear reason when the bundle is missing", async () => {
    const rec = reloadRecorder();
    const path = join(dir, "missing.tar.gz");
    const engine = await createPolicyEngine({
      bundlePath: path,
      logger,
      pollIntervalMs: 0,
      onReload: rec.onReload,
    });
    const d = engine.decide(input);
    assert.equal(d.allow, false);
    assert.equal(d.denyReasons.length, 1);
    assert.match(d.denyReasons[0] ?? "", /policy unavailable, denying by default/);
    assert.match(d.denyReasons[0] ?? "", /cannot read the policy bundle/);
    assert.equal(d.revision, "");
    assert.equal(d.obligations.network, "none");
    assert.equal(engine.revision(), "");
    assert.equal(engine.stats().loadFailures, 1);
    assert.deepEqual(
      rec.results.map((r) => r.ok),
      [false],
    );
    engine.close();
  });

  it("denies everything when the bundle is corrupt", async () => {
    const path = join(dir, "corrupt.tar.gz");
    await writeFile(path, "this is not a gzip stream");
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    const d = engine.decide(input);
    assert.equal(d.allow, false);
    assert.match(d.denyReasons[0] ?? "", /not a readable \.tar\.gz/);
    engine.close();
  });

  it("denies when the bundle lacks the entrypoint", async () => {
    const path = await buildRegoBundle({
      outPath: join(dir, "other-entry.tar.gz"),
      modules: { "p.rego": "package other\nx := true\n" },
      entrypoint: "other/x",
    });
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    const d = engine.decide(input);
    assert.equal(d.allow, false);
    assert.match(d.denyReasons[0] ?? "", /no entrypoint mcp\/authz\/decision/);
    engine.close();
  });

  it("denies when the result has the wrong shape", async () => {
    const path = await buildRegoBundle({
      outPath: join(dir, "shape.tar.gz"),
      modules: { "p.rego": 'package mcp.authz\ndecision := {"allow": true}\n' },
    });
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    const d = engine.decide(input);
    assert.equal(d.allow, false);
    assert.match(
      d.denyReasons[0] ?? "",
      /policy evaluation failed.*deny_reasons is not a string array/,
    );
    assert.equal(engine.stats().evaluationErrors, 1);
    engine.close();
  });

  it("denies when allow=true comes with deny reasons", async () => {
    const path = await buildRegoBundle({
      outPath: join(dir, "inconsistent.tar.gz"),
      modules: {
        "p.rego": `package mcp.authz
decision := {"allow": true, "deny_reasons": ["but no"], "warnings": [], "obligations": ${OBLIGATIONS}}
`,
      },
    });
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    const d = engine.decide(input);
    assert.equal(d.allow, false);
    assert.match(d.denyReasons[0] ?? "", /allow is true but deny_reasons is not empty/);
    engine.close();
  });

  it("denies when the decision is undefined", async () => {
    const path = await buildRegoBundle({
      outPath: join(dir, "undefined.tar.gz"),
      modules: { "p.rego": `package mcp.authz\ndecision := {"allow": true} if input.never\n` },
    });
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    const d = engine.decide(input);
    assert.equal(d.allow, false);
    assert.match(d.denyReasons[0] ?? "", /no decision/);
    engine.close();
  });

  it("denies when evaluation throws, and keeps working afterwards", async () => {
    // Two complete definitions with different values: a conflict error at run time.
    const path = await buildRegoBundle({
      outPath: join(dir, "throws.tar.gz"),
      modules: {
        "p.rego": `package mcp.authz
decision := {"allow": false, "deny_reasons": ["a"], "warnings": [], "obligations": ${OBLIGATIONS}} if input.a
decision := {"allow": false, "deny_reasons": ["b"], "warnings": [], "obligations": ${OBLIGATIONS}} if input.b
`,
      },
    });
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    const bad = engine.decide({ ...input, a: true, b: true } as unknown as PolicyInput);
    assert.equal(bad.allow, false);
    assert.match(bad.denyReasons[0] ?? "", /policy evaluation failed, denying by default/);
    assert.equal(engine.stats().evaluationErrors, 1);
    const good = engine.decide({ ...input, a: true } as unknown as PolicyInput);
    assert.deepEqual(good.denyReasons, ["a"]);
    engine.close();
  });

  it("falls back to the tarball's sha256 when the manifest has no revision", async () => {
    const path = await buildRegoBundle({
      outPath: join(dir, "norev.tar.gz"),
      modules: { "p.rego": allowAll("norev") },
    });
    const engine = await createPolicyEngine({ bundlePath: path, logger, pollIntervalMs: 0 });
    assert.match(engine.revision(), /^sha256:[0-9a-f]{64}$/);
    assert.equal(engine.decide(input).allow, true);
    engine.close();
  });

  it("rejects a bundle whose revision differs from expectedRevision", async () => {
    const path = await buildRegoBundle({
      outPath: join(dir, "rev.tar.gz"),
      modules: { "p.rego": allowAll("rev") },
      revision: "r1",
    });
    const engine = await createPolicyEngine({
      bundlePath: path,
      logger,
      pollIntervalMs: 0,
      expectedRevision: "r2",
    });
    const d = engine.decide(input);
    assert.equal(d.allow, false);
    assert.match(d.denyReasons[0] ?? "", /has revision r1, expected r2/);
    engine.close();
  });
});

describe("policy engine hot reload", () => {
  let dir: string;
  // The engine's poll timer is unref()'d so it never keeps a process alive;
  // this timer keeps the test process alive while it waits for the watcher.
  let keepAlive: NodeJS.Timeout;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "policy-hot-"));
    keepAlive = setInterval(() => {}, 1000);
  });
  after(async () => {
    clearInterval(keepAlive);
    await rm(dir, { recursive: true, force: true });
  });

  it("swaps in a new bundle, rejects an invalid one and keeps the last good", async () => {
    const live = join(dir, "bundle.tar.gz");
    await buildRegoBundle({
      outPath: live,
      modules: { "p.rego": allowAll("first") },
      revision: "one",
    });
    const rec = reloadRecorder();
    const engine = await createPolicyEngine({
      bundlePath: live,
      logger,
      pollIntervalMs: 20,
      onReload: rec.onReload,
    });
    try {
      assert.equal(engine.revision(), "one");
      assert.deepEqual(engine.decide(input).warnings, ["first"]);

      // A new valid bundle is picked up by the watcher.
      let next = rec.next();
      await buildRegoBundle({ outPath: live, modules: { "p.rego": DENY_ALL }, revision: "two" });
      assert.deepEqual(await next, { ok: true, revision: "two" });
      assert.equal(engine.revision(), "two");
      const denied = engine.decide(input);
      assert.equal(denied.allow, false);
      assert.deepEqual(denied.denyReasons, ["fixture says no"]);
      assert.equal(denied.revision, "two");

      // An invalid bundle is rejected; the last good one stays in use.
      next = rec.next();
      const staged = `${live}.tmp`;
      await writeFile(staged, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02]));
      await rename(staged, live);
      const rejected = await next;
      assert.equal(rejected.ok, false);
      assert.equal(rejected.revision, "two");
      assert.match(rejected.error ?? "", /not a readable \.tar\.gz/);
      assert.equal(engine.revision(), "two");
      assert.deepEqual(engine.decide(input).denyReasons, ["fixture says no"]);
      assert.equal(engine.stats().loadFailures, 1);

      // A later valid bundle is accepted again.
      next = rec.next();
      await buildRegoBundle({
        outPath: live,
        modules: { "p.rego": allowAll("third") },
        revision: "three",
      });
      assert.deepEqual(await next, { ok: true, revision: "three" });
      assert.deepEqual(engine.decide(input).warnings, ["third"]);
      assert.equal(engine.stats().loads, 3);
    } finally {
      engine.close();
    }
  });

  it("starts denying, then loads a bundle that appears later", async () => {
    const live = join(dir, "late.tar.gz");
    const rec = reloadRecorder();
    const engine = await createPolicyEngine({
      bundlePath: live,
      logger,
      pollIntervalMs: 20,
      onReload: rec.onReload,
    });
    try {
      assert.equal(engine.decide(input).allow, false);
      const next = rec.next();
      await buildRegoBundle({
        outPath: live,
        modules: { "p.rego": allowAll("late") },
        revision: "late",
      });
      assert.deepEqual(await next, { ok: true, revision: "late" });
      assert.equal(engine.decide(input).allow, true);
    } finally {
      engine.close();
    }
  });

  it("reload() loads the current file on demand", async () => {
    const live = join(dir, "manual.tar.gz");
    await buildRegoBundle({ outPath: live, modules: { "p.rego": allowAll("m1") }, revision: "m1" });
    const engine = await createPolicyEngine({ bundlePath: live, logger, pollIntervalMs: 0 });
    try {
      await buildRegoBundle({ outPath: live, modules: { "p.rego": DENY_ALL }, revision: "m2" });
      assert.equal(engine.revision(), "m1");
      assert.equal(await engine.reload(), true);
      assert.equal(engine.revision(), "m2");
      await writeFile(live, "garbage");
      assert.equal(await engine.reload(), false);
      assert.equal(engine.revision(), "m2");
    } finally {
      engine.close();
    }
  });
});
