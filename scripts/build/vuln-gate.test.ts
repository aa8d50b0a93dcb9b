import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  type Allowlist,
  allowlistSchema,
  decide,
  type Finding,
  findingsFromNpmAudit,
} from "./vuln-gate.js";

const finding: Finding = {
  id: "GHSA-aaaa-bbbb-cccc",
  package: "left-pad",
  severity: "high",
  title: "prototype pollution",
  url: "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
};
const ran = (findings: Finding[]) => ({ ran: true as const, source: "npm audit", findings });
const unreachable = { ran: false as const, source: "npm audit", error: "405 Method Not Allowed" };
const accept = (expires: string): Allowlist => ({
  findings: [
    { id: finding.id, package: "left-pad", reason: "not reachable from our code", expires },
  ],
});

describe("vulnerability gate", () => {
  it("fails on a finding the allowlist does not accept", () => {
    const v = decide(ran([finding]), { findings: [] }, "2026-12-01");
    assert.equal(v.ok, false);
    assert.match(v.lines.join("\n"), /FAIL: left-pad GHSA-aaaa-bbbb-cccc \(high\)/);
  });

  it("passes an accepted finding until its expiry, and fails after it", () => {
    assert.equal(decide(ran([finding]), accept("2026-12-31"), "2026-12-31").ok, true);
    const expired = decide(ran([finding]), accept("2026-12-31"), "2027-01-01");
    assert.equal(expired.ok, false);
    assert.match(expired.lines.join("\n"), /expired on 2026-12-31/);
  });

  it("passes a clean report", () => {
    const v = decide(ran([]), { findings: [] }, "2026-12-01");
    assert.equal(v.ok, true);
    assert.match(v.lines.join("\n"), /0 finding\(s\).*passed/);
  });

  it("fails loudly when the advisory source cannot be asked and nothing waives it", () => {
    const v = decide(unreachable, { findings: [] }, "2026-12-01");
    assert.equal(v.ok, false);
    assert.match(v.lines.join("\n"), /VULNERABILITY GATE DID NOT RUN/);
  });

  it("a waiver for an unreachable source holds until its expiry, and still says no check ran", () => {
    const waived: Allowlist = {
      findings: [],
      unavailable: { reason: "the registry refuses audit requests", expires: "2027-01-31" },
    };
    const v = decide(unreachable, waived, "2027-01-31");
    assert.equal(v.ok, true);
    assert.match(v.lines.join("\n"), /DID NOT RUN[\s\S]*NOT checked/);
    assert.equal(decide(unreachable, waived, "2027-02-01").ok, false);
  });

  it("rejects allowlist entries without a reason or a proper expiry", () => {
    const bad = { findings: [{ id: "GHSA-x", package: "p", reason: "", expires: "soon" }] };
    assert.equal(allowlistSchema.safeParse(bad).success, false);
  });

  it("the checked-in allowlist parses", () => {
    const file = join(import.meta.dirname, "..", "..", "security", "vuln-allowlist.json");
    assert.equal(allowlistSchema.safeParse(JSON.parse(readFileSync(file, "utf8"))).success, true);
  });

  it("reads findings from npm audit's report format", () => {
    const report = {
      vulnerabilities: {
        "left-pad": {
          via: [
            {
              source: 1096,
              name: "left-pad",
              title: "prototype pollution",
              url: "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
              severity: "high",
            },
          ],
        },
        "uses-left-pad": { via: ["left-pad"] },
      },
    };
    assert.deepEqual(findingsFromNpmAudit(report), [finding]);
  });
});
