import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ensureDevPki } from "@mcp-gateway/common/tls";
import { checkRunner } from "./check.js";
import { runnerConfigSchema } from "./config.js";

const V1_DELEGATED = "4:memory:/\n8:pids:/\n0::/\n";

test("runner --check: names each problem of a runner host, and passes a good one", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mcpg-check-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o711); // the sandbox uid must reach the workspaces below it
  const pki = await ensureDevPki({
    dir: join(dir, "pki"),
    edgeIds: ["edge-a"],
    runnerIds: ["r-1"],
    hosts: ["10.0.0.21"],
  });
  const leaf = pki.runners["r-1"];
  assert.ok(leaf);
  const base = {
    id: "r-1",
    dataDir: dir,
    policyBundle: join(dir, "missing-bundle.tar.gz"),
    tls: { caPath: pki.caCertPath, ...leaf },
    allowedEdges: ["edge-a"],
    edges: ["https://edge-a.internal:8444"],
    advertiseUrl: "https://10.0.0.21:9443",
  };
  const opts = { skipSandbox: true, probeEdges: false, selfCgroup: V1_DELEGATED, cgroupRoot: dir };
  const fails = async (input: object, extra = {}) =>
    (await checkRunner(runnerConfigSchema.parse(input), { ...opts, ...extra }))
      .filter((f) => f.level === "fail")
      .map((f) => `${f.subject}: ${f.detail}`);

  // A good certificate: only the (deliberately) missing policy bundle fails.
  assert.deepEqual(await fails(base), [
    `policy: policy bundle ${base.policyBundle} does not exist`,
  ]);

  const wrongId = await fails({ ...base, id: "r-2" });
  assert.ok(
    wrongId.some((f) =>
      /names spiffe:\/\/mcp-gateway\/runner\/r-1, but this runner is r-2/.test(f),
    ),
    wrongId.join("\n"),
  );

  const wrongHost = await fails({ ...base, advertiseUrl: "https://10.9.9.9:9443" });
  assert.ok(
    wrongHost.some((f) => /does not name 10\.9\.9\.9 \(advertiseUrl\)/.test(f)),
    wrongHost.join("\n"),
  );

  const otherCa = await fails({ ...base, tls: { ...base.tls, caPath: leaf.certPath } });
  assert.ok(
    otherCa.some((f) => /does not chain to the CA bundle/.test(f)),
    otherCa.join("\n"),
  );

  const noCgroups = await fails({ ...base, cgroups: "off", requireCgroups: true });
  assert.ok(
    noCgroups.some((f) => /requireCgroups is true: every task would be refused/.test(f)),
    noCgroups.join("\n"),
  );

  // Not delegated, inside the unit: a failure; from a shell or the bootstrap: a warning only.
  const inUnit =
    "4:memory:/system.slice/mcp-gateway-runner.service\n8:pids:/system.slice/mcp-gateway-runner.service\n";
  const undelegated = await fails({ ...base, requireCgroups: true }, { selfCgroup: inUnit });
  assert.ok(
    undelegated.some((f) => /cgroups: no usable cgroup .*Delegate=yes/.test(f)),
    undelegated.join("\n"),
  );
  const fromShell = "4:memory:/user.slice\n8:pids:/user.slice\n";
  assert.ok(
    !(await fails({ ...base, requireCgroups: true }, { selfCgroup: fromShell })).some((f) =>
      f.startsWith("cgroups"),
    ),
  );

  const warnings = (
    await checkRunner(runnerConfigSchema.parse(base), {
      ...opts,
      unknownKeys: ["maxConcurentTasks"],
    })
  ).filter((f) => f.level === "warn");
  assert.ok(warnings.some((f) => f.detail.includes('unknown key "maxConcurentTasks"')));
});
