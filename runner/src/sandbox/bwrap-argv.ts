import { posix } from "node:path";
import { SandboxSpecError } from "./errors.js";
import {
  DEFAULT_EXEC_POLICY,
  LANDLOCK_NET_ABI,
  landlockInitArgs,
  landlockPrebuildArgs,
} from "./landlock.js";
import type { SandboxSpec } from "./types.js";

/** Where the task's workspace appears inside the sandbox. */
export const SANDBOX_WORKSPACE = "/workspace";
/** Where sandbox-init appears inside the sandbox. */
export const SANDBOX_INIT = "/.mcpg/init";
/** uid/gid of the task inside its user namespace (matches runner/native/etc/passwd). */
export const SANDBOX_INNER_ID = 1000;
/** Descriptors (in bwrap) carrying the two compiled seccomp programs, and the start pipe. */
export const SECCOMP_FDS = [3, 4] as const;
/** Where the egress proxy's socket directory appears inside the sandbox (network "restricted"). */
export const SANDBOX_EGRESS_DIR = "/.mcpg/egress";
/** The loopback port inside the sandbox where the egress forwarder listens. */
export const SANDBOX_EGRESS_PORT = 3128;
/** Where the runner's node binary and the egress forwarder appear inside the sandbox. */
export const SANDBOX_NODE = "/.mcpg/node";
export const SANDBOX_FORWARDER = "/.mcpg/egress-forwarder.cjs";
/** /etc entries a "restricted" task gets (CA certificates; never the host's resolver). */
const RESTRICTED_ETC_PREFIXES = ["/etc/ssl", "/etc/ca-certificates"];

/**
 * The proxy variables of a "restricted" task: every common spelling points at the forwarder.
 *
 * @example
 * egressProxyEnv().HTTPS_PROXY; // "http://127.0.0.1:3128"
 */
export function egressProxyEnv(): Record<string, string> {
  const url = `http://127.0.0.1:${SANDBOX_EGRESS_PORT}`;
  const env: Record<string, string> = {};
  for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]) {
    env[name] = url;
    env[name.toLowerCase()] = url;
  }
  env.NO_PROXY = "";
  env.no_proxy = "";
  return env;
}

/** Descriptor (in bwrap and sandbox-init) of the launcher's "setup succeeded" pipe. */
export const STARTED_FD = 6;

/** A top-level system entry mirrored from the host. */
export type SystemEntry =
  | {
      /** Absolute path, e.g. "/bin". */
      path: string;
      /** Re-created as a symlink (e.g. /bin -> usr/bin on merged-/usr systems). */
      kind: "symlink";
      /** The symlink's target, as on the host. */
      target: string;
    }
  | {
      /** Absolute path, e.g. "/usr". */
      path: string;
      /** Bound read-only. */
      kind: "dir";
    };

/** What exists on this host; detected once by createSandbox (see host-layout.ts). */
export interface HostLayout {
  /** /usr, /bin, /sbin, /lib, /lib64 ... as they exist on the host. */
  systemEntries: SystemEntry[];
  /** Host /etc entries bound read-only for every task (only those that exist). */
  etcEntries: string[];
  /** Host /etc entries added when network is "host" (resolver, CA certificates). */
  networkEtcEntries: string[];
  /** Extra host directories bound read-only at the same path (e.g. /opt/toolchain). */
  extraReadOnly: string[];
  /** Host directory with the stub passwd, group and hosts files (runner/native/etc). */
  etcStubDir: string;
  /** Host path of the sandbox-init binary. */
  initPath: string;
}

/** Everything {@link buildBwrapArgv} needs; no field is read from the environment. */
export interface BwrapArgvInput {
  /** The task. */
  spec: SandboxSpec;
  /** Final environment (see buildSandboxEnv); only these variables exist in the sandbox. */
  env: Record<string, string>;
  /** Host layout. */
  layout: HostLayout;
  /** Landlock ABI sandbox-init applies (0 or absent: no Landlock layer; see landlock.ts). */
  landlockAbi?: number;
  /** Descriptor (in bwrap) of the workspace's `.git` directory to bind read-only, if any. */
  gitReadOnlyFd?: number;
  /** Descriptor (in bwrap) of a prepared launcher's ruleset for this task's policy (-R). */
  landlockRulesetFd?: number;
  /**
   * A prepared sandbox (ADR 0028): the host path of its slot, bound at /workspace before any
   * task is known. The command line then holds only the sandbox's shape; the environment, cwd,
   * limits and command are the task's message ({@link preparedTaskMessage}).
   */
  preparedSlot?: string;
  /**
   * Network "restricted": the host paths of the node binary and of the egress forwarder
   * (runner/native/egress/forwarder.cjs), started in place of the command.
   */
  egressForwarder?: { nodePath: string; scriptPath: string };
}

