/**
 * Policy benchmark: decisions/s and p50/p99 latency of the default bundle,
 * evaluated in-process through PolicyEngine.decide() (the edge's code path:
 * JSON in, wasm opa_eval, JSON out, shape validation), with baselines measured
 * in the same run:
 *   - a trivial JS function returning a constant decision;
 *   - a trivial wasm policy (constant decision) through the same engine, which
 *     isolates the fixed cost of the engine and the OPA wasm runtime (input
 *     JSON serialised and parsed in wasm, result dumped and parsed).
 * The engine has no decision cache: the policy is evaluated for every
 * decision. It only reuses the Decision parsed from a result text it has seen
 * before (identical bytes out of wasm), which repeated results hit, the
 * trivial baseline always. The "distinct inputs" case gives every iteration
 * its own command line, so no input-keyed cache could help.
 * Cases run round-robin in chunks, so machine load hits all of them alike;
 * the load average is printed before and after.
 *
 *   npm run bench:policy          (node --import tsx test/bench/policy.bench.ts)
 *   BENCH_ITERATIONS=50000 npm run bench:policy
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { Decision } from "../../common/src/policy/decision.js";
import { createPolicyEngine } from "../../common/src/policy/engine.js";
import type { PolicyInput } from "../../common/src/policy/input.js";
import { buildPolicyBundle, buildRegoBundle, REPO_ROOT } from "../../common/src/policy/tools.js";

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 20000);
const WARMUP = Math.min(2000, ITERATIONS);
/** Iterations of one case before the next case runs (round-robin). */
const CHUNK = 500;
const TARGET_P99_US = 100;

interface Stats {
  name: string;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
}

interface Case {
  name: string;
  inputs: PolicyInput[];
  fn: (i: PolicyInput) => Decision;
}

/** Runs every case for WARMUP then ITERATIONS decisions, round-robin in chunks of CHUNK. */
function measureAll(cases: Case[]): Stats[] {
  const samples = cases.map(() => new Float64Array(ITERATIONS));
  const busyNs = cases.map(() => 0n);
  for (const c of cases) {
    for (let i = 0; i < WARMUP; i++) c.fn(c.inputs[i % c.inputs.length] as PolicyInput);
  }
  for (let done = 0; done < ITERATIONS; done += CHUNK) {
    const n = Math.min(CHUNK, ITERATIONS - done);
    cases.forEach((c, k) => {
      const out = samples[k] as Float64Array;
      const start = process.hrtime.bigint();
      for (let i = done; i < done + n; i++) {
        const input = c.inputs[(WARMUP + i) % c.inputs.length] as PolicyInput;
        const t0 = process.hrtime.bigint();
        c.fn(input);
        out[i] = Number(process.hrtime.bigint() - t0) / 1000;
      }
      busyNs[k] = (busyNs[k] ?? 0n) + (process.hrtime.bigint() - start);
    });
  }
  return cases.map((c, k) => {
    const sorted = (samples[k] as Float64Array).sort();
    const at = (q: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    const perSecond = ITERATIONS / (Number(busyNs[k]) / 1e9);
    return { name: c.name, perSecond, p50: at(0.5), p99: at(0.99), max: at(1) };
  });
}

/**
 * `count` execute inputs, each with its own command line (plain commands,
 * `bash -c` pipelines, wrapper chains, and denied network use), env and timeout.
 */
function distinctInputs(base: PolicyInput, count: number): PolicyInput[] {
  const tools = ["ls", "cat", "grep", "python3", "node", "git", "make", "npm"];
  const out: PolicyInput[] = [];
  for (let i = 0; i < count; i++) {
    const tool = tools[i % tools.length] as string;
    const shapes: [string, string[]][] = [
      [tool, [`src/file-${i}.ts`, `--flag=${i}`]],
      [
        "bash",
        ["-c", `cd src/m${i} && npm test -- --grep case${i} 2>&1 | tee log-${i}.txt; echo ${i}`],
      ],
      ["env", [`RUN=${i}`, "timeout", `${(i % 50) + 1}s`, tool, `job-${i}.py`]],
      ["sh", ["-c", `echo ${i}; curl -s http://h${i}.example/ | wc -l`]],
    ];
    const [command, args] = shapes[i % shapes.length] as [string, string[]];
    out.push({
      ...base,
      command: {
        command,
        args,
        env: { CI: "1", BUILD_ID: String(i) },
        cwd: `src/m${i % 97}`,
        timeout_seconds: (i % 600) + 1,
      },
    });
  }
  return out;
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

    const load0 = loadavg();
    const results = measureAll([
      { name: "baseline: trivial JS function", inputs: mixed, fn: jsBaseline },
      { name: "baseline: trivial wasm policy", inputs: mixed, fn: (i) => trivial.decide(i) },
      { name: "default policy: mixed examples", inputs: mixed, fn: (i) => engine.decide(i) },
      { name: "default policy: allowed execute", inputs: allowedExec, fn: (i) => engine.decide(i) },
      { name: "default policy: bash -c pipeline", inputs: shellExec, fn: (i) => engine.decide(i) },
      {
        name: "default policy: distinct inputs",
        inputs: distinctInputs(allowedExec[0] as PolicyInput, WARMUP + ITERATIONS),
        fn: (i) => engine.decide(i),
      },
    ]);
    const load1 = loadavg();
    const wasmBase = results[1] as Stats;
    const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");

    console.log(
      `policy bench: node ${process.version}, ${ITERATIONS} iterations per case after ${WARMUP} warm-up, round-robin in chunks of ${CHUNK}, revision ${engine.revision()}`,
    );
    console.log(`load average before: ${fmtLoad(load0)}, after: ${fmtLoad(load1)}`);
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
      `target p99 ≤ ${TARGET_P99_US} µs per decision: ${worst <= TARGET_P99_US ? "met" : "NOT met"} (worst default-policy p99 ${worst.toFixed(1)} µs; no decision cache exists; repeated result texts reuse their parsed Decision)`,
    );
    console.log(
      `runtime floor: the trivial wasm policy (no rules) has p99 ${wasmBase.p99.toFixed(1)} µs = ${((100 * wasmBase.p99) / TARGET_P99_US).toFixed(0)} % of the target`,
    );
    engine.close();
    trivial.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
