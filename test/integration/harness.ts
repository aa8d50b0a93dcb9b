import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createMtlsTransport } from "@mcp-gateway/common/mtls-transport";
import { checkRunnerIdentity, loadTlsMaterial, runnerIdentity } from "@mcp-gateway/common/tls";
import { RunnerService } from "@mcp-gateway/proto/runner/v1";

/** Root of the repository. */
export const ROOT = resolve(import.meta.dirname, "..", "..");

/**
 * A copy of the built policy bundle with its data document changed by `patch` (same
 * policy, same revision, so edge and runner agree): for tests of settings that live in
 * the policy data. Returns the new bundle's path (in a fresh temporary directory).
 *
 * @example
 * const bundle = bundleWithData((d) => { d.gateway.defaults.tasks = { per_principal: 2, per_tenant: 3 }; });
 */
// biome-ignore lint/suspicious/noExplicitAny: the data document is free-form JSON.
export function bundleWithData(patch: (data: any) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "mcp-bundle-"));
  const tree = join(dir, "tree");
  execFileSync("mkdir", ["-p", tree]);
  execFileSync("tar", ["-xzf", join(ROOT, "policies/build/bundle.tar.gz"), "-C", tree]);
  const dataPath = join(tree, "data.json");
  const data = JSON.parse(readFileSync(dataPath, "utf8"));
  patch(data);
  writeFileSync(dataPath, JSON.stringify(data));
  const out = join(dir, "bundle.tar.gz");
  execFileSync("tar", ["-czf", out, "-C", tree, "."]);
  return out;
}
const CLI = join(ROOT, "cli", "bin", "mcp-gateway.js");

/** A real gateway process started by a test. */
export interface Proc {
  child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Everything the process wrote to stdout so far (its JSON log lines). */
  stdout(): string;
  /** SIGTERM, then SIGKILL after 5 s (60 s under --cpu-prof); resolves when it exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** The exit code once the process exits by itself (null: killed by a signal); rejects after timeoutMs. */
  exited(timeoutMs?: number): Promise<number | null>;
}

/** Runs the CLI to completion; resolves to its exit code and output. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: "pipe",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** Starts a long-running CLI command and waits until its stderr matches `ready`. */
export function startProc(
  args: string[],
  ready: RegExp,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<{ proc: Proc; match: RegExpMatchArray }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    let out = "";
    let done = false;
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const proc: Proc = {
      child,
      stderr: () => err,
      exited: (timeoutMs = 15_000) =>
        Promise.race([
          exited,
          new Promise<never>((_, rej) =>
            setTimeout(
              () => rej(new Error(`${args[0]} did not exit within ${timeoutMs} ms`)),
              timeoutMs,
            ).unref(),
          ),
        ]),
      stdout: () => out,
      async stop(signal = "SIGTERM") {
        if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
        child.kill(signal);
        // A profiled process writes its .cpuprofile on exit: give it time to.
        const grace = nodeArgs.includes("--cpu-prof") ? 60_000 : 5000;
        const timer = setTimeout(() => child.kill("SIGKILL"), grace);
        const code = await exited;
        clearTimeout(timer);
        return code;
      },
    };
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        child.kill("SIGKILL");
        reject(new Error(`timed out waiting for ${args[0]} to start:\n${err}`));
      }
    }, 60_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      const m = err.match(ready);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        resolvePromise({ proc, match: m });
      }
    });
    child.on("exit", (code) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`${args[0]} exited with ${code} before it was ready:\n${err}`));
      }
    });
  });
}

/** An edge and a runner as separate processes, sharing a fresh data directory. */
export interface Gateway {
  url: string;
  runnerUrl: string;
  dataDir: string;
  edge: Proc;
  runner: Proc;
  /** A token for the given subject and roles, signed by the gateway's dev key. */
  token(sub?: string, roles?: string[], extra?: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Starts runner and edge as real processes (mTLS between them, dev PKI in a temp dir). */
export async function startGateway(
  options: {
    edgeArgs?: string[];
    runnerArgs?: string[];
    env?: Record<string, string>;
    /** Node options of both processes (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
    nodeArgs?: string[];
  } = {},
): Promise<Gateway> {
  const dataDir = mkdtempSync(join(tmpdir(), "mcp-it-"));
  // The sandbox user (not root) must be able to traverse to the workspaces below it.
  chmodSync(dataDir, 0o711);
  const env = { MCP_GATEWAY_DATA_DIR: dataDir, ...options.env };
  const { proc: runner, match: rm } = await startProc(
    ["runner", "--port", "0", "--id", "runner-local", ...(options.runnerArgs ?? [])],
    /listening on (https:\/\/\S+)/,
    env,
    options.nodeArgs,
  );
  const runnerUrl = rm[1] as string;
  let edge: Proc;
  let url: string;
  try {
    const started = await startProc(
      ["edge", "--port", "0", "--runner", `runner-local=${runnerUrl}`, ...(options.edgeArgs ?? [])],
      /edge listening on (https?:\/\/[^\s(]+)/,
      env,
      options.nodeArgs,
    );
    edge = started.proc;
    url = started.match[1] as string;
  } catch (err) {
    await runner.stop();
    throw err;
  }
  return {
    url,
    runnerUrl,
    dataDir,
    edge,
    runner,
    async token(sub = "alice", roles = ["developer"], extra = []) {
      const r = await runCli(
        ["token", "--sub", sub, "--roles", roles.join(","), "--ttl", "1h", ...extra],
        env,
      );
      if (r.code !== 0) throw new Error(`token failed: ${r.stderr}`);
      return r.stdout.trim();
    },
    async stop() {
      await edge.stop();
      await runner.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** POSTs a Connect JSON call like curl does; returns status, headers and parsed body. */
export async function connectJson(
  url: string,
  method: string,
  body: unknown,
  token?: string,
  rawBody?: string,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${url}/mcp.McpService/${method}`, {
    method: "POST",
    headers,
    body: rawBody ?? JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Polls GetTaskStatus until the task is terminal; returns the task object. */
export async function waitForTask(
  url: string,
  token: string,
  taskId: string,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await connectJson(url, "GetTaskStatus", { taskId }, token);
    const task = r.body.task as Record<string, unknown> | undefined;
    const status = String(task?.status ?? "");
    if (
      [
        "TASK_STATUS_COMPLETED",
        "TASK_STATUS_FAILED",
        "TASK_STATUS_CANCELLED",
        "TASK_STATUS_TIMED_OUT",
      ].includes(status)
    ) {
      return task as Record<string, unknown>;
    }
    if (Date.now() > deadline)
      throw new Error(
        `task ${taskId} still ${status} after ${timeoutMs} ms: ${JSON.stringify(r.body)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A RunnerService client calling the runner at `url` directly over mTLS with
 * the given certificate (an edge's, a monitor's …), checking that the server
 * is `runnerId`.
 */
export function runnerClient(
  url: string,
  files: { caPath: string; certPath: string; keyPath: string },
  runnerId: string,
): Client<typeof RunnerService> {
  return createClient(
    RunnerService,
    createMtlsTransport({
      baseUrl: url,
      tls: loadTlsMaterial(files),
      checkServerIdentity: checkRunnerIdentity(runnerIdentity(runnerId)),
    }),
  );
}
