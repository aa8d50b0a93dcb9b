/**
 * Shared fixtures of the attack suite: a real sandbox, workspaces the sandbox uid owns,
 * compiled attack programs, and host-side process scans.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { fileURLToPath } from "node:url";
import {
  createSandbox,
  DEFAULT_SANDBOX_LIMITS,
  type Sandbox,
  type SandboxLimits,
  type SandboxResult,
  type SandboxSpec,
} from "../../runner/src/sandbox/index.js";

/** True when the suite runs as root (CI): tasks then run as uid 65534 on the host. */
export const IS_ROOT = process.getuid?.() === 0;
/** Host uid tasks run as. */
export const TASK_UID = IS_ROOT ? 65534 : (process.getuid?.() ?? -1);
const C_DIR = fileURLToPath(new URL("./c/", import.meta.url));

/** Scratch directory of this test process (traversable by the sandbox uid). */
export const BASE = mkdtempSync(join(tmpdir(), "mcpg-attacks-"));
chmodSync(BASE, 0o711);

/**
 * Whether tasks may start in prepared sandboxes (ADR 0028; the default). CI runs the suite a
 * second time with MCPG_ATTACKS_PREPARED_SANDBOXES=off: the cold and prepared-launcher
 * starts must hold the same guarantees.
 */
export const PREPARED_SANDBOXES = process.env.MCPG_ATTACKS_PREPARED_SANDBOXES !== "off";

/** The sandbox under test (one per test file, like one runner). */
export const sandbox: Sandbox = createSandbox({ preparedNamespaces: PREPARED_SANDBOXES });
after(() => sandbox.close());

let wsCounter = 0;
/** Creates a fresh workspace owned by the sandbox uid; returns its host path. */
export function makeWorkspace(): string {
  const dir = join(BASE, `ws-${process.pid}-${wsCounter++}`);
  mkdirSync(dir, { mode: 0o700 });
  if (IS_ROOT) chownSync(dir, 65534, 65534);
  return dir;
}

const compiled = new Map<string, string>();
/** Compiles test/attacks/c/NAME.c once (gcc) and returns the binary's host path. */
export function compile(name: string): string {
  const done = compiled.get(name);
  if (done !== undefined) return done;
  const out = join(BASE, `${name}.bin`);
  try {
    execFileSync("gcc", ["-O1", "-Wall", "-o", out, join(C_DIR, `${name}.c`)], { stdio: "pipe" });
  } catch (err) {
    throw new Error(`cannot compile ${name}.c: install gcc (apt-get install gcc): ${String(err)}`);
  }
  chmodSync(out, 0o755);
  compiled.set(name, out);
  return out;
}

/** Copies the compiled program NAME into a workspace; returns its path inside the sandbox. */
export function install(name: string, ws: string): string {
  copyFileSync(compile(name), join(ws, name));
  chmodSync(join(ws, name), 0o755);
  if (IS_ROOT) chownSync(join(ws, name), 65534, 65534);
  return `/workspace/${name}`;
}

/** Output and result of one sandboxed run. */
export interface Run {
  /** How it ended. */
  result: SandboxResult;
  /** Captured stdout (capped). */
  stdout: string;
  /** Captured stderr (capped). */
  stderr: string;
  /** How the sandbox started (SandboxProcess.start). */
  start: string | undefined;
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Workspace (default: a fresh one). */
  workspaceDir?: string;
  /** Limits merged over the defaults. */
  limits?: Partial<SandboxLimits>;
  /** Deadline (default 10 s). */
  timeoutMs?: number;
  /** Network mode (default "none"). */
  network?: SandboxSpec["network"];
  /** Extra environment. */
  env?: Record<string, string>;
  /** Called once the task started. */
  onStarted?: () => void;
}

/** Runs one command in a real sandbox and collects everything. */
export async function run(command: string, args: string[], opts: RunOptions = {}): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const proc = await sandbox.spawn(
    {
      command,
      args,
      env: opts.env ?? {},
      cwd: "",
      workspaceDir: opts.workspaceDir ?? makeWorkspace(),
      network: opts.network ?? "none",
      timeoutMs: opts.timeoutMs ?? 10_000,
      limits: { ...DEFAULT_SANDBOX_LIMITS, ...opts.limits },
    },
    {
      onOutput: (stream, data) => {
        const text = Buffer.from(data).toString("utf8");
        if (stream === "stdout") stdout += text;
        else stderr += text;
      },
      ...(opts.onStarted ? { onStarted: opts.onStarted } : {}),
    },
  );
  return { result: await proc.result, stdout, stderr, start: proc.start };
}

/** Runs a bash script in the sandbox. */
export function bash(script: string, opts: RunOptions = {}): Promise<Run> {
  return run("bash", ["-c", script], opts);
}

/**
 * Host pids whose argv[0] starts with `marker` (tasks set it with `exec -a`; the launcher
 * and bwrap carry the marker only in later arguments, so they do not match).
 */
export function hostPidsWithMarker(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.startsWith(marker)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Host uid of a process (real uid from /proc/PID/status), or -1 if gone. */
export function hostUidOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^Uid:\s+(\d+)/m.exec(status);
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

/** Polls `predicate` every 25 ms until it holds or `ms` pass; returns its last value. */
export async function waitFor(predicate: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (predicate()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return predicate();
}

/** A unique marker for process scans. */
export function marker(name: string): string {
  return `mcpg-attack-${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Starts a host process (optionally as another uid) and returns it. */
export function hostProcess(
  command: string,
  args: string[],
  opts: { env?: Record<string, string>; uid?: number; gid?: number } = {},
): ChildProcess {
  return spawn(command, args, {
    stdio: "ignore",
    env: opts.env ?? {},
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  });
}

/** True if a host pid is alive and not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}
