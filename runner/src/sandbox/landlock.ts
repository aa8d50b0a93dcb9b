/**
 * The Landlock layer's TypeScript side: sandbox-init's options from a task's execution
 * policy, and the exec supervisor's refusal reports turned into messages with the policy's
 * reason. The rules themselves are built inside the sandbox (runner/native/src/landlock.c),
 * those of the PATH directories possibly ahead of the task by a prepared launcher (ADR 0024).
 *
 * @module
 */
import { SandboxSpecError } from "./errors.js";
import type { ExecRefusal, SandboxExecPolicy } from "./types.js";

/** Descriptor (in bwrap and sandbox-init) of the exec supervisor's report pipe. */
export const REPORT_FD = 7;

/**
 * First Landlock ABI with TCP port rules (LANDLOCK_ACCESS_NET_CONNECT_TCP, Linux 6.7).
 * sandbox-init refuses `-n PORT` below it, so no connect ports may be passed then.
 */
export const LANDLOCK_NET_ABI = 4;

/** Where /tmp and /dev/shm appear inside the sandbox (private tmpfs mounts). */
const TMP_DIRS = ["/tmp", "/dev/shm"] as const;

/**
 * The execution policy of a task without obligations (tests, the self-test): any program
 * may run, also from the workspace and /tmp; writing stays limited to those directories.
 */
export const DEFAULT_EXEC_POLICY: Readonly<SandboxExecPolicy> = Object.freeze({
  allowedPrograms: null,
  notAllowedReason: "the program is not in the list of allowed commands",
  deniedPrograms: {},
  deniedPrefixes: {},
  workspaceExec: true,
  tmpExec: true,
  noexecReason: "programs in the workspace and /tmp may not be executed",
});

/** Largest lists sandbox-init accepts (runner/native/src/landlock.h). */
const MAX_ALLOWED = 64;
const MAX_DENIED = 128;
const MAX_PREFIXES = 64;
const PROGRAM_NAME = /^[A-Za-z0-9._+-][A-Za-z0-9._+@-]{0,62}$/;

function checkNames(kind: string, names: string[], max: number): void {
  if (names.length > max) throw new SandboxSpecError(`too many ${kind} programs (at most ${max})`);
  for (const n of names) {
    if (!PROGRAM_NAME.test(n) || n === "." || n === "..") {
      throw new SandboxSpecError(`${kind} program name ${JSON.stringify(n)} is invalid`);
    }
  }
}

/**
 * The policy's program options, shared by sandbox-init and a prepared launcher: list mode with
 * the allowed programs, then the denied names and prefixes (sorted).
 *
 * @throws SandboxSpecError for invalid program names or too many entries
 */
function programArgs(exec: SandboxExecPolicy): string[] {
  const denied = Object.keys(exec.deniedPrograms).sort();
  const prefixes = Object.keys(exec.deniedPrefixes).sort();
  checkNames("denied", denied, MAX_DENIED);
  checkNames("denied-prefix", prefixes, MAX_PREFIXES);
  const args: string[] = [];
  if (exec.allowedPrograms !== null) {
    checkNames("allowed", exec.allowedPrograms, MAX_ALLOWED);
    args.push("-l");
    for (const name of exec.allowedPrograms) args.push("-a", name);
  }
  for (const name of denied) args.push("-d", name);
  for (const prefix of prefixes) args.push("-p", prefix);
  return args;
}

/** Options of {@link landlockInitArgs}. */
export interface LandlockArgsInput {
  /** Landlock ABI to apply (the runner's probe, ≥ 1). */
  abi: number;
  /** The task's execution policy. */
  exec: SandboxExecPolicy;
  /** TCP ports connect(2) may reach (empty: not restricted). */
  connectPorts: readonly number[];
  /** The workspace inside the sandbox. */
  workspace: string;
  /**
   * Descriptor of a ruleset a prepared launcher built for exactly this policy (see
   * {@link landlockPrebuildArgs}): sandbox-init adds only the rest of the rules to it.
   */
  prebuiltRulesetFd?: number;
}

/**
 * sandbox-init's Landlock options (before its `--`): ABI, report fd, list mode with the
 * allowed programs, denied names and prefixes, writable directories (W = executable),
 * TCP ports.
 *
 * @throws SandboxSpecError for invalid program names, too many entries or invalid ports
 */
export function landlockInitArgs(input: LandlockArgsInput): string[] {
  const { abi, exec, connectPorts, workspace } = input;
  const args = ["-L", String(abi), "-r", String(REPORT_FD)];
  if (input.prebuiltRulesetFd !== undefined) args.push("-R", String(input.prebuiltRulesetFd));
  args.push(...programArgs(exec));
  // In list mode nothing in a writable directory is executable, whatever these say.
  const list = exec.allowedPrograms !== null;
  args.push(!list && exec.workspaceExec ? "-W" : "-w", workspace);
  for (const dir of TMP_DIRS) args.push(!list && exec.tmpExec ? "-W" : "-w", dir);
  if (connectPorts.length > 8) throw new SandboxSpecError("at most 8 connect ports");
  for (const port of connectPorts) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new SandboxSpecError(`connect port ${port} is invalid`);
    }
    args.push("-n", String(port));
  }
  return args;
}

/**
 * What a prepared launcher needs to build a policy's program-directory rules ahead of its
 * task (launch.c, after "@"): the options that decide those rules and nothing else (not the
 * workspace, not the ports themselves: only whether there are any, which the ruleset must
 * handle). Equal lists mean an equal ruleset; the runner compares them before it passes -R.
 *
 * @throws SandboxSpecError as {@link landlockInitArgs}
 */
export function landlockPrebuildArgs(input: {
  abi: number;
  exec: SandboxExecPolicy;
  connectPorts: readonly number[];
  path: string;
}): string[] {
  const args = ["-L", String(input.abi), "-P", input.path];
  if (input.connectPorts.length > 0) args.push("-N");
  args.push(...programArgs(input.exec));
  return args;
}

/**
 * Parses one report line of the exec supervisor ("refused KIND NAME PATH") into a refusal
 * with the policy's reason; null for anything else.
 */
export function parseRefusal(line: string, exec: SandboxExecPolicy): ExecRefusal | null {
  const m = /^refused (denied|not_allowed|noexec|memfd) (\S+) (.+)$/.exec(line);
  if (m === null) return null;
  const kind = m[1] as ExecRefusal["kind"];
  const name = m[2] ?? "-";
  const path = m[3] ?? "";
  let reason: string;
  switch (kind) {
    case "denied": {
      const why = exec.deniedPrograms[name] ?? exec.deniedPrefixes[name] ?? "denied by policy";
      const program = path.slice(path.lastIndexOf("/") + 1);
      reason = `command "${program}" is denied: ${why}`;
      break;
    }
    case "not_allowed":
      reason = exec.notAllowedReason;
      break;
    case "noexec":
      reason = exec.noexecReason;
      break;
    default:
      reason = "anonymous (memfd) files may not be executed";
  }
  return { kind, path, reason };
}

/** The notice text of a refusal, as the task's events carry it. */
export function refusalMessage(r: ExecRefusal): string {
  // memfd executions are refused by the exec supervisor (and by the kernel only where the
  // host sets vm.memfd_noexec); everything else by Landlock.
  const who = r.kind === "memfd" ? "the sandbox" : "the kernel (Landlock)";
  return `${who} refused to execute ${r.path}: ${r.reason}`;
}
