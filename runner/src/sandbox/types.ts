/**
 * Public types of the runner's kernel sandbox (bubblewrap + seccomp + rlimits).
 *
 * @module
 */

import type { Writable } from "node:stream";

/** Resource limits applied to every process of one sandboxed task. */
export interface SandboxLimits {
  /**
   * Memory of the whole task, in bytes: the task cgroup's memory limit (anonymous memory,
   * shmem/memfd/tmpfs, page cache and kernel memory of every process; swap 0) when a cgroup
   * layer is active, and RLIMIT_AS of each process (large allocations fail with ENOMEM).
   */
  memoryBytes: number;
  /**
   * Processes and threads of the task: cgroup pids.max (plus bwrap's monitor) when a cgroup
   * layer is active, and RLIMIT_NPROC inside the sandbox's own user namespace.
   */
  maxProcesses: number;
  /** RLIMIT_FSIZE: largest file any process may write, in bytes (SIGXFSZ / EFBIG beyond). */
  maxFileSizeBytes: number;
  /** RLIMIT_NOFILE: open descriptors per process. */
  maxOpenFiles: number;
  /** RLIMIT_CPU per process, in seconds (SIGXCPU at the limit, SIGKILL one second later). */
  cpuSeconds: number;
  /** Cap per captured stream (stdout, stderr), in bytes; the rest is drained and discarded. */
  maxOutputBytes: number;
  /** Size of the private tmpfs mounted on /tmp (and of the one on /dev/shm), in bytes. */
  tmpBytes: number;
}

/** What to run, where, and under which limits. */
export interface SandboxSpec {
  /** Bare name (looked up on the sandbox PATH) or absolute path inside the sandbox. */
  command: string;
  /** Arguments (argv[1..]); passed as an array, never through a shell. */
  args: string[];
  /**
   * Extra environment, merged over the minimal allowlist (PATH, HOME, LANG, TERM=dumb,
   * TMPDIR, USER, LOGNAME, SHELL). Names that change how the dynamic loader or a shell
   * starts a program (LD_*, GCONV_PATH, GLIBC_TUNABLES, BASH_ENV, ENV, BASH_FUNC_*...)
   * are refused with SandboxSpecError: they would let a caller run arbitrary
   * code inside a command that policy allowed by name.
   */
  env: Record<string, string>;
  /** Working directory relative to the workspace root ("" = root); must stay inside. */
  cwd: string;
  /** Absolute host path of the task's workspace (exists, owned by the sandbox uid). */
  workspaceDir: string;
  /**
   * "none": private network namespace with only a loopback; "host": the host's network;
   * "restricted": like "none", plus the task's egress proxy ({@link SandboxSpec.egress}) as
   * the only way out (docs/adr/0018-egress-proxy.md).
   */
  network: "none" | "host" | "restricted";
  /** Required with network "restricted": where the task's egress proxy listens. */
  egress?: SandboxEgress;
  /** Wall-clock deadline in milliseconds: the whole process tree is killed when it passes. */
  timeoutMs: number;
  /** Resource limits. */
  limits: SandboxLimits;
  /**
   * What the kernel (Landlock) lets the task execute, from the decision's obligations.
   * Default {@link DEFAULT_EXEC_POLICY}: any program, also from the workspace and /tmp.
   * Writing is always limited to the workspace, /tmp and /dev/shm.
   */
  exec?: SandboxExecPolicy;
  /**
   * TCP ports connect(2) may reach; every other port is refused by Landlock (ABI ≥ 4;
   * sandbox-init refuses port rules below that ABI). Absent: for network "restricted" at
   * ABI ≥ 4, only the egress forwarder's port (SANDBOX_EGRESS_PORT); otherwise not
   * restricted. Empty: not restricted by Landlock.
   */
  connectPorts?: number[];
  /**
   * "pipe": the process's stdin is a pipe ({@link SandboxProcess.stdin}) and its stdout is
   * not capped in total (a long-running server; the caller bounds what it buffers). Default:
   * stdin is /dev/null and both streams are capped by limits.maxOutputBytes.
   */
  stdin?: "pipe";
  /**
   * Extra host directories bound read-only at the same path, for this process only. The
   * caller decides which are allowed (absolute and normalized paths are checked here).
   */
  readOnlyPaths?: string[];
}

/** The Landlock execution policy of one task (see docs/security/sandbox.md, "Landlock"). */
export interface SandboxExecPolicy {
  /**
   * Program names that may be executed, resolved on the sandbox PATH together with the
   * interpreters their `#!` lines and ELF headers need; nothing else is executable. null:
   * every program except the denied ones.
   */
  allowedPrograms: string[] | null;
  /** Why a program outside allowedPrograms is refused (reported with its path). */
  notAllowedReason: string;
  /** Program names that are never executable nor readable in the PATH directories → reason. */
  deniedPrograms: Record<string, string>;
  /** Program name prefixes (e.g. "mkfs.") handled like deniedPrograms → reason. */
  deniedPrefixes: Record<string, string>;
  /** Files in the workspace may be executed (never in list mode). */
  workspaceExec: boolean;
  /** Files in /tmp and /dev/shm may be executed (never in list mode). */
  tmpExec: boolean;
  /** Why a file in a no-exec directory is refused. */
  noexecReason: string;
  /**
   * The workspace's `.git` directory is bound read-only over itself (opened without following
   * a symlink); a `.git` that is a symlink or a file (`gitdir:`) refuses the task.
   */
  gitReadOnly?: boolean;
}

