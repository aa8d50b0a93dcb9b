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
});
