import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Obligations, ZERO_LIMITS } from "./decision.js";
import type { SandboxLimits } from "./input.js";
import { applyObligations } from "./obligations.js";

const caps: Obligations = {
  max_timeout_seconds: 300,
  network: "none",
  limits: {
    memory_bytes: 1000,
    max_processes: 64,
    max_file_size_bytes: 500,
    max_open_files: 256,
    cpu_seconds: 300,
    max_output_bytes: 10000,
  },
};

const zero: SandboxLimits = { ...ZERO_LIMITS };

describe("applyObligations", () => {
  it("takes the caps when nothing is requested (0)", () => {
    const eff = applyObligations(
      { timeout_seconds: 0, network: "unspecified", limits: zero },
      caps,
    );
    assert.deepEqual(eff, { timeout_seconds: 300, network: "none", limits: caps.limits });
  });

  it("keeps requests below the caps", () => {
    const eff = applyObligations(
      {
        timeout_seconds: 5,
        network: "none",
        limits: { ...zero, memory_bytes: 10, max_processes: 2 },
      },
      caps,
    );
    assert.equal(eff.timeout_seconds, 5);
    assert.equal(eff.limits.memory_bytes, 10);
    assert.equal(eff.limits.max_processes, 2);
    assert.equal(eff.limits.cpu_seconds, 300);
  });

  it("clamps requests above the caps", () => {
    const eff = applyObligations(
      { timeout_seconds: 9999, network: "none", limits: { ...zero, memory_bytes: 1e12 } },
      caps,
    );
    assert.equal(eff.timeout_seconds, 300);
    assert.equal(eff.limits.memory_bytes, 1000);
  });

  it("treats negative and non-finite requests as the cap", () => {
    const eff = applyObligations(
      {
        timeout_seconds: -1,
        network: "none",
        limits: { ...zero, memory_bytes: Number.NaN, max_processes: Number.POSITIVE_INFINITY },
      },
      caps,
    );
    assert.equal(eff.timeout_seconds, 300);
    assert.equal(eff.limits.memory_bytes, 1000);
    assert.equal(eff.limits.max_processes, 64);
  });

  it("grants host network only when requested and allowed", () => {
    const host: Obligations = { ...caps, network: "host" };
    const req = { timeout_seconds: 0, limits: zero };
    assert.equal(applyObligations({ ...req, network: "host" }, host).network, "host");
    assert.equal(applyObligations({ ...req, network: "none" }, host).network, "none");
    assert.equal(applyObligations({ ...req, network: "unspecified" }, host).network, "none");
    assert.equal(applyObligations({ ...req, network: "host" }, caps).network, "none");
  });

  it('gives "restricted" with the obligation\'s egress only when both say so, else none', () => {
    const egress = { allow_hosts: ["pypi.org"], max_bytes: 1000, max_connections: 2 };
    const restricted: Obligations = { ...caps, network: "restricted", egress };
    const req = (network: "restricted" | "host" | "unspecified") => ({
      timeout_seconds: 0,
      network,
      limits: zero,
    });
    assert.deepEqual(applyObligations(req("restricted"), restricted).egress, egress);
    assert.equal(applyObligations(req("restricted"), restricted).network, "restricted");
    assert.equal(applyObligations(req("restricted"), caps).network, "none");
    assert.equal(applyObligations(req("host"), restricted).network, "none");
    assert.equal(applyObligations(req("unspecified"), restricted).network, "none");
    // Fail closed: no hosts or zero caps are no network at all.
    for (const bad of [
      { ...egress, allow_hosts: [] },
      { ...egress, max_bytes: 0 },
      { ...egress, max_connections: 0 },
    ]) {
      const eff = applyObligations(req("restricted"), { ...restricted, egress: bad });
      assert.equal(eff.network, "none");
      assert.equal(eff.egress, undefined);
    }
    const { egress: _none, ...withoutEgress } = restricted;
    assert.equal(applyObligations(req("restricted"), withoutEgress).network, "none");
  });
});
