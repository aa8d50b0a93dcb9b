import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DEFAULT_SANDBOX_LIMITS } from "./limits.js";
import { createSandbox } from "./sandbox.js";

describe("requireCgroups", () => {
  it("without a usable cgroup the runner refuses tasks instead of running them with rlimits only", async () => {
    const sandbox = createSandbox({ cgroups: "off", requireCgroups: true });
    const r = await sandbox.readiness();
    assert.equal(r.ready, false);
    assert.match(r.problem, /per-task cgroups are required \(requireCgroups: true\)/);
    assert.match(r.cgroup, /^not used: disabled by configuration/);
    assert.ok(!r.limitLayers.some((l) => l.startsWith("cgroup-")));
    const dir = await mkdtemp(join(tmpdir(), "mcpg-require-cg-"));
    try {
      await assert.rejects(
        sandbox.spawn(
          {
            command: "true",
            args: [],
            env: {},
            cwd: "",
            workspaceDir: dir,
            network: "none",
            timeoutMs: 5000,
            limits: DEFAULT_SANDBOX_LIMITS,
          },
          { onOutput: () => undefined },
        ),
        (e: unknown) => (e as { code?: string }).code === "sandbox_unavailable",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("with cgroups off and not required, tasks run on the rlimit layers and say so", async () => {
    const sandbox = createSandbox({ cgroups: "off" });
    const r = await sandbox.readiness();
    assert.equal(r.problem, "");
    assert.equal(r.ready, true);
    assert.ok(r.limitLayers.includes("rlimits"));
    assert.ok(!r.limitLayers.some((l) => l.startsWith("cgroup-")));
  });
});