/** An execution the kernel refused, reported by the sandbox's exec supervisor. */
export interface ExecRefusal {
  /** "denied" (a denied program), "not_allowed" (outside allowedPrograms), "noexec" (in a
   *  directory without execution), "memfd" (an anonymous file). */
  kind: "denied" | "not_allowed" | "noexec" | "memfd";
  /** The refused file, resolved inside the sandbox (e.g. "/usr/bin/dd"). */
  path: string;
  /** The policy's reason, e.g. 'command "dd" is denied: dd writes raw blocks …'. */
  reason: string;
}

/** A captured output stream. */
export type OutputStream = "stdout" | "stderr";

/** How a sandboxed task ended. */
export interface SandboxResult {
  /**
   * "completed": the command ran and exited (whatever its exit code or signal);
   * "timed_out": the deadline killed it; "cancelled": {@link SandboxProcess.cancel};
   * "failed": the sandbox could not start the command (setup error, launcher died).
   */
  status: "completed" | "timed_out" | "cancelled" | "failed";
  /** Exit code; -1 when killed by a signal or failed to start. */
  exitCode: number;
  /** Terminating signal ("SIGKILL", "SIGXCPU"...), "" if none. */
  signal: string;
  /**
   * CPU and peak RSS of the whole process tree (getrusage(RUSAGE_CHILDREN)); the task
   * cgroup's peak memory charge and how often pids.max refused a fork (0 without cgroups).
   */
  usage: {
    userCpuMs: number;
    systemCpuMs: number;
    maxRssKb: number;
    memoryPeakBytes: number;
    pidsLimitHits: number;
  };
  /** True when the kernel's OOM killer acted in the task's cgroup (the whole task is killed). */
  oomKilled: boolean;
  /** Wall-clock time from spawn until the whole tree was gone. */
  executionTimeMs: number;
  /** True when stdout exceeded limits.maxOutputBytes. */
  stdoutTruncated: boolean;
  /** True when stderr exceeded limits.maxOutputBytes. */
  stderrTruncated: boolean;
  /** Human-readable explanation for failed/timed_out/cancelled ("" when completed). */
  message: string;
}

/** A running sandboxed task. */
export interface SandboxProcess {
  /** Resolves when the process tree is gone (never rejects). */
  readonly result: Promise<SandboxResult>;
  /** Kill the whole process tree now; result.status becomes "cancelled". Idempotent. */
  cancel(): void;
  /** The process's stdin when spec.stdin is "pipe" (else null); ending it closes stdin. */
  readonly stdin: Writable | null;
  /** Host pid of the launcher at the root of the process tree. */
  readonly pid: number;
  /**
   * How it started: in a prepared sandbox (namespaces and mounts set up ahead, ADR 0028), from
   * a prepared launcher (ADR 0020), or cold.
   */
  readonly start?: "prepared-sandbox" | "prepared-launcher" | "cold";
}

/** Callbacks of a running task. */
export interface SpawnHooks {
  /** Output chunk, already capped: the sum per stream never exceeds limits.maxOutputBytes. */
  onOutput(stream: OutputStream, data: Uint8Array): void;
  /** Called once bwrap's setup succeeded and the command is about to be executed. */
  onStarted?(): void;
  /** Called when the kernel refused to execute a file, with the path and the policy reason. */
  onRefusal?(refusal: ExecRefusal): void;
}

/** Result of {@link Sandbox.readiness}. */
export interface SandboxReadiness {
  /** True when tasks can be spawned. */
  ready: boolean;
  /** Why not (with how to fix it); "" when ready. */
  problem: string;
  /**
   * Active resource-limit layers, e.g. ["rlimits", "pid-namespace", "tmpfs-size",
   * "cgroup-v1-memory", "cgroup-v1-pids"] (or "cgroup-v2-memory", "cgroup-v2-pids",
   * "cgroup-v2-cpu"); see docs/security/sandbox.md.
   */
  limitLayers: string[];
  /** Where the per-task cgroups live, or "not used: <why>". */
  cgroup: string;
  /** bubblewrap version found ("" if none). */
  bwrapVersion: string;
  /** Landlock ABI applied to every task (0: none; then "landlock" is not in limitLayers). */
  landlockAbi: number;
}

/** The kernel sandbox. */
export interface Sandbox {
  /** Checks bwrap, the seccomp helper, user namespaces; never throws. */
  readiness(): Promise<SandboxReadiness>;
  /**
   * Starts a task. Throws {@link SandboxUnavailableError} if the sandbox is not ready and
   * SandboxSpecError if the spec is invalid. Never runs anything unsandboxed.
   */
  spawn(spec: SandboxSpec, hooks: SpawnHooks): Promise<SandboxProcess>;
  /** Releases the runner's cgroups (call after every task ended); never throws. */
  close(): Promise<void>;
}

/** The egress path of a network "restricted" task (see docs/security/sandbox.md "Egress"). */
export interface SandboxEgress {
  /**
   * Host directory holding the proxy's unix socket `proxy.sock` (owned by the runner, one per
   * task); bound read-only at /.mcpg/egress in the sandbox.
   */
  socketDir: string;
}
