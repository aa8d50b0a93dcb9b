/**
 * Compares the decisions of the policy at a git revision with the policy in
 * the working tree on a generated corpus (common/src/policy/corpus.ts), both
 * evaluated by the pinned OPA CLI. Use it to check that a rewrite of the Rego
 * (for speed, for clarity) changes no decision; the Go-vs-wasm parity test in
 * common/src/policy/default-policy.test.ts then checks the wasm build.
 *
 *   node --import tsx test/tools/policy-diff.ts HEAD~1            # 3,000 inputs, seed 1
 *   node --import tsx test/tools/policy-diff.ts main 5000 7
 *
 * Prints every difference (at most 20) and exits 1 if there is any.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { policyCorpus } from "../../common/src/policy/corpus.js";
import { type Decision, parseDecision } from "../../common/src/policy/decision.js";
import type { PolicyInput } from "../../common/src/policy/input.js";
import { evalWithOpa, REPO_ROOT } from "../../common/src/policy/tools.js";

const run = promisify(execFile);

function normalise(raw: unknown): Decision | string {
  try {
    return parseDecision(raw, "");
  } catch (err) {
    return `bad shape: ${err instanceof Error ? err.message : String(err)}`;
  }
}

async function main(): Promise<number> {
  const [ref, countArg, seedArg] = process.argv.slice(2);
  if (!ref) {
    console.error("usage: node --import tsx test/tools/policy-diff.ts <git-ref> [count] [seed]");
    return 2;
  }
  const count = Number(countArg ?? 3000);
  const seed = Number(seedArg ?? 1);
  if (!Number.isSafeInteger(count) || count <= 0 || !Number.isSafeInteger(seed)) {
    console.error("policy-diff: count and seed must be integers, count > 0");
    return 2;
  }
  const work = await mkdtemp(join(tmpdir(), "policy-diff-"));
  try {
    const tarPath = join(work, "old.tar");
    await run("git", ["-C", REPO_ROOT, "archive", "-o", tarPath, ref, "policies"]);
    await run("tar", ["-xf", tarPath, "-C", work]);
    const base = JSON.parse(
      await readFile(join(REPO_ROOT, "docs/policy/examples/execute-allowed.json"), "utf8"),
    ) as PolicyInput;
    const corpus = policyCorpus(base, count, seed);
    const before = await evalWithOpa(corpus, work);
    const after = await evalWithOpa(corpus);
    let differences = 0;
    let allowed = 0;
    corpus.forEach((input, i) => {
      const a = JSON.stringify(normalise(before[i]));
      const b = JSON.stringify(normalise(after[i]));
      if ((normalise(after[i]) as Decision).allow === true) allowed++;
      if (a === b) return;
      differences++;
      if (differences <= 20) {
        console.log(`case ${i}: ${JSON.stringify(input).slice(0, 400)}`);
        console.log(`  ${ref}: ${a.slice(0, 400)}`);
        console.log(`  working tree: ${b.slice(0, 400)}`);
      }
    });
    console.log(
      `policy-diff: ${count} inputs (seed ${seed}), ${allowed} allowed by the working tree, ${differences} decisions differ from ${ref}`,
    );
    return differences === 0 ? 0 : 1;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

process.exitCode = await main();
