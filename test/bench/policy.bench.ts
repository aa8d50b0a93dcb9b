/**
 * Policy benchmark: decisions/s and p50/p99 latency of the default bundle,
 * evaluated in-process through PolicyEngine.decide(), with baselines measured
 * in the same run:
 *   - a trivial JS function returning a constant decision;
 *   - a trivial wasm policy (constant decision) through the same engine, which
 *     isolates the fixed cost of the opa-wasm SDK (JSON in/out, heap reset).
 *
 *   npm run bench:policy          (node --import tsx test/bench/policy.bench.ts)
 *   BENCH_ITERATIONS=50000 npm run bench:policy
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { Decision } from "../../common/src/policy/decision.js";
import { createPolicyEngine } from "../../common/src/policy/engine.js";
import type { PolicyInput } from "../../common/src/policy/input.js";
import { buildPolicyBundle, buildRegoBundle, REPO_ROOT } from "../../common/src/policy/tools.js";

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 20000);
const WARMUP = Math.min(2000, ITERATIONS);
const TARGET_P99_US = 100;

interface Stats {
  name: string;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
}

function measure(name: string, inputs: PolicyInput[], fn: (i: PolicyInput) => Decision): Stats {
  for (let i = 0; i < WARMUP; i++) fn(inputs[i % inputs.length] as PolicyInput);
  const samples = new Float64Array(ITERATIONS);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = process.hrtime.bigint();
    fn(inputs[i % inputs.length] as PolicyInput);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  const totalS = Number(process.hrtime.bigint() - start) / 1e9;
  samples.sort();
  const at = (q: number) =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
  return { name, perSecond: ITERATIONS / totalS, p50: at(0.5), p99: at(0.99), max: at(1) };
}

async function main(): Promise<void> {
  const logger = pino({ level: "silent" });
  const dir = await mkdtemp(join(tmpdir(), "policy-bench-"));
  try {
    const bundlePath = await buildPolicyBundle({ outPath: join(dir, "bundle.tar.gz") });
    const trivialPath = await buildRegoBundle({
      outPath: join(dir, "trivial.tar.gz"),
      modules: {
        "p.rego": `package mcp.authz
decision := {"allow": true, "deny_reasons": [], "warnings": [], "obligations": {
  "max_timeout_seconds": 300, "network": "none",
  "limits": {"memory_bytes": 1, "max_processes": 1, "max_file_size_bytes": 1,
             "max_open_files": 1, "cpu_seconds": 1, "max_output_bytes": 1}}}
`,
      },
      revision: "trivial",
    });
    const engine = await createPolicyEngine({ bundlePath, logger, pollIntervalMs: 0 });
    const trivial = await createPolicyEngine({
      bundlePath: trivialPath,
      logger,
      pollIntervalMs: 0,
    });

    const examples = join(REPO_ROOT, "docs/policy/examples");
    const load = async (n: string) =>
      JSON.parse(await readFile(join(examples, n), "utf8")) as PolicyInput;
    const mixed = await Promise.all(
      [
        "execute-allowed.json",
        "execute-denied.json",
        "viewer-read-allowed.json",
        "write-git-hook-denied.json",
        "admin-cancel-task-allowed.json",
        "execute-network-host-allowed.json",
      ].map(load),
    );
    const allowedExec = [await load("execute-allowed.json")];
    const shellExec = [
      {
        ...(allowedExec[0] as PolicyInput),
        command: {
          command: "bash",
          args: ["-c", "cd src && npm test 2>&1 | tee log.txt; echo done"],
          env: { CI: "1", LANG: "C.UTF-8" },
          cwd: "",
          timeout_seconds: 60,
        },
      },
    ];

    const constant: Decision = trivial.decide(allowedExec[0] as PolicyInput);
    const jsBaseline = (i: PolicyInput): Decision =>
      i.operation === "execute" ? constant : { ...constant, allow: false };

    const results = [
      measure("baseline: trivial JS function", mixed, jsBaseline),
      measure("baseline: trivial wasm policy", mixed, (i) => trivial.decide(i)),
      measure("default policy: mixed examples", mixed, (i) => engine.decide(i)),
      measure("default policy: allowed execute", allowedExec, (i) => engine.decide(i)),
      measure("default policy: bash -c pipeline", shellExec, (i) => engine.decide(i)),
    ];
    const wasmBase = results[1] as Stats;

    console.log(
      `policy bench: node ${process.version}, ${ITERATIONS} iterations after ${WARMUP} warm-up, revision ${engine.revision()}`,
    );
    console.log(
      [
        "case".padEnd(36),
        "decisions/s".padStart(12),
        "p50 µs".padStart(9),
        "p99 µs".padStart(9),
        "max µs".padStart(9),
        "p99 vs wasm baseline".padStart(22),
      ].join(" "),
    );
    for (const r of results) {
      console.log(
        [
          r.name.padEnd(36),
          r.perSecond.toFixed(0).padStart(12),
          r.p50.toFixed(1).padStart(9),
          r.p99.toFixed(1).padStart(9),
          r.max.toFixed(1).padStart(9),
          `${(r.p99 / wasmBase.p99).toFixed(2)}x`.padStart(22),
        ].join(" "),
      );
    }
    const worst = Math.max(...results.slice(2).map((r) => r.p99));
    console.log(
      `target p99 ≤ ${TARGET_P99_US} µs per decision: ${worst <= TARGET_P99_US ? "met" : "NOT met"} (worst default-policy p99 ${worst.toFixed(1)} µs)`,
    );
    engine.close();
    trivial.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
