import { execFile } from "node:child_process";
import {
  accessSync,
  chmodSync,
  closeSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { constants as osConstants, tmpdir } from "node:os";
import { isAbsolute, join, posix } from "node:path";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Logger } from "pino";
import {
  type BwrapArgvInput,
  buildBwrapArgv,
  egressProxyEnv,
  type HostLayout,
  landlockPrebuildOf,
  preparedTaskMessage,
} from "./bwrap-argv.js";
import {
  type CgroupController,
  type CgroupLimits,
  type CgroupUsage,
  createCgroupController,
  type TaskCgroup,
} from "./cgroup.js";
import { buildSandboxEnv } from "./env.js";
import { SandboxSpecError, SandboxUnavailableError } from "./errors.js";
import { detectHostLayout } from "./host-layout.js";
import { DEFAULT_EXEC_POLICY, parseRefusal, REPORT_FD } from "./landlock.js";
import { createLauncherPool, type PreparedLauncher as PoolMember } from "./launcher-pool.js";
import { DEFAULT_SANDBOX_LIMITS, sandboxLimitsSchema } from "./limits.js";
import { createSpawner, type SpawnedProcess } from "./spawner.js";
import type {
  OutputStream,
  Sandbox,
  SandboxProcess,
  SandboxReadiness,
  SandboxResult,
  SandboxSpec,
  SpawnHooks,
} from "./types.js";

const execFileAsync = promisify(execFile);

/** runner/native, resolved from this file (runner/src/sandbox/sandbox.ts). */
const NATIVE_DIR = fileURLToPath(new URL("../../native/", import.meta.url));

/** Default location of the native helper built by scripts/build-native.sh. */
export const DEFAULT_HELPER_PATH = join(NATIVE_DIR, "build", "mcpg-sandbox-helper");
/** Default location of sandbox-init built by scripts/build-native.sh. */
export const DEFAULT_INIT_PATH = join(NATIVE_DIR, "build", "mcpg-sandbox-init");
/** The in-sandbox forwarder of network "restricted" (docs/adr/0018-egress-proxy.md). */
export const EGRESS_FORWARDER_PATH = join(NATIVE_DIR, "egress", "forwarder.cjs");
/** Default directory of the stub /etc/passwd, /etc/group and /etc/hosts. */
export const DEFAULT_ETC_STUB_DIR = join(NATIVE_DIR, "etc");
/** Protocol line the helper must print for `version` (bumped with the C side). */
const HELPER_PROTOCOL = "mcpg-sandbox-helper 8";
/** Oldest bubblewrap with --disable-userns, --size and --perms for tmpfs. */
const MIN_BWRAP: readonly [number, number, number] = [0, 8, 0];
/** Descriptor (in the launcher) on which it writes its status lines. */
const STATUS_FD = 5;
/** Descriptor of a prepared launcher's prebuilt Landlock ruleset (launch.c RULESET_FD). */
const RULESET_FD = 20;
/** Descriptor (in the launcher) from which its child reads "go" once placed in its cgroup. */
const GO_FD = 6;
/** Descriptor (in the launcher and bwrap) of the workspace's .git with git_read_only. */
const GIT_FD = 8;
/** Where each runner's slots directory is made (ADR 0028). */
const SLOTS_PARENT = "/run/mcpg-slots";

/**
 * Opens the workspace's `.git` for a read-only bind without following a symlink: `.git` is
 * the only component a task controls (O_NOFOLLOW), so a link to a host directory is refused
 * instead of being bound into the sandbox. undefined when there is no `.git`.
 */
