import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DecisionShapeError, denyDecision, parseDecision } from "./decision.js";

const limits = {
  memory_bytes: 1024,
  max_processes: 2,
  max_file_size_bytes: 3,
  max_open_files: 4,
  cpu_seconds: 5,
  max_output_bytes: 6,
};

function raw(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    allow: true,
    deny_reasons: [],
    warnings: ["w"],
    obligations: { max_timeout_seconds: 30, network: "none", limits },
    ...overrides,
  };
}

describe("parseDecision", () => {
  it("carries the workspace quota obligation and refuses a malformed one", () => {
    const workspace = { max_bytes: 1 << 30, max_inodes: 100_000 };
    const obligations = { max_timeout_seconds: 30, network: "none", limits, workspace };
    assert.deepEqual(parseDecision(raw({ obligations }), "rev").obligations.workspace, workspace);
    for (const bad of [{ max_bytes: 0, max_inodes: 1 }, { max_bytes: 1 }, "1 GiB"]) {
      assert.throws(
        () => parseDecision(raw({ obligations: { ...obligations, workspace: bad } }), "rev"),
        /obligations.workspace needs positive integers/,
      );
    }
  });

  it("converts a well-formed result", () => {
    const d = parseDecision(raw(), "rev");
    assert.deepEqual(d, {
      allow: true,
      denyReasons: [],
      warnings: ["w"],
      obligations: { max_timeout_seconds: 30, network: "none", limits },
      revision: "rev",
      operations: [],
      tools: [],
    });
  });

  it("parses an execute decision's exec obligation and rejects a malformed one", () => {
    const exec = {
      allowed_programs: ["cat"],
      denied_programs: { dd: "no dd" },
      denied_prefixes: { "mkfs.": "no mkfs" },
      workspace_exec: false,
    };
    const d = parseDecision(
      raw({ obligations: { max_timeout_seconds: 30, network: "none", limits, exec } }),
      "rev",
    );
    assert.deepEqual(d.obligations.exec, exec);
    for (const bad of [
      { ...exec, workspace_exec: "no" },
      { ...exec, allowed_programs: "cat" },
      { ...exec, denied_programs: { dd: 1 } },
      [],
    ]) {
      assert.throws(
        () =>
          parseDecision(
            raw({ obligations: { max_timeout_seconds: 30, network: "none", limits, exec: bad } }),
            "rev",
          ),
        DecisionShapeError,
      );
    }
  });

  it("adds a reason to a denial that has none", () => {
    const d = parseDecision(raw({ allow: false }), "rev");
    assert.equal(d.allow, false);
    assert.deepEqual(d.denyReasons, ["the policy denied the request without a reason"]);
  });

  it("drops unknown limit fields", () => {
    const d = parseDecision(
      raw({
        obligations: { max_timeout_seconds: 1, network: "host", limits: { ...limits, x: 9 } },
      }),
      "r",
    );
    assert.deepEqual(d.obligations.limits, limits);
    assert.equal(d.obligations.network, "host");
  });

  it('parses network "restricted" with its egress obligation', () => {
    const egress = {
      allow_hosts: ["pypi.org", "*.example.com:443"],
      max_bytes: 10,
      max_connections: 2,
    };
    const d = parseDecision(
      raw({ obligations: { max_timeout_seconds: 1, network: "restricted", limits, egress } }),
      "r",
    );
    assert.equal(d.obligations.network, "restricted");
    assert.deepEqual(d.obligations.egress, egress);
  });

  const bad: [string, unknown][] = [
    [
      "egress hosts not strings",
      raw({
        obligations: {
          max_timeout_seconds: 1,
          network: "restricted",
          limits,
          egress: { allow_hosts: [1], max_bytes: 1, max_connections: 1 },
        },
      }),
    ],
    [
      "egress cap negative",
      raw({
        obligations: {
          max_timeout_seconds: 1,
          network: "restricted",
          limits,
          egress: { allow_hosts: [], max_bytes: -1, max_connections: 1 },
        },
      }),
    ],
    ["not an object", "allow"],
    ["an array", [raw()]],
    ["allow not boolean", raw({ allow: "true" })],
    ["deny_reasons missing", raw({ deny_reasons: undefined })],
    ["deny_reasons with numbers", raw({ allow: false, deny_reasons: [1] })],
    ["warnings not array", raw({ warnings: "w" })],
    ["obligations missing", raw({ obligations: undefined })],
    ["timeout zero", raw({ obligations: { max_timeout_seconds: 0, network: "none", limits } })],
    [
      "timeout fractional",
      raw({ obligations: { max_timeout_seconds: 1.5, network: "none", limits } }),
    ],
    [
      "network unknown",
      raw({ obligations: { max_timeout_seconds: 1, network: "bridge", limits } }),
    ],
    ["limits missing", raw({ obligations: { max_timeout_seconds: 1, network: "none" } })],
    [
      "a limit negative",
      raw({
        obligations: {
          max_timeout_seconds: 1,
          network: "none",
          limits: { ...limits, cpu_seconds: -1 },
        },
      }),
    ],
    [
      "a limit missing",
      raw({
        obligations: {
          max_timeout_seconds: 1,
          network: "none",
          limits: { ...limits, max_open_files: undefined },
        },
      }),
    ],
    ["allow with reasons", raw({ deny_reasons: ["no"] })],
  ];
  for (const [name, value] of bad) {
    it(`rejects a result with ${name}`, () => {
      assert.throws(() => parseDecision(value, "r"), DecisionShapeError);
    });
  }
});

describe("denyDecision", () => {
  it("denies with the reason, no network and zero caps", () => {
    const d = denyDecision("because", "r1");
    assert.equal(d.allow, false);
    assert.deepEqual(d.denyReasons, ["because"]);
    assert.equal(d.obligations.network, "none");
    assert.equal(d.obligations.max_timeout_seconds, 0);
    assert.equal(d.obligations.limits.memory_bytes, 0);
    assert.equal(d.revision, "r1");
  });

  it("returns independent objects", () => {
    const a = denyDecision("x", "");
    a.obligations.limits.memory_bytes = 5;
    assert.equal(denyDecision("x", "").obligations.limits.memory_bytes, 0);
  });
});