/**
 * Resolves spec.cwd to an absolute path inside the sandbox.
 *
 * @throws SandboxSpecError if the cwd is absolute, contains NUL or leaves the workspace
 */
export function sandboxCwd(cwd: string): string {
  if (cwd.includes("\0")) throw new SandboxSpecError("cwd contains a NUL byte");
  if (cwd.startsWith("/")) throw new SandboxSpecError("cwd must be relative to the workspace");
  const normalized = posix.normalize(cwd === "" ? "." : cwd);
  if (normalized === ".." || normalized.startsWith("../")) {
    throw new SandboxSpecError("cwd leaves the workspace");
  }
  return normalized === "." ? SANDBOX_WORKSPACE : posix.join(SANDBOX_WORKSPACE, normalized);
}

/**
 * Builds bubblewrap's argument vector (without the bwrap path itself) for one task.
 * Pure: no I/O, deterministic; an array, never a shell string.
 *
 * @example
 * const argv = buildBwrapArgv({ spec, env: buildSandboxEnv(spec.env), layout });
 * // spawn(helper, ["launch", "5", pid, "6", "--", "/usr/bin/bwrap", ...argv])
 * @throws SandboxSpecError for an invalid command or cwd
 */
export function buildBwrapArgv(input: BwrapArgvInput): string[] {
  const { spec, env, layout } = input;
  checkCommand(spec);
  if (spec.args.some((a) => a.includes("\0"))) {
    throw new SandboxSpecError("arguments must not contain NUL bytes");
  }
  const cwd = sandboxCwd(spec.cwd);
  const { limits } = spec;
  const prepared = input.preparedSlot;
  if (prepared !== undefined) {
    if (!posix.isAbsolute(prepared) || prepared.includes("\0")) {
      throw new SandboxSpecError("a prepared sandbox's slot must be an absolute path");
    }
    // Decided per task by bwrap's own command line; a prepared sandbox cannot have them.
    if (input.gitReadOnlyFd !== undefined || spec.network === "restricted") {
      throw new SandboxSpecError("a prepared sandbox has no .git bind and no egress forwarder");
    }
  }
  const argv: string[] = [];

  // --- Namespaces and process -------------------------------------------------------
  // New user, mount, PID, IPC, UTS, cgroup and network namespaces. The network namespace
  // has only a loopback interface unless the task was granted the host network.
  argv.push("--unshare-all", "--unshare-user");
  if (spec.network === "host") argv.push("--share-net");
  // The task may not create user namespaces of its own (sets user.max_user_namespaces=0
  // inside; the seccomp filter also refuses CLONE_NEWUSER as a second guarantee).
  argv.push("--disable-userns");
  // An unprivileged uid/gid inside (mapped to the runner's unprivileged sandbox uid).
  argv.push("--uid", String(SANDBOX_INNER_ID), "--gid", String(SANDBOX_INNER_ID));
  argv.push("--hostname", "sandbox");
  // SIGKILL the sandbox if bwrap's parent (the launcher) dies.
  argv.push("--die-with-parent");
  // setsid(): no controlling terminal, so TIOCSTI cannot reach the runner's terminal.
  argv.push("--new-session");
  // No capabilities at all, even inside the user namespace (bwrap also sets NO_NEW_PRIVS).
  argv.push("--cap-drop", "ALL");

  // --- Environment --------------------------------------------------------------------
  // Start from nothing: no host variable (tokens, keys) reaches the task. (A prepared
  // sandbox's sandbox-init sets the task's own from its message.)
  argv.push("--clearenv");
  if (prepared === undefined) {
    for (const name of Object.keys(env).sort()) {
      argv.push("--setenv", name, env[name] ?? "");
    }
  }

  // --- Filesystem -----------------------------------------------------------------------
  // The root is an empty tmpfs; only what is listed here exists. System directories are
  // read-only; merged-/usr symlinks are re-created as on the host.
  for (const entry of layout.systemEntries) {
    if (entry.kind === "symlink") argv.push("--symlink", entry.target, entry.path);
    else argv.push("--ro-bind", entry.path, entry.path);
  }
  for (const path of layout.extraReadOnly) argv.push("--ro-bind", path, path);
  // This process's own read-only host directories (e.g. an MCP server's code).
  for (const path of spec.readOnlyPaths ?? []) argv.push("--ro-bind", path, path);
  // /etc: only what programs need to start (loader cache, alternatives, timezone,
  // nsswitch); passwd/group/hosts are stubs. Never shadow, never the runner's config.
  for (const path of layout.etcEntries) argv.push("--ro-bind", path, path);
  if (spec.network === "host") {
    for (const path of layout.networkEtcEntries) argv.push("--ro-bind", path, path);
  } else if (spec.network === "restricted") {
    // CA certificates for HTTPS through the proxy; no resolver: names are the proxy's to resolve.
    for (const path of layout.networkEtcEntries) {
      if (RESTRICTED_ETC_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`))) {
        argv.push("--ro-bind", path, path);
      }
    }
    argv.push("--ro-bind", posix.join(layout.etcStubDir, "hosts"), "/etc/hosts");
  } else {
    argv.push("--ro-bind", posix.join(layout.etcStubDir, "hosts"), "/etc/hosts");
  }
  argv.push("--ro-bind", posix.join(layout.etcStubDir, "passwd"), "/etc/passwd");
  argv.push("--ro-bind", posix.join(layout.etcStubDir, "group"), "/etc/group");
  // A fresh procfs for the new PID namespace: host processes are invisible.
  argv.push("--proc", "/proc");
  // Minimal /dev: null, zero, full, random, urandom, tty, pts, shm (no disks, no /dev/kmsg).
  argv.push("--dev", "/dev");
  // Private, size-limited, world-writable (sticky) /tmp and /dev/shm.
  argv.push("--perms", "1777", "--size", String(limits.tmpBytes), "--tmpfs", "/tmp");
  argv.push("--perms", "1777", "--size", String(limits.tmpBytes), "--tmpfs", "/dev/shm");
  // The task's workspace: the only writable host directory. A prepared sandbox binds its
  // empty slot, on which the runner mounts the task's workspace later (propagation).
  argv.push("--bind", prepared ?? spec.workspaceDir, SANDBOX_WORKSPACE);
  // Tenant policy git_read_only: the workspace's .git, opened by the runner without following
  // a symlink a task may have put there, bound read-only over itself (by descriptor).
  if (input.gitReadOnlyFd !== undefined) {
    argv.push("--ro-bind-fd", String(input.gitReadOnlyFd), `${SANDBOX_WORKSPACE}/.git`);
  }
  // sandbox-init (rlimits, fd hygiene, exec) read-only.
  argv.push("--ro-bind", layout.initPath, SANDBOX_INIT);
  // Network "restricted": the directory of the task's egress proxy socket (the only way out of
  // the empty network namespace), the forwarder that exposes it on a loopback port, and node.
  const forwarder = spec.network === "restricted" ? egressForwarderOf(input) : null;
  if (forwarder !== null) {
    argv.push("--ro-bind", forwarder.socketDir, SANDBOX_EGRESS_DIR);
    argv.push("--ro-bind", forwarder.nodePath, SANDBOX_NODE);
    argv.push("--ro-bind", forwarder.scriptPath, SANDBOX_FORWARDER);
  }
  // The root tmpfs and /dev's tmpfs are unbounded: make them read-only so they cannot be
  // used to exhaust memory (non-recursive: /tmp, /dev/shm and /workspace stay writable).
  argv.push("--remount-ro", "/dev", "--remount-ro", "/");
  // (A prepared sandbox's sandbox-init enters the cwd once the workspace is mounted.)
  argv.push("--chdir", prepared === undefined ? cwd : "/");

  // --- seccomp --------------------------------------------------------------------------
  // Two libseccomp-compiled programs (allowlist + argument rules), installed by bwrap on
  // the sandbox's PID 1 and on the task right before exec, after bwrap's own setup.
  for (const fd of SECCOMP_FDS) argv.push("--add-seccomp-fd", String(fd));

  // --- Command --------------------------------------------------------------------------
  // sandbox-init sets the rlimits (NPROC inside the user namespace: per task), signals
  // "started" on STARTED_FD, closes every fd above 2, then execvp()s the command. A prepared
  // sandbox's waits for all of that on TASK_FD.
  if (prepared !== undefined) argv.push(SANDBOX_INIT, "-G", String(TASK_FD), String(STARTED_FD));
  else argv.push(SANDBOX_INIT, ...sandboxInitArgs(input));
  return argv;
}

/** @throws SandboxSpecError for an empty command or one with a NUL byte */
function checkCommand(spec: SandboxSpec): void {
  if (spec.command === "" || spec.command.includes("\0")) {
    throw new SandboxSpecError("command must be a non-empty string without NUL bytes");
  }
}

/** Descriptor (in a prepared sandbox's sandbox-init) of its task message (launch.c TASK_FD). */
export const TASK_FD = 9;

/**
 * sandbox-init's arguments for one task (after its path): limits, the Landlock options,
 * "--", the command.
 */
function sandboxInitArgs(input: BwrapArgvInput): string[] {
  const { spec } = input;
  const { limits } = spec;
  const landlockAbi = input.landlockAbi ?? 0;
  const forwarder = spec.network === "restricted" ? egressForwarderOf(input) : null;
  return [
    String(STARTED_FD),
    String(limits.memoryBytes),
    String(limits.maxProcesses),
    String(limits.maxFileSizeBytes),
    String(limits.maxOpenFiles),
    String(limits.cpuSeconds),
    // Landlock (inside the sandbox, after bwrap's mounts, before the task's first exec):
    // what the task may execute and write, from the decision's obligations; refused
    // executions are reported with their path on REPORT_FD.
    ...(landlockAbi > 0
      ? landlockInitArgs({
          abi: landlockAbi,
          exec: spec.exec ?? DEFAULT_EXEC_POLICY,
          connectPorts: connectPortsOf(spec, landlockAbi),
          workspace: SANDBOX_WORKSPACE,
          ...(input.landlockRulesetFd === undefined
            ? {}
            : { prebuiltRulesetFd: input.landlockRulesetFd }),
        })
      : []),
    "--",
    ...(forwarder === null
      ? []
      : [
          SANDBOX_NODE,
          // No JIT: V8 then needs no code range, so node starts under the task's RLIMIT_AS;
          // no wasm (else V8 warns on the task's stderr); one V8 worker thread (threads count
          // against the task's process limit).
          "--jitless",
          "--no-expose-wasm",
          "--v8-pool-size=1",
          SANDBOX_FORWARDER,
          posix.join(SANDBOX_EGRESS_DIR, "proxy.sock"),
          String(SANDBOX_EGRESS_PORT),
          "--",
        ]),
    spec.command,
    ...spec.args,
  ];
}

/**
 * What a prepared sandbox's sandbox-init reads on TASK_FD (ADR 0028): NUL-terminated fields —
 * "T", the cwd inside the sandbox, the number of environment entries, the entries, then
 * sandbox-init's arguments as {@link buildBwrapArgv} would put them on bwrap's command line.
 *
 * @throws SandboxSpecError for an invalid command, cwd or environment
 */
export function preparedTaskMessage(input: BwrapArgvInput): Buffer {
  const { spec, env } = input;
  checkCommand(spec);
  const names = Object.keys(env).sort();
  const entries = names.map((name) => `${name}=${env[name] ?? ""}`);
  if (names.some((n) => n === "" || n.includes("="))) {
    throw new SandboxSpecError("environment variable names must be non-empty and without '='");
  }
  const fields = [
    "T",
    sandboxCwd(spec.cwd),
    String(entries.length),
    ...entries,
    ...sandboxInitArgs(input),
  ];
  if (fields.some((f) => f.includes("\0"))) {
    throw new SandboxSpecError("the task contains a NUL byte");
  }
  return Buffer.from(`${fields.join("\0")}\0`, "utf8");
}

/**
 * The TCP ports the task may connect(2) to (Landlock): the spec's own list if it has one,
 * else, for network "restricted" at ABI ≥ 4, only the forwarder's loopback port. Only
 * connect is handled, so the forwarder (exec'd under the same ruleset) still binds and
 * listens on that port. Below ABI 4 there is no port rule to apply (sandbox-init would
 * refuse one): a restricted task's TCP connect is then bounded by its empty network
 * namespace alone — the runner says so at start (runner.ts) and refuses nothing, as for the
 * other ABI-dependent rights; `requireLandlock` means "a Landlock layer", not "every right".
 */
/**
 * The task's Landlock policy as a prepared launcher would prebuild it (landlockPrebuildArgs),
 * or null without a Landlock layer or in list mode.
 */
export function landlockPrebuildOf(input: BwrapArgvInput): string[] | null {
  const abi = input.landlockAbi ?? 0;
  // List mode resolves names and interpreters the host may see differently: built inside only.
  if (abi <= 0 || (input.spec.exec?.allowedPrograms ?? null) !== null) return null;
  return landlockPrebuildArgs({
    abi,
    exec: input.spec.exec ?? DEFAULT_EXEC_POLICY,
    connectPorts: connectPortsOf(input.spec, abi),
    path: input.env.PATH ?? "",
  });
}

function connectPortsOf(spec: SandboxSpec, landlockAbi: number): readonly number[] {
  if (spec.connectPorts !== undefined) return spec.connectPorts;
  return spec.network === "restricted" && landlockAbi >= LANDLOCK_NET_ABI
    ? [SANDBOX_EGRESS_PORT]
    : [];
}

function egressForwarderOf(input: BwrapArgvInput): {
  socketDir: string;
  nodePath: string;
  scriptPath: string;
} {
  const socketDir = input.spec.egress?.socketDir;
  const f = input.egressForwarder;
  if (socketDir === undefined || f === undefined) {
    throw new SandboxSpecError('network "restricted" needs the egress proxy socket and forwarder');
  }
  for (const path of [socketDir, f.nodePath, f.scriptPath]) {
    if (!posix.isAbsolute(path) || path.includes("\0")) {
      throw new SandboxSpecError(`egress path ${JSON.stringify(path)} must be absolute`);
    }
  }
  return { socketDir, ...f };
}