function openGitDir(workspaceDir: string): number | undefined {
  try {
    return openSync(
      join(workspaceDir, ".git"),
      fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW,
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    throw new SandboxSpecError(
      `the workspace's .git is not a directory (${code}: a symlink or a gitdir file) and the policy makes .git read-only (git_read_only): reset the workspace`,
    );
  }
}

const BWRAP_HINT = "run `npm run setup` or `apt-get install bubblewrap`";
const HELPER_HINT =
  "run `bash scripts/build-native.sh` (needs gcc, make, pkg-config and libseccomp-dev)";

/** Options of {@link createSandbox}. */
export interface SandboxOptions {
  /** bubblewrap binary; default: the first of /usr/bin/bwrap, /usr/local/bin/bwrap, /bin/bwrap. */
  bwrapPath?: string;
  /** Native helper (seccomp compiler, launcher); default runner/native/build/mcpg-sandbox-helper. */
  helperPath?: string;
  /** sandbox-init binary bound into every sandbox; default runner/native/build/mcpg-sandbox-init. */
  initPath?: string;
  /** Directory holding the stub passwd, group and hosts files; default runner/native/etc. */
  etcStubDir?: string;
  /**
   * Host uid the sandbox runs as when the runner is root (default 65534, "nobody"). It must
   * not be 0, must own the workspaces and must be able to read the helper, init and stubs.
   * When the runner is not root, tasks run as the runner's own uid.
   */
  sandboxUid?: number;
  /** Host gid the sandbox runs as when the runner is root (default 65534). */
  sandboxGid?: number;
  /** Extra host directories bound read-only at the same path (e.g. "/opt/toolchain"). */
  extraReadOnlyPaths?: string[];
  /** Milliseconds to wait for the launcher after asking it to kill a tree, before SIGKILL. */
  killGraceMs?: number;
  /**
   * Per-task cgroups: "auto" (default) uses a delegated cgroup v2 subtree, else the cgroup v1
   * memory and pids controllers, else none (see {@link SandboxOptions.requireCgroups}); "off"
   * never creates cgroups.
   */
  cgroups?: "auto" | "off";
  /**
   * Refuse tasks (readiness not ready, spawn throws SandboxUnavailableError) unless per-task
   * memory and pids cgroups are enforced. Recommended for production.
   */
  requireCgroups?: boolean;
  /** Memory limit of all tasks together (the runner's task cgroup), bytes; 0 = none. */
  totalTaskMemoryBytes?: number;
  /**
   * Landlock (what a task may execute and write, enforced by the kernel; see
   * docs/security/sandbox.md): "auto" (default) applies it when the kernel supports it;
   * "off" never does.
   */
  landlock?: "auto" | "off";
  /**
   * Refuse tasks (readiness not ready, spawn throws SandboxUnavailableError) unless Landlock
   * is applied to them. Recommended for production.
   */
  requireLandlock?: boolean;
  /**
   * Most prepared launchers held ready (forked, in a fresh cgroup, waiting for one task; see
   * launcher-pool.ts); the pool adapts between one and this. Default 4; 0 turns it off.
   */
  preparedSandboxes?: number;
  /** The pool shrinks by one after this long without a task finding it empty (default 60 s). */
  preparedIdleMs?: number;
  /**
   * Prepared sandboxes (ADR 0028): members of the pool also run bwrap ahead of their task —
   * namespaces, mounts and seccomp in place — and receive the task's workspace by a mount
   * on their slot. Needs root (a mount in the runner's mount namespace); elsewhere, and for
   * tasks with stdin, network "restricted", read-only paths or a read-only `.git`, tasks use
   * prepared launchers as before. Default true.
   */
  preparedNamespaces?: boolean;
  /** Pre-made cgroup controller (tests); default: detected once with createCgroupController. */
  cgroupController?: CgroupController;
  /** Logger (pino); nothing is logged when absent. */
  logger?: Logger;
}

type PreparedLauncher = PoolMember<Prepared, SpawnedProcess>;

/** What a prepared sandbox's command line depends on besides its Prepared (ADR 0028). */
interface SandboxShape {
  p: Prepared;
  network: "none" | "host";
  tmpBytes: number;
}
type PreparedSandbox = PoolMember<SandboxShape, SpawnedProcess> & { slot: string };

interface Prepared {
  bwrapPath: string;
  bwrapVersion: string;
  helperPath: string;
  layout: HostLayout;
  bpfMain: Buffer;
  bpfArgs: Buffer;
  cgroups: CgroupController;
  /** Landlock ABI applied to tasks; 0: none. */
  landlockAbi: number;
}

interface ExitInfo {
  code: number;
  signal: number;
  userUs: number;
  systemUs: number;
  maxRssKb: number;
  started: boolean;
  killed: boolean;
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function signalName(n: number): string {
  for (const [name, value] of Object.entries(osConstants.signals)) {
    if (value === n) return name;
  }
  return `SIG${n}`;
}

function parseVersion(text: string): [number, number, number] | null {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  if (m === null) return null;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

function versionAtLeast(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < 3; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

function findBwrap(explicit: string | undefined): string | null {
  const candidates = explicit
    ? [explicit]
    : ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"];
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  return null;
}

function parseExitLine(line: string): ExitInfo | null {
  const f = line.split(" ");
  if (f.length !== 8 || f[0] !== "exit") return null;
  const n = f.slice(1).map(Number);
  if (n.some((x) => !Number.isFinite(x))) return null;
  return {
    code: n[0] ?? -1,
    signal: n[1] ?? 0,
    userUs: n[2] ?? 0,
    systemUs: n[3] ?? 0,
    maxRssKb: n[4] ?? 0,
    started: n[5] === 1,
    killed: n[6] === 1,
  };
}

function validateSpec(spec: SandboxSpec): void {
  if (!isAbsolute(spec.workspaceDir)) {
    throw new SandboxSpecError("workspaceDir must be an absolute host path");
  }
  if (spec.network !== "none" && spec.network !== "host" && spec.network !== "restricted") {
    throw new SandboxSpecError('network must be "none", "host" or "restricted"');
  }
  if (spec.network === "restricted" && !isAbsolute(spec.egress?.socketDir ?? "")) {
    throw new SandboxSpecError('network "restricted" needs the egress proxy socket directory');
  }
  if (!Number.isInteger(spec.timeoutMs) || spec.timeoutMs <= 0) {
    throw new SandboxSpecError("timeoutMs must be a positive integer");
  }
  for (const path of spec.readOnlyPaths ?? []) {
    if (
      !isAbsolute(path) ||
      posix.normalize(path) !== path ||
      path === "/" ||
      path.includes("\0")
    ) {
      throw new SandboxSpecError(
        `read-only path ${JSON.stringify(path)} must be absolute and normalized`,
      );
    }
  }
  const limits = sandboxLimitsSchema.safeParse(spec.limits);
  if (!limits.success) {
    throw new SandboxSpecError(
      `invalid limits: ${limits.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
}

/** Names task cgroups: one counter per process, as the names are (several sandboxes may share it). */
let taskCounter = 0;

/**
 * Creates the runner's kernel sandbox: bubblewrap (namespaces, read-only system, private
 * /tmp, workspace only), two libseccomp filters, rlimits set inside the task's user
 * namespace, a wall-clock deadline that kills the whole tree, capped output.
 * Fails closed: if anything is missing, {@link Sandbox.spawn} throws
 * {@link SandboxUnavailableError}; nothing ever runs unsandboxed.
 *
 * @example
 * const sandbox = createSandbox({ logger });
 * const proc = await sandbox.spawn(
 *   { command: "echo", args: ["hello"], env: {}, cwd: "", workspaceDir, network: "none",
 *     timeoutMs: 10_000, limits: DEFAULT_SANDBOX_LIMITS },
 *   { onOutput: (stream, data) => process.stdout.write(data) },
 * );
 * const result = await proc.result; // { status: "completed", exitCode: 0, ... }
 */
export function createSandbox(options: SandboxOptions): Sandbox {
  const helperPath = options.helperPath ?? DEFAULT_HELPER_PATH;
  const initPath = options.initPath ?? DEFAULT_INIT_PATH;
  const etcStubDir = options.etcStubDir ?? DEFAULT_ETC_STUB_DIR;
  const sandboxUid = options.sandboxUid ?? 65534;
  const sandboxGid = options.sandboxGid ?? 65534;
  const killGraceMs = options.killGraceMs ?? 2000;
  const log = options.logger;
  let prepared: Prepared | null = null;
  let cgroupController: Promise<CgroupController> | null = null;
  /** Task cgroups being removed after their task's result was given; close() awaits them. */
  const removals = new Set<Promise<void>>();
  function removeLater(cg: TaskCgroup): void {
    const removal = cg.destroy().finally(() => removals.delete(removal));
    removals.add(removal);
  }

  /**
   * The Landlock policy (landlockPrebuildArgs) of the latest task: prepared launchers build
   * its program-directory rules ahead of their task (ADR 0024).
   */
  let expectedPolicy: string[] | null = null;

  /**
   * Where prepared sandboxes' slots live (ADR 0028): an empty directory on which the spawner
   * mounts a small shared tmpfs. Only as root (the mounts need CAP_SYS_ADMIN).
   */
  const withSlots =
    options.preparedNamespaces !== false && isRoot() && (options.preparedSandboxes ?? 4) > 0;
  /** Made when the first spawner starts; the spawner removes it when it exits. */
  let slotsDir: string | undefined;
  /** Forks the launchers (the runner never forks itself, ADR 0023); started on first use. */
  const spawner = createSpawner({
    helperPath,
    ...(withSlots
      ? {
          slotsDir: () => {
            // Under /run, which no sandbox may bind (host-layout.ts, mcp-servers.ts): a
            // recursive bind of a parent would receive every workspace mounted on a slot.
            try {
              mkdirSync(SLOTS_PARENT, { recursive: true, mode: 0o711 });
              chmodSync(SLOTS_PARENT, 0o711);
              slotsDir ??= mkdtempSync(join(SLOTS_PARENT, "r"));
            } catch (err) {
              log?.info({ err }, "no directory for prepared sandboxes' slots");
            }
            return slotsDir;
          },
        }
      : {}),
    ...(log ? { log } : {}),
  });
  /** Whether the current spawner's slots work (known once it has started). */
  let slotsUsable = false;
  let saidNoSlots = false;
  function checkSlots(): void {
    if (!withSlots) return;
    void spawner.slots().then(
      (why) => {
        slotsUsable = why === null;
        if (why !== null && !saidNoSlots) {
          saidNoSlots = true;
          log?.info({ why }, "prepared sandboxes are not used; tasks use prepared launchers");
        }
      },
      () => {
        slotsUsable = false;
      },
    );
  }
  /** Slots being removed after their sandbox ended; close() awaits them. */
  function unslotLater(slot: string): void {
    const removal = spawner
      .slot("unslot", slot)
      .catch((err: unknown) => log?.warn({ err, slot }, "cannot remove a prepared sandbox's slot"))
      .finally(() => removals.delete(removal));
    removals.add(removal);
  }

  /**
   * The seccomp programs as read-only, unlinked files, one per content, kept open for the
   * sandbox's lifetime: the spawner reopens one for each launcher (a fresh offset each time),
   * so bwrap reads it to EOF from its fd 3 or 4 without the runner writing a pipe per task.
   * Never closed while a spawn could still name its descriptor (a reused number would hand
   * another file to bwrap).
   */
  const seccompFiles = new Map<string, number>();
  let seccompFileOf = new WeakMap<Buffer, number>();
  function seccompFile(bpf: Buffer): number {
    const known = seccompFileOf.get(bpf);
    if (known !== undefined) return known;
    const key = bpf.toString("base64");
    let fd = seccompFiles.get(key);
    if (fd === undefined) {
      const dir = mkdtempSync(join(tmpdir(), "mcpg-seccomp-"));
      try {
        const path = join(dir, "filter.bpf");
        writeFileSync(path, bpf, { mode: 0o400 });
        fd = openSync(path, "r");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      seccompFiles.set(key, fd);
    }
    seccompFileOf.set(bpf, fd);
    return fd;
  }

  /** Detects the cgroup layer once per sandbox (it creates the runner's parent cgroup). */
  function cgroups(): Promise<CgroupController> {
    if (options.cgroupController) return Promise.resolve(options.cgroupController);
    cgroupController ??= createCgroupController({
      mode: options.cgroups ?? "auto",
      totalMemoryBytes: options.totalTaskMemoryBytes ?? 0,
    });
    return cgroupController;
  }

  async function prepare(): Promise<Prepared> {
    if (isRoot() && (sandboxUid === 0 || sandboxGid === 0)) {
      throw new SandboxUnavailableError("sandboxUid/sandboxGid must not be 0 (root)");
    }
    const bwrapPath = findBwrap(options.bwrapPath);
    if (bwrapPath === null) {
      throw new SandboxUnavailableError(`bubblewrap not found: ${BWRAP_HINT}`);
    }
    let bwrapVersion = "";
    try {
      const { stdout } = await execFileAsync(bwrapPath, ["--version"], { timeout: 5000 });
      bwrapVersion = stdout.trim();
    } catch (err) {
      throw new SandboxUnavailableError(`bubblewrap at ${bwrapPath} does not run: ${BWRAP_HINT}`, {
        cause: err,
      });
    }
    const version = parseVersion(bwrapVersion);
    if (version === null || !versionAtLeast(version, MIN_BWRAP)) {
      throw new SandboxUnavailableError(
        `bubblewrap ${bwrapVersion || "(unknown version)"} is too old: 0.8.0 or newer is needed (--disable-userns, --size); ${BWRAP_HINT}`,
      );
    }
    for (const [what, path] of [
      ["sandbox helper", helperPath],
      ["sandbox init", initPath],
    ] as const) {
      try {
        accessSync(path, fsConstants.X_OK);
      } catch {
        throw new SandboxUnavailableError(`${what} not found at ${path}: ${HELPER_HINT}`);
      }
    }
    let bpfMain: Buffer;
    let bpfArgs: Buffer;
    try {
      const { stdout: v } = await execFileAsync(helperPath, ["version"], { timeout: 5000 });
      if (!v.startsWith(HELPER_PROTOCOL)) {
        throw new Error(`helper protocol mismatch: ${v.trim()} (expected ${HELPER_PROTOCOL})`);
      }
      const main = await execFileAsync(helperPath, ["bpf", "main"], {
        encoding: "buffer",
        timeout: 5000,
      });
      const args = await execFileAsync(helperPath, ["bpf", "args"], {
        encoding: "buffer",
        timeout: 5000,
      });
      bpfMain = main.stdout;
      bpfArgs = args.stdout;
    } catch (err) {
      throw new SandboxUnavailableError(
        `sandbox helper cannot compile the seccomp filter (${(err as Error).message}): ${HELPER_HINT}`,
        { cause: err },
      );
    }
    if (bpfMain.length === 0 || bpfMain.length % 8 !== 0 || bpfArgs.length % 8 !== 0) {
      throw new SandboxUnavailableError(
        `sandbox helper produced an invalid seccomp program: ${HELPER_HINT}`,
      );
    }
    let layout: HostLayout;
    try {
      layout = detectHostLayout({
        initPath,
        etcStubDir,
        extraReadOnly: options.extraReadOnlyPaths ?? [],
      });
    } catch (err) {
      throw new SandboxUnavailableError(`sandbox layout: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const landlockAbi = await probeLandlock();
    const cg = await cgroups();
    if (options.requireCgroups === true && !cg.complete) {
      throw new SandboxUnavailableError(
        `per-task cgroups are required (requireCgroups: true) but not usable: ${cg.detail}. ` +
          "Run the runner in a delegated cgroup v2 (systemd Delegate=yes, or a container with " +
          "its own cgroup namespace) or with writable cgroup v1 memory and pids controllers",
      );
    }
    const candidate: Prepared = {
      bwrapPath,
      bwrapVersion,
      helperPath,
      layout,
      bpfMain,
      bpfArgs,
      cgroups: cg,
      landlockAbi,
    };
    await selfTest(candidate);
    return candidate;
  }

  /** The Landlock ABI to apply (0: none); throws when requireLandlock cannot be met. */
  let saidNoLandlock = false;
  async function probeLandlock(): Promise<number> {
    let abi = 0;
    if (options.landlock !== "off") {
      try {
        const { stdout } = await execFileAsync(helperPath, ["landlock-abi"], { timeout: 5000 });
        abi = Number.parseInt(stdout.trim(), 10) || 0;
      } catch {
        abi = 0;
      }
    }
    if (abi < 1 && options.requireLandlock === true) {
      throw new SandboxUnavailableError(
        options.landlock === "off"
          ? 'Landlock is required (requireLandlock: true) but landlock is "off"'
          : "Landlock is required (requireLandlock: true) but the kernel does not offer it: " +
              "boot a kernel with CONFIG_SECURITY_LANDLOCK=y and landlock in the lsm= list " +
              "(check /sys/kernel/security/lsm)",
      );
    }
    // Said once, not at every readiness re-check (every 30 s); again if it comes and goes.
    if (abi < 1 && !saidNoLandlock) {
      log?.warn("Landlock is not available: tasks run without the Landlock layer");
    }
    saidNoLandlock = abi < 1;
    return abi;
  }

  /** Runs `true` in a real sandbox: proves user namespaces, bwrap flags and seccomp work. */
  async function selfTest(p: Prepared): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), "mcpg-sandbox-probe-"));
    try {
      if (isRoot()) await chown(dir, sandboxUid, sandboxGid);
      let stderr = "";
      const proc = await launch(
        p,
        {
          command: "true",
          args: [],
          env: {},
          cwd: "",
          workspaceDir: dir,
          network: "none",
          timeoutMs: 10_000,
          limits: DEFAULT_SANDBOX_LIMITS,
        },
        {
          onOutput: (stream, data) => {
            if (stream === "stderr") stderr += Buffer.from(data).toString("utf8");
          },
        },
        false,
      );
      const r = await proc.result;
      if (r.status !== "completed" || r.exitCode !== 0) {
        const detail = (stderr.trim() || r.message || `exit code ${r.exitCode}`).slice(0, 500);
        throw new SandboxUnavailableError(
          `sandbox self-test failed: ${detail}. If user namespaces are refused, enable them ` +
            "(sysctl user.max_user_namespaces=15000; kernel.unprivileged_userns_clone=1; on " +
            "Ubuntu kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap)" +
            (isRoot()
              ? `; uid ${sandboxUid} must be able to read ${helperPath}, ${initPath} and ${etcStubDir}`
              : ""),
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async function ensurePrepared(): Promise<Prepared> {
    if (prepared !== null) return prepared;
    prepared = await prepare();
    checkSlots();
    return prepared;
  }

  /**
   * Starts the host launcher through the spawner (ADR 0023; as the sandbox uid when the runner
   * is root): the runner never forks itself. Its parent is the spawner, so that is the pid it
   * checks and dies with. `line` is the bwrap command line, or ["@", …] for a prepared launcher
   * that reads it from GO_FD after 'G' (with the Landlock policy to prebuild, ADR 0024).
   */
  function spawnLauncher(
    p: Prepared,
    line: readonly string[],
    o: { stdin: boolean; go: boolean; gitFd?: number },
  ): Promise<SpawnedProcess> {
    return spawner.spawn({
      path: p.helperPath,
      argv: (parent) => [
        p.helperPath,
        "launch",
        String(STATUS_FD),
        String(parent),
        o.go ? String(GO_FD) : "-1",
        "--",
        ...line,
      ],
      stdio: [
        o.stdin ? "read" : "ignore",
        "write",
        "write",
        { fd: seccompFile(p.bpfMain) },
        { fd: seccompFile(p.bpfArgs) },
        "write",
        o.go ? "read" : "ignore",
        p.landlockAbi > 0 ? "write" : "ignore",
        ...(o.gitFd === undefined ? [] : [{ fd: o.gitFd }]),
      ],
      ...(isRoot() ? { uid: sandboxUid, gid: sandboxGid } : {}),
    });
  }

  /**
   * Starts one prepared launcher: a cgroup without limits yet, the launcher in "@" mode, its
   * seccomp programs on fds 3 and 4, its child placed into the cgroup as soon as it announces
   * itself (and building the expected policy's Landlock rules meanwhile, ADR 0024).
   */
  async function prepareLauncher(p: Prepared): Promise<PreparedLauncher | null> {
    return prepareMember(p, null);
  }

  /**
   * Starts one prepared sandbox (ADR 0028): a prepared launcher whose child, once placed, runs
   * bwrap at once with the shape's command line and an empty slot at /workspace; ready when
   * sandbox-init says it waits.
   */
  async function prepareSandbox(shape: SandboxShape): Promise<PreparedSandbox | null> {
    if (!slotsUsable || slotsDir === undefined) return null;
    const slot = `s${process.pid}-${++taskCounter}`;
    await spawner.slot("slot", slot);
    try {
      const argv = buildBwrapArgv({
        // (only the shape's fields are on a prepared sandbox's command line)
        spec: {
          command: "/",
          args: [],
          env: {},
          cwd: "",
          workspaceDir: "/",
          network: shape.network,
          timeoutMs: 1,
          limits: { ...DEFAULT_SANDBOX_LIMITS, tmpBytes: shape.tmpBytes },
        },
        env: {},
        layout: shape.p.layout,
        landlockAbi: shape.p.landlockAbi,
        preparedSlot: join(slotsDir, slot),
      });
      const m = await prepareMember(shape.p, { argv, slot });
      if (m === null) {
        unslotLater(slot);
        return null;
      }
      return Object.assign(m as unknown as PoolMember<SandboxShape, SpawnedProcess>, {
        p: shape,
        slot,
      });
    } catch (err) {
      unslotLater(slot);
      throw err;
    }
  }

  async function prepareMember(
    p: Prepared,
    sandbox: { argv: string[]; slot: string } | null,
  ): Promise<PreparedLauncher | null> {
    // The Landlock policy its child builds the program-directory rules of while it waits.
    const prebuild = p.landlockAbi > 0 ? expectedPolicy : null;
    let cg: TaskCgroup | null = null;
    if (p.cgroups.kind !== "none") cg = await p.cgroups.create(`t${process.pid}-${++taskCounter}`);
    let child: SpawnedProcess;
    try {
      child = await spawnLauncher(
        p,
        sandbox === null
          ? ["@", ...(prebuild ?? [])]
          : ["%", ...(prebuild ?? []), "--", p.bwrapPath, ...sandbox.argv],
        { stdin: false, go: true },
      );
    } catch (err) {
      if (cg !== null) removeLater(cg);
      throw err;
    }
    const go = (child.stdio as unknown as Array<Writable | null>)[GO_FD] ?? null;
    go?.on("error", () => {
      // the launcher died: its close discards the member
    });
    const status = (child.stdio as unknown as Array<Readable | null>)[STATUS_FD] ?? null;
    let text = "";
    let settle: (inCgroup: boolean) => void = () => undefined;
    const placed = new Promise<boolean>((resolve) => {
      settle = resolve;
    });
    const onData = (chunk: Buffer) => {
      text += chunk.toString("utf8");
      let nl = text.indexOf("\n");
      while (nl >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        if (line.startsWith("pid ")) {
          const pid = Number(line.slice(4));
          // A prepared sandbox runs bwrap once placed ('G'), and is ready once it waits.
          const placedNow = () => (sandbox === null ? settle(true) : go?.write("G"));
          if (cg === null) placedNow();
          else
            cg.place(pid).then(
              () => placedNow(),
              (err: unknown) => {
                log?.warn({ err }, "a prepared launcher could not be placed into its cgroup");
                settle(false);
                // 'X' and SIGTERM: the launcher kills its waiting child and exits (a SIGKILL
                // of the launcher alone would leave the child waiting on its go pipe).
                go?.end("X");
                child.kill("SIGTERM");
              },
            );
        } else if (line === "waiting" && sandbox !== null) {
          settle(true);
        } else if (line.startsWith("error ")) {
          log?.warn({ error: line.slice(6) }, "a prepared launcher failed");
          settle(false);
        }
        nl = text.indexOf("\n");
      }
    };
    const onClose = () => {
      settle(false);
      if (sandbox === null) pool.discard(member);
      else sandboxPool.discard(member as unknown as PreparedSandbox);
      if (cg !== null) removeLater(cg);
      if (sandbox !== null) unslotLater(sandbox.slot);
    };
    status?.on("data", onData);
    status?.on("error", () => undefined);
    child.on("close", onClose);
    // An idle member does not keep the process alive (a runner or test that never closes its
    // sandbox still exits; the launcher dies with it, PR_SET_PDEATHSIG); the taker refs it.
    const handles = child.stdio.filter((h) => h !== null) as unknown as Array<{
      ref?: () => void;
      unref?: () => void;
    }>;
    child.unref();
    for (const h of handles) h.unref?.();
    const member: PreparedLauncher = {
      p,
      child,
      ...(prebuild === null ? {} : { prebuilt: prebuild.join("\0") }),
      cg,
      placed,
      leftover: () => text,
      detach() {
        status?.off("data", onData);
        child.off("close", onClose);
        child.ref();
        for (const h of handles) h.ref?.();
      },
      dispose() {
        // 'X' (or EOF): the waiting child exits without running anything; then the launcher.
        // Referenced again, so that a shutdown waits for it and its cgroup's removal.
        child.ref();
        go?.end("X");
        child.kill("SIGTERM");
      },
    };
    void placed.then((inCgroup) => {
      member.ready = inCgroup;
    });
    return member;
  }

  const samePrepared = (a: Prepared, b: Prepared) =>
    a === b ||
    (a.helperPath === b.helperPath &&
      a.landlockAbi === b.landlockAbi &&
      a.cgroups === b.cgroups &&
      a.bpfMain.equals(b.bpfMain) &&
      a.bpfArgs.equals(b.bpfArgs));
  const pool = createLauncherPool({
    max: options.preparedSandboxes ?? 4,
    idleMs: options.preparedIdleMs ?? 60_000,
    start: prepareLauncher,
    compatible: samePrepared,
    ...(log ? { log } : {}),
  });
  /** Prepared sandboxes of the latest task's shape (ADR 0028); same size bounds. */
  const sandboxPool = createLauncherPool<SandboxShape, SpawnedProcess>({
    max: withSlots ? (options.preparedSandboxes ?? 4) : 0,
    idleMs: options.preparedIdleMs ?? 60_000,
    start: async (shape) =>
      (await prepareSandbox(shape)) as PoolMember<SandboxShape, SpawnedProcess> | null,
    // (a shape's command line holds the layout and bwrap's path: a new preparation with another
    // one makes the members of the old one useless)
    compatible: (a, b) =>
      a.p === b.p ||
      (samePrepared(a.p, b.p) &&
        a.p.bwrapPath === b.p.bwrapPath &&
        JSON.stringify(a.p.layout) === JSON.stringify(b.p.layout)),
    matches: (a, b) => a.network === b.network && a.tmpBytes === b.tmpBytes,
    ...(log ? { log } : {}),
  });

  async function launch(
    p: Prepared,
    spec: SandboxSpec,
    hooks: SpawnHooks,
    usePool = true,
  ): Promise<SandboxProcess> {
    validateSpec(spec);
    const env =
      spec.network === "restricted"
        ? { ...buildSandboxEnv(spec.env), ...egressProxyEnv() }
        : buildSandboxEnv(spec.env);
    const gitFd = spec.exec?.gitReadOnly === true ? openGitDir(spec.workspaceDir) : undefined;
    const pidsCgroup = p.cgroups.layers.some((l) => l.endsWith("-pids"));
    // With a pids cgroup, pids.max is the bound the task meets; RLIMIT_NPROC stays one above it
    // as a second layer. The exec supervisor (with Landlock) is one more process of the task's.
    const supervisor = p.landlockAbi > 0 ? 1 : 0;
    const argvSpec =
      pidsCgroup || supervisor > 0
        ? {
            ...spec,
            limits: {
              ...spec.limits,
              maxProcesses: spec.limits.maxProcesses + (pidsCgroup ? 1 : 0) + supervisor,
            },
          }
        : spec;
    let bwrapArgv: string[];
    let argvInput: BwrapArgvInput;
    let landlockPolicy: string[] | null;
    try {
      argvInput = {
        spec: argvSpec,
        env,
        layout: p.layout,
        landlockAbi: p.landlockAbi,
        ...(gitFd === undefined ? {} : { gitReadOnlyFd: GIT_FD }),
        ...(spec.network === "restricted"
          ? { egressForwarder: { nodePath: process.execPath, scriptPath: EGRESS_FORWARDER_PATH } }
          : {}),
      };
      bwrapArgv = buildBwrapArgv(argvInput);
      landlockPolicy = landlockPrebuildOf(argvInput);
      // The command line a prepared launcher reads is NUL-separated (spawn refuses NUL itself).
      if (bwrapArgv.some((a) => a.includes("\0"))) {
        throw new SandboxSpecError("the sandbox command line contains a NUL byte");
      }
    } catch (err) {
      if (gitFd !== undefined) closeSync(gitFd);
      throw err;
    }
    // The task's cgroup(s): memory.max counts anonymous memory, shmem (memfd, tmpfs) and kernel
    // memory of the whole tree; pids.max adds bwrap's monitor process to maxProcesses.
    const cgLimits: CgroupLimits = {
      memoryBytes: spec.limits.memoryBytes,
      maxProcesses: spec.limits.maxProcesses + 1 + supervisor,
    };
    // A prepared sandbox when the task's shape allows one and one is ready (ADR 0028): its
    // namespaces and mounts are set up already; the workspace is mounted on its slot. Else a
    // prepared launcher (forked, placed into a fresh cgroup) when one is ready. Either is this
    // task's alone. Tasks with stdin (MCP servers) or an inherited .git descriptor start their
    // own: both are decided when the launcher is spawned.
    const shapeOk =
      usePool &&
      slotsUsable &&
      gitFd === undefined &&
      spec.stdin !== "pipe" &&
      spec.network !== "restricted" &&
      (spec.readOnlyPaths?.length ?? 0) === 0;
    const sandboxMember = shapeOk
      ? (sandboxPool.take({
          p,
          network: spec.network as "none" | "host",
          tmpBytes: spec.limits.tmpBytes,
        }) as PreparedSandbox | undefined)
      : undefined;
    const member: PreparedLauncher | undefined =
      (sandboxMember as unknown as PreparedLauncher | undefined) ??
      (usePool && gitFd === undefined && spec.stdin !== "pipe" ? pool.take(p) : undefined);
    // Its Landlock program-directory rules are built already when it expected this very policy
    // (sandbox-init then adds only the rest); the next members expect this task's.
    let landlock: "none" | "prebuilt" | "in-sandbox" = p.landlockAbi > 0 ? "in-sandbox" : "none";
    if (landlockPolicy !== null) {
      if (member?.prebuilt === landlockPolicy.join("\0")) {
        argvInput = { ...argvInput, landlockRulesetFd: RULESET_FD };
        bwrapArgv = buildBwrapArgv(argvInput);
        landlock = "prebuilt";
      }
      if (spec.stdin !== "pipe") expectedPolicy = landlockPolicy;
    }
    let cg: TaskCgroup | null = member ? member.cg : null;
    if (!member && p.cgroups.kind !== "none") {
      try {
        cg = await p.cgroups.create(`t${process.pid}-${++taskCounter}`, cgLimits);
      } catch (err) {
        if (gitFd !== undefined) closeSync(gitFd);
        throw new SandboxUnavailableError(
          `cannot create the task's cgroup (${p.cgroups.detail}): ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    const started = process.hrtime.bigint();
    let child: SpawnedProcess;
    try {
      child = member
        ? member.child
        : await spawnLauncher(p, [p.bwrapPath, ...bwrapArgv], {
            stdin: spec.stdin === "pipe",
            go: cg !== null,
            ...(gitFd === undefined ? {} : { gitFd }),
          });
    } catch (err) {
      if (cg !== null) removeLater(cg);
      throw new SandboxUnavailableError(
        `cannot start the sandbox launcher: ${(err as Error).message}`,
        { cause: err },
      );
    } finally {
      // The launcher holds its own copy of the .git descriptor now (or never will).
      if (gitFd !== undefined) closeSync(gitFd);
    }
    const go =
      member || cg !== null
        ? ((child.stdio as unknown as Array<Writable | null>)[GO_FD] ?? null)
        : null;
    go?.on("error", () => {
      // the launcher died first: reported through its status
    });
    let placementError = "";
    let oomKilled = false;
    const start = sandboxMember ? "prepared-sandbox" : member ? "prepared-launcher" : "cold";
    log?.debug(
      { pid: child.pid, command: spec.command, network: spec.network, landlock, start },
      "sandbox spawn",
    );

    const cap = spec.limits.maxOutputBytes;
    const counts: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
    const truncated: Record<OutputStream, boolean> = { stdout: false, stderr: false };
    let stderrHead = "";
    const capture = (stream: OutputStream) => (chunk: Buffer) => {
      if (stream === "stderr" && stderrHead.length < 2048) {
        stderrHead += chunk.subarray(0, 2048).toString("utf8");
      }
      // A server's stdout (stdin "pipe") is a protocol stream: not capped in total.
      if (stream === "stdout" && spec.stdin === "pipe") {
        try {
          hooks.onOutput(stream, chunk);
        } catch (err) {
          log?.warn({ err }, "sandbox onOutput hook threw");
        }
        return;
      }
      const room = cap - counts[stream];
      if (chunk.length > room) truncated[stream] = true;
      if (room <= 0) return; // keep draining, discard
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      counts[stream] += part.length;
      try {
        hooks.onOutput(stream, part);
      } catch (err) {
        log?.warn({ err }, "sandbox onOutput hook threw");
      }
    };
    (child.stdout as Readable).on("data", capture("stdout"));
    // Refused executions, reported by sandbox-init's exec supervisor (Landlock refuses them).
    const reports = (child.stdio as unknown as Array<Readable | null>)[REPORT_FD] ?? null;
    let reportText = "";
    const reported = new Set<string>();
    reports?.on("data", (chunk: Buffer) => {
      if (reportText.length > 64 * 1024) return;
      reportText += chunk.toString("utf8");
      let nl = reportText.indexOf("\n");
      while (nl >= 0) {
        const refusal = parseRefusal(reportText.slice(0, nl), spec.exec ?? DEFAULT_EXEC_POLICY);
        reportText = reportText.slice(nl + 1);
        // execvp() tries every PATH directory: /bin/dd and /usr/bin/dd are one refusal.
        if (refusal !== null && !reported.has(`${refusal.kind} ${refusal.path}`)) {
          reported.add(`${refusal.kind} ${refusal.path}`);
          log?.info({ refusal }, "sandbox refused an execution");
          try {
            hooks.onRefusal?.(refusal);
          } catch (err) {
            log?.warn({ err }, "sandbox onRefusal hook threw");
          }
        }
        nl = reportText.indexOf("\n");
      }
    });
    reports?.on("error", () => {
      // reported via close
    });
    (child.stderr as Readable).on("data", capture("stderr"));

    let statusText = member ? member.leftover() : "";
    let exitInfo: ExitInfo | null = null;
    let launcherError = "";
    const status = (child.stdio as unknown as Array<Readable | null>)[STATUS_FD] ?? null;
    status?.on("data", (chunk: Buffer) => {
      statusText += chunk.toString("utf8");
      let nl = statusText.indexOf("\n");
      while (nl >= 0) {
        const line = statusText.slice(0, nl);
        statusText = statusText.slice(nl + 1);
        if (line.startsWith("pid ") && cg !== null) {
          // Place the future bwrap into the task's cgroup(s) before it executes anything.
          const pid = Number(line.slice(4));
          const taskCg = cg;
          void taskCg.place(pid).then(
            () => go?.end("G"),
            (err: unknown) => {
              placementError = `cannot place the task into its cgroup: ${(err as Error).message}`;
              go?.end("X");
            },
          );
        } else if (line === "started") {
          try {
            hooks.onStarted?.();
          } catch (err) {
            log?.warn({ err }, "sandbox onStarted hook threw");
          }
        } else if (line.startsWith("exit ")) {
          exitInfo = parseExitLine(line);
        } else if (line.startsWith("error ")) {
          launcherError = line.slice(6);
        }
        nl = statusText.indexOf("\n");
      }
    });
    status?.on("error", () => {
      // reported via close
    });

    let killReason: "timed_out" | "cancelled" | null = null;
    let finished = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const kill = (reason: "timed_out" | "cancelled") => {
      if (finished || killReason !== null) return;
      killReason = reason;
      // The launcher SIGKILLs bwrap and every remaining child; the PID namespace dies
      // with its init. If the launcher does not answer, SIGKILL it: its death takes
      // bwrap (--die-with-parent) and the namespace with it.
      child.kill("SIGTERM");
      graceTimer = setTimeout(() => child.kill("SIGKILL"), killGraceMs);
      graceTimer.unref();
    };
    const deadline = setTimeout(() => kill("timed_out"), spec.timeoutMs);
    // cgroup v2 kills the whole task on OOM (memory.oom.group); v1 kills one process: the
    // runner then kills the rest, so both report one outcome and free tmpfs/memfd pages.
    const oomWatch =
      cg === null
        ? undefined
        : setInterval(() => {
            void cg?.usage().then((u) => {
              if (u.oomKills > 0 && !oomKilled) {
                oomKilled = true;
                kill("cancelled");
              }
            });
          }, 200);
    oomWatch?.unref();
    // The launcher reaps the whole tree before it exits; killed (its SIGKILL grace above, or
    // anyone else's), it cannot. Nothing of a task outlives its supervisor: whatever is left
    // in the task's cgroup is killed now — it holds the output pipes, so the task's result
    // would otherwise wait for it to end by itself.
    let usageAtExit: Promise<CgroupUsage> | undefined;
    let removedAtExit: Promise<void> | undefined;
    child.on("exit", (_code, sig) => {
      if (sig === null || cg === null) return;
      const taskCg = cg;
      // (its counters first: the result reports them, and the cgroup is gone after this)
      usageAtExit = taskCg.usage();
      removedAtExit = usageAtExit.then(() => taskCg.destroy());
    });

    const result = new Promise<SandboxResult>((resolve) => {
      child.on("close", async (code, sig) => {
        finished = true;
        clearTimeout(deadline);
        if (oomWatch !== undefined) clearInterval(oomWatch);
        if (graceTimer !== undefined) clearTimeout(graceTimer);
        const executionTimeMs = Number(process.hrtime.bigint() - started) / 1e6;
        const info = exitInfo as ExitInfo | null;
        const cgUsage = cg === null ? null : await (usageAtExit ?? cg.usage());
        // With the launcher's exit line, the whole tree is gone (it reaps everything it
        // supervises before writing it): the result does not wait for the cgroup's removal,
        // which close() still awaits. Without it (the launcher was killed), whatever is left
        // is killed with the cgroup before the result is given.
        if (cg !== null) {
          if (removedAtExit !== undefined) await removedAtExit;
          else if (info === null) await cg.destroy();
          else removeLater(cg);
        }
        // A replacement for a prepared launcher, now that this task no longer needs the
        // kernel's cgroup lock for its forks (see launcher-pool.ts).
        if (sandboxMember) {
          // (its workspace off the slot, and the slot gone, with the tree)
          unslotLater(sandboxMember.slot);
          sandboxPool.refill();
        } else if (member) pool.refill();
        if (cgUsage !== null && cgUsage.oomKills > 0) oomKilled = true;
        const base = {
          usage: {
            userCpuMs: info ? Math.round(info.userUs / 1000) : 0,
            systemCpuMs: info ? Math.round(info.systemUs / 1000) : 0,
            maxRssKb: info ? info.maxRssKb : 0,
            memoryPeakBytes: cgUsage?.memoryPeakBytes ?? 0,
            pidsLimitHits: cgUsage?.pidsLimitHits ?? 0,
          },
          oomKilled,
          executionTimeMs,
          stdoutTruncated: truncated.stdout,
          stderrTruncated: truncated.stderr,
        };
        const failed = (message: string): SandboxResult => ({
          ...base,
          status: "failed",
          exitCode: -1,
          signal: "",
          message,
        });
        const reason = killReason as "timed_out" | "cancelled" | null;
        let r: SandboxResult;
        if (oomKilled) {
          r = {
            ...base,
            status: "failed",
            exitCode: -1,
            signal: "SIGKILL",
            message: `out of memory: the task reached its memory limit of ${spec.limits.memoryBytes} bytes and was killed (OOM)`,
          };
        } else if (placementError !== "" && reason === null) {
          // (A task killed before it was placed — cancelled right after it was sent — has no
          // process left to place: that is the kill's outcome, not a placement failure.)
          r = failed(placementError);
        } else if (reason !== null) {
          r = {
            ...base,
            status: reason,
            exitCode: -1,
            signal: "SIGKILL",
            message:
              reason === "timed_out"
                ? `wall-clock deadline of ${spec.timeoutMs} ms exceeded; process tree killed`
                : "cancelled; process tree killed",
          };
        } else if (launcherError !== "") {
          r = failed(`sandbox launcher: ${launcherError}`);
        } else if (info === null) {
          r = failed(
            `sandbox launcher ended without a status (code ${code}, signal ${sig ?? "none"})`,
          );
        } else if (!info.started) {
          const detail = stderrHead.trim().split("\n")[0] ?? "";
          r = failed(
            `sandbox setup failed (bwrap exit code ${info.code})${detail ? `: ${detail}` : ""}`,
          );
        } else if (info.signal !== 0) {
          r = failed(`bwrap was killed by ${signalName(info.signal)}`);
        } else if (info.code > 128 && info.code <= 128 + 64) {
          // bwrap's PID 1 reports a task killed by signal N as exit code 128+N.
          r = {
            ...base,
            status: "completed",
            exitCode: -1,
            signal: signalName(info.code - 128),
            message: "",
          };
        } else {
          r = { ...base, status: "completed", exitCode: info.code, signal: "", message: "" };
        }
        log?.debug({ status: r.status, exitCode: r.exitCode, signal: r.signal }, "sandbox exit");
        resolve(r);
      });
    });

    if (sandboxMember) {
      // The task's limits, its workspace on the slot, then its message: nothing of the task's
      // runs before both; a sandbox that cannot get them runs nothing ("X").
      let message: Buffer;
      try {
        message = preparedTaskMessage(argvInput);
      } catch (err) {
        placementError = (err as Error).message;
        message = Buffer.from("X");
      }
      const slot = sandboxMember.slot;
      void Promise.resolve(cg?.limit(cgLimits))
        .then(
          () => spawner.slot("bind", slot, spec.workspaceDir),
          (err: unknown) => {
            throw new Error(`cannot place the task into its cgroup: ${(err as Error).message}`);
          },
        )
        .then(
          () => go?.end(message),
          (err: unknown) => {
            placementError ||= (err as Error).message.startsWith("cannot place")
              ? (err as Error).message
              : `sandbox setup failed: cannot mount the task's workspace into its prepared sandbox: ${(err as Error).message}`;
            go?.end("X");
          },
        );
    } else if (member) {
      // The task's limits, then 'G' and its command line: nothing of the task's runs before
      // its cgroup limits it, and a launcher that cannot be limited runs nothing ("X").
      const payload = Buffer.from(`G${[p.bwrapPath, ...bwrapArgv].join("\0")}\0`, "utf8");
      // (take() hands out only a member already in its cgroup.)
      void Promise.resolve(cg?.limit(cgLimits)).then(
        () => go?.end(payload),
        (err: unknown) => {
          placementError = `cannot place the task into its cgroup: ${(err as Error).message}`;
          go?.end("X");
        },
      );
    }

    const stdin = spec.stdin === "pipe" ? (child.stdin as Writable | null) : null;
    stdin?.on("error", () => {
      // the process exited: reported through result
    });
    return { result, cancel: () => kill("cancelled"), stdin, pid: child.pid ?? -1, start };
  }

  return {
    async readiness(): Promise<SandboxReadiness> {
      const cg = await cgroups();
      const limitLayers = ["rlimits", "pid-namespace", "tmpfs-size", ...cg.layers];
      let landlockAbi = 0;
      const cgroup = cg.kind === "none" ? `not used: ${cg.detail}` : cg.detail;
      try {
        prepared = await prepare();
        checkSlots();
        landlockAbi = prepared.landlockAbi;
        return {
          ready: true,
          problem: "",
          limitLayers: [
            ...limitLayers,
            ...(landlockAbi > 0 ? [`landlock-abi-${landlockAbi}`] : []),
          ],
          cgroup,
          bwrapVersion: prepared.bwrapVersion,
          landlockAbi,
        };
      } catch (err) {
        prepared = null;
        const problem =
          err instanceof SandboxUnavailableError
            ? err.message
            : `sandbox check failed: ${String(err)}`;
        return { ready: false, problem, limitLayers, cgroup, bwrapVersion: "", landlockAbi };
      }
    },

    async spawn(spec: SandboxSpec, hooks: SpawnHooks): Promise<SandboxProcess> {
      let p: Prepared;
      try {
        p = await ensurePrepared();
      } catch (err) {
        if (err instanceof SandboxUnavailableError) throw err;
        throw new SandboxUnavailableError(`sandbox check failed: ${String(err)}`, { cause: err });
      }
      return launch(p, spec, hooks);
    },

    async close() {
      await pool.close();
      await sandboxPool.close();
      // (the slots' removal needs the spawner)
      while (removals.size > 0) await Promise.all([...removals]);
      await spawner.close();
      if (slotsDir !== undefined) {
        try {
          rmdirSync(slotsDir);
        } catch {
          // gone (the spawner removes it when it exits), or still mounted while it finishes
        }
      }
      // (After every spawn has been answered: the runner stops its tasks and servers first.)
      for (const fd of seccompFiles.values()) closeSync(fd);
      seccompFiles.clear();
      seccompFileOf = new WeakMap();
      while (removals.size > 0) await Promise.all([...removals]);
      if (options.cgroupController) return;
      const cg = cgroupController;
      cgroupController = null;
      await (await cg)?.close();
    },
  };
}
