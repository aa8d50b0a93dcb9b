import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { readBundle } from "./bundle.js";
import type { Decision } from "./decision.js";
import { createPolicyEngine } from "./engine.js";
import type { PolicyInput } from "./input.js";

const run = promisify(execFile);

/** Root of the repository (this file is common/src/policy/tools.ts). */
export const REPO_ROOT: string = resolve(import.meta.dirname, "../../..");

/** Default location of the built bundle. */
export const DEFAULT_BUNDLE_PATH: string = join(REPO_ROOT, "policies/build/bundle.tar.gz");

/** Options for {@link buildPolicyBundle}. */
export interface BuildPolicyBundleOptions {
  /** Where to write the bundle. Default {@link DEFAULT_BUNDLE_PATH}. */
  outPath?: string;
}

/**
 * Builds the default policy bundle with scripts/build-policy.sh (which also
 * installs the pinned OPA if needed, checks and format-checks the Rego).
 * Resolves to the bundle path.
 */
export async function buildPolicyBundle(options: BuildPolicyBundleOptions = {}): Promise<string> {
  const outPath = resolve(options.outPath ?? DEFAULT_BUNDLE_PATH);
  await run("bash", [join(REPO_ROOT, "scripts/build-policy.sh")], {
    cwd: REPO_ROOT,
    env: { ...process.env, OUT: outPath },
    maxBuffer: 16 * 1024 * 1024,
  });
  return outPath;
}

/** Absolute path of the pinned OPA CLI (installs it with scripts/install-opa.sh if missing). */
export async function findOpa(): Promise<string> {
  const { stdout } = await run("bash", [join(REPO_ROOT, "scripts/install-opa.sh")], {
    cwd: REPO_ROOT,
  });
  const lines = stdout.trim().split("\n");
  const path = lines[lines.length - 1];
  if (!path) throw new Error("scripts/install-opa.sh printed no path");
  return path;
}

/** Output of {@link runPolicyTests}. */
export interface PolicyTestResult {
  /** True when `opa test` passed and coverage met the gate. */
  ok: boolean;
  /** Combined stdout and stderr of scripts/test-policy.sh. */
  output: string;
}

/**
 * Runs the Rego unit tests with coverage gate (scripts/test-policy.sh), for
 * `mcp-gateway policy test`. Never rejects because tests fail: see `ok`.
 */
export async function runPolicyTests(): Promise<PolicyTestResult> {
  try {
    const { stdout, stderr } = await run("bash", [join(REPO_ROOT, "scripts/test-policy.sh")], {
      cwd: REPO_ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? e.message ?? ""}` };
  }
}

/**
 * Evaluates one input document (a JSON file) against a bundle, for
 * `mcp-gateway policy eval --input req.json`. Fails closed like the edge: a
 * broken bundle or input gives a denial with the reason.
 *
 * @throws Error only when the input file cannot be read or is not JSON.
 */
export async function evalPolicyFile(bundlePath: string, inputJsonPath: string): Promise<Decision> {
  const input = JSON.parse(await readFile(inputJsonPath, "utf8")) as PolicyInput;
  const engine = await createPolicyEngine({
    bundlePath,
    logger: pino({ level: "silent" }),
    pollIntervalMs: 0,
  });
  try {
    return engine.decide(input);
  } finally {
    engine.close();
  }
}

/**
 * Decides every input with the OPA CLI (the Go evaluator, the reference) on
 * the Rego and data under `root` (policies/mcp, policies/data) and returns the
 * raw `decision` documents in order. For differential tests: the same inputs
 * through the wasm engine, or through another revision of the policy
 * (test/tools/policy-diff.ts), must give the same decisions.
 */
export async function evalWithOpa(
  inputs: readonly unknown[],
  root = REPO_ROOT,
): Promise<unknown[]> {
  const opa = await findOpa();
  const work = await mkdtemp(join(tmpdir(), "opa-eval-"));
  try {
    const inputPath = join(work, "inputs.json");
    await writeFile(inputPath, JSON.stringify({ cases: inputs }));
    const { stdout } = await run(
      opa,
      [
        "eval",
        "--format=json",
        "-d",
        join(root, "policies/mcp"),
        "-d",
        join(root, "policies/data"),
        "-i",
        inputPath,
        "[d | some c in input.cases; d := data.mcp.authz.decision with input as c]",
      ],
      { maxBuffer: 1024 * 1024 * 1024 },
    );
    const out = JSON.parse(stdout) as { result?: { expressions?: { value?: unknown }[] }[] };
    const decisions = out.result?.[0]?.expressions?.[0]?.value;
    if (!Array.isArray(decisions) || decisions.length !== inputs.length) {
      throw new Error(
        `opa eval returned ${Array.isArray(decisions) ? decisions.length : "no"} decisions for ${inputs.length} inputs`,
      );
    }
    return decisions;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Reads a bundle's revision (manifest revision or sha256 of the tarball). */
export async function bundleRevision(bundlePath: string): Promise<string> {
  return (await readBundle(bundlePath)).revision;
}

/** Options for {@link buildRegoBundle}. */
export interface BuildRegoBundleOptions {
  /** Rego modules by file name (e.g. `{ "p.rego": "package mcp.authz ..." }`). */
  modules: Record<string, string>;
  /** Where to write the bundle; written atomically (temp file + rename). */
  outPath: string;
  /** Data document placed in the bundle's data.json. Default `{}`. */
  data?: unknown;
  /** Revision written to the manifest. Default: none (the engine then uses the tarball's sha256). */
  revision?: string;
  /** Entrypoint to build. Default "mcp/authz/decision". */
  entrypoint?: string;
}

/**
 * Builds a wasm bundle from Rego sources given as strings, with the pinned OPA.
 * Meant for tests (fixture policies: deny-all, wrong shapes, …); the default
 * policy is built with {@link buildPolicyBundle}.
 */
export async function buildRegoBundle(options: BuildRegoBundleOptions): Promise<string> {
  const opa = await findOpa();
  const work = await mkdtemp(join(tmpdir(), "rego-bundle-"));
  try {
    const src = join(work, "src");
    await mkdir(src);
    for (const [name, text] of Object.entries(options.modules)) {
      await writeFile(join(src, name), text);
    }
    await writeFile(join(src, "data.json"), JSON.stringify(options.data ?? {}));
    const tmpOut = join(work, "bundle.tar.gz");
    const args = ["build", "-t", "wasm", "-e", options.entrypoint ?? "mcp/authz/decision"];
    if (options.revision !== undefined) args.push("--revision", options.revision);
    args.push("-o", tmpOut, src);
    await run(opa, args, { cwd: work });
    await mkdir(dirname(resolve(options.outPath)), { recursive: true });
    const staged = `${resolve(options.outPath)}.tmp-${process.pid}`;
    await writeFile(staged, await readFile(tmpOut));
    await rename(staged, resolve(options.outPath));
    return resolve(options.outPath);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
