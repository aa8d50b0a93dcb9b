/**
 * Per-task cgroups: one small interface over cgroup v2 (production: a delegated subtree) and
 * the cgroup v1 `memory` and `pids` controllers (hybrid hosts). The runner creates every cgroup
 * below the one it was started in and never writes anything above it.
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { access, constants, mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Limits a task cgroup enforces. */
export interface CgroupLimits {
  /**
   * memory.max (v2) / memory.limit_in_bytes (v1): everything the task's processes are charged
   * for — anonymous memory, shmem (memfd, tmpfs, /dev/shm), page cache and kernel memory.
   * Swap is set to 0 where the kernel offers the knob.
   */
  memoryBytes: number;
  /** pids.max: processes and threads of the task, bwrap's own processes included. */
  maxProcesses: number;
  /** cpu.max quota as a fraction of one CPU (v2 only; 0 = no quota). */
  cpuQuotaPercent?: number;
}

/** What a task's cgroup measured. */
export interface CgroupUsage {
  /** Highest memory charge seen, in bytes (memory.peak / memory.max_usage_in_bytes); 0 if unknown. */
  memoryPeakBytes: number;
  /** Processes the kernel's OOM killer killed in this cgroup. */
  oomKills: number;
  /** Times a fork/clone was refused because pids.max was reached. */
  pidsLimitHits: number;
}

/** The cgroup(s) of one task. */
export interface TaskCgroup {
  /** Moves a process (the future bwrap, before it executes) into the task's cgroup(s). */
  place(pid: number): Promise<void>;
  /**
   * Writes the task's limits (a cgroup created without them for a prepared sandbox gets them
   * here, before its process executes anything of the task's); throws when one cannot be set.
   */
  limit(limits: CgroupLimits): Promise<void>;
  /** Reads the counters; never throws (zeros when unreadable). */
  usage(): Promise<CgroupUsage>;
  /** Kills whatever is left in the cgroup(s) and removes them; never throws. */
  destroy(): Promise<void>;
}

/** Which cgroup hierarchy the runner uses for tasks. */
export type CgroupKind = "v2" | "v1" | "none";

/** Per-task cgroup support on this host. */
export interface CgroupController {
  /** "v2", "v1" or "none" (no usable delegated cgroup). */
  readonly kind: CgroupKind;
  /**
   * Active limit layers contributed, e.g. ["cgroup-v2-memory", "cgroup-v2-pids"] or
   * ["cgroup-v1-memory", "cgroup-v1-pids"]; empty when none.
   */
  readonly layers: readonly string[];
  /** True when both memory and pids are enforced per task. */
  readonly complete: boolean;
  /** Human description: where the cgroups live, or why none is usable. */
  readonly detail: string;
  /**
   * Creates the cgroup(s) of one task with its limits — or, without them, for a prepared
   * sandbox whose task is not known yet ({@link TaskCgroup.limit} before it runs anything).
   * Throws when the kernel refuses.
   */
  create(name: string, limits?: CgroupLimits): Promise<TaskCgroup>;
  /**
   * Removes the runner's parent cgroup(s) (they must be empty: call after every task ended).
   * Also done synchronously when the process exits, so a runner leaves nothing behind in the
   * cgroup it was given. Never throws.
   */
  close(): Promise<void>;
}

/** Options of {@link createCgroupController}. */
export interface CgroupControllerOptions {
  /** "auto" (default): v2 if delegated, else v1 memory/pids, else none; "off": none. */
  mode?: "auto" | "off";
  /** Where cgroup hierarchies are mounted (default /sys/fs/cgroup; tests point elsewhere). */
  sysRoot?: string;
  /** Text of /proc/self/cgroup (default: read it). */
  selfCgroup?: string;
  /** This process's pid (default process.pid); names the runner's parent cgroup. */
  pid?: number;
  /** Memory limit of all tasks of this runner together, in bytes (0 = none). */
  totalMemoryBytes?: number;
}

const NAME = /^[A-Za-z0-9._-]{1,128}$/;

/*
 * A task's own limit and counter files are written and read synchronously: they are kernel
 * pseudo-files answered in microseconds, while each trip through libuv's thread pool (shared
 * with the store's fsyncs) cost ~1 ms of a task's start — five of them were 4 ms (issue 13).
 * Only the move into a cgroup (place) stays asynchronous: the kernel may wait for an RCU
 * grace period there.
 */
function readNow(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return "";
  }
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Reads "key value" lines (memory.events, pids.events, memory.oom_control). */
function counter(text: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** SIGKILLs every pid listed in the cgroup.procs files until they are empty (bounded), then rmdirs. */
async function drainAndRemove(dirs: readonly string[]): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    let left = 0;
    for (const dir of dirs) {
      // A pseudo-file read: synchronous (a trip through libuv's pool costs more, per task).
      const procs = readNow(join(dir, "cgroup.procs")).split("\n").filter(Boolean);
      for (const p of procs) {
        left++;
        try {
          process.kill(Number(p), "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    let removed = 0;
    for (const dir of dirs) {
      try {
        await rmdir(dir);
        removed++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") removed++;
      }
    }
    if (removed === dirs.length) return;
    await new Promise((r) => setTimeout(r, left > 0 ? 20 : 10));
  }
}

/** Removes empty cgroups left by runner processes that no longer exist (mcpg-PID). */
async function removeStale(base: string, ownName: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(base);
  } catch {
    return;
  }
  for (const e of entries) {
    const m = /^mcpg-(\d+)$/.exec(e);
    if (!m || e === ownName || pidAlive(Number(m[1]))) continue;
    const dir = join(base, e);
    let children: string[] = [];
    try {
      children = (await readdir(dir, { withFileTypes: true }))
        .filter((d) => d.isDirectory())
        .map((d) => join(dir, d.name));
    } catch {
      continue;
    }
    await drainAndRemove([...children, dir]).catch(() => undefined);
  }
}

function none(detail: string): CgroupController {
  return {
    kind: "none",
    layers: [],
    complete: false,
    detail,
    async create() {
      throw new Error(`no per-task cgroup: ${detail}`);
    },
    async close() {},
  };
}

/** rmdirs the runner's parent cgroups (and empty children) synchronously; best effort. */
function removeParentsSync(parents: readonly string[]): void {
  for (const parent of parents) {
    try {
      for (const d of readdirSync(parent, { withFileTypes: true })) {
        if (d.isDirectory()) rmdirSync(join(parent, d.name));
      }
      rmdirSync(parent);
    } catch {
      // busy or gone: a later runner in this cgroup removes it (removeStale)
    }
  }
}

/** Removes `parents` at process exit (registered once per controller). */
function removeAtExit(parents: readonly string[]): () => Promise<void> {
  const onExit = () => removeParentsSync(parents);
  process.once("exit", onExit);
  return async () => {
    process.removeListener("exit", onExit);
    removeParentsSync(parents);
  };
}

interface V1Mounts {
  memory?: string;
  pids?: string;
}

/** Own cgroup path per v1 controller and per v2 ("" key), from /proc/self/cgroup. */
function parseSelfCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of (m[1] ?? "").split(",")) out.set(c, m[2] ?? "/");
  }
  return out;
}

async function tryV2(
  sysRoot: string,
  own: string,
  runnerName: string,
  totalMemoryBytes: number,
): Promise<CgroupController | string> {
  const mount = sysRoot;
  if (!(await exists(join(mount, "cgroup.controllers")))) return "no cgroup v2 at the root";
  const base = join(mount, own);
  const have = (await readText(join(base, "cgroup.controllers"))).trim().split(/\s+/);
  const missing = ["memory", "pids"].filter((c) => !have.includes(c));
  if (missing.length > 0) {
    return `cgroup v2 at ${base} lacks the ${missing.join(" and ")} controller(s) (not delegated)`;
  }
  if (!(await writable(join(base, "cgroup.subtree_control")))) {
    return `cgroup v2 at ${base} is not delegated to this user (cgroup.subtree_control not writable)`;
  }
  const wanted = ["memory", "pids", ...(have.includes("cpu") ? ["cpu"] : [])];
  const enable = wanted.map((c) => `+${c}`).join(" ");
  try {
    // "No internal processes": processes in `base` move to a leaf before controllers are enabled.
    const enabled = (await readText(join(base, "cgroup.subtree_control"))).trim().split(/\s+/);
    if (wanted.some((c) => !enabled.includes(c))) {
      const procs = (await readText(join(base, "cgroup.procs"))).split("\n").filter(Boolean);
      if (procs.length > 0) {
        const leaf = join(base, "mcpg-supervisor");
        await mkdir(leaf, { recursive: true });
        for (const p of procs) {
          try {
            await writeFile(join(leaf, "cgroup.procs"), p);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
          }
        }
      }
      await writeFile(join(base, "cgroup.subtree_control"), enable);
    }
    await removeStale(base, runnerName);
    const parent = join(base, runnerName);
    await mkdir(parent, { recursive: true });
    await writeFile(join(parent, "cgroup.subtree_control"), enable);
    if (totalMemoryBytes > 0) {
      await writeFile(join(parent, "memory.max"), String(totalMemoryBytes));
      if (await exists(join(parent, "memory.swap.max"))) {
        await writeFile(join(parent, "memory.swap.max"), "0");
      }
    }
    const hasCpu = wanted.includes("cpu");
    const close = removeAtExit([parent]);
    return {
      close,
      kind: "v2",
      layers: ["cgroup-v2-memory", "cgroup-v2-pids", ...(hasCpu ? ["cgroup-v2-cpu"] : [])],
      complete: true,
      detail: `cgroup v2 at ${parent}`,
      async create(name, limits) {
        if (!NAME.test(name)) throw new Error(`invalid cgroup name ${name}`);
        const dir = join(parent, name);
        const limit = async (l: CgroupLimits) => {
          writeFileSync(join(dir, "memory.max"), String(l.memoryBytes));
          if (existsSync(join(dir, "memory.swap.max"))) {
            writeFileSync(join(dir, "memory.swap.max"), "0");
          }
          // One OOM kill takes the whole task: no half-dead task keeps its tmpfs pages.
          if (existsSync(join(dir, "memory.oom.group"))) {
            writeFileSync(join(dir, "memory.oom.group"), "1");
          }
          writeFileSync(join(dir, "pids.max"), String(l.maxProcesses));
          const q = l.cpuQuotaPercent ?? 0;
          if (hasCpu && q > 0) {
            writeFileSync(join(dir, "cpu.max"), `${Math.max(1000, q * 1000)} 100000`);
          }
        };
        await mkdir(dir);
        try {
          if (limits !== undefined) await limit(limits);
        } catch (err) {
          await rmdir(dir).catch(() => undefined);
          throw err;
        }
        return {
          async place(pid) {
            await writeFile(join(dir, "cgroup.procs"), String(pid));
          },
          limit,
          async usage() {
            const peak = Number(readNow(join(dir, "memory.peak")).trim()) || 0;
            const events = readNow(join(dir, "memory.events"));
            const pids = readNow(join(dir, "pids.events"));
            return {
              memoryPeakBytes: peak,
              oomKills: counter(events, "oom_kill"),
              pidsLimitHits: counter(pids, "max"),
            };
          },
          async destroy() {
            if (await exists(join(dir, "cgroup.kill"))) {
              await writeFile(join(dir, "cgroup.kill"), "1").catch(() => undefined);
            }
            await drainAndRemove([dir]);
          },
        };
      },
    };
  } catch (err) {
    return `cgroup v2 at ${base} cannot be set up: ${(err as Error).message}`;
  }
}

async function tryV1(
  sysRoot: string,
  self: Map<string, string>,
  runnerName: string,
  totalMemoryBytes: number,
): Promise<CgroupController | string> {
  const mounts: V1Mounts = {};
  const problems: string[] = [];
  for (const c of ["memory", "pids"] as const) {
    const own = self.get(c);
    if (own === undefined) {
      problems.push(`no v1 ${c} controller`);
      continue;
    }
    const base = join(sysRoot, c, own);
    const probe = c === "memory" ? "memory.limit_in_bytes" : "cgroup.procs";
    if (!(await exists(join(base, probe)))) {
      problems.push(`v1 ${c} controller not mounted at ${join(sysRoot, c)}`);
      continue;
    }
    if (!(await writable(base))) {
      problems.push(`v1 ${c} cgroup ${base} is not writable`);
      continue;
    }
    try {
      await removeStale(base, runnerName);
      const parent = join(base, runnerName);
      await mkdir(parent, { recursive: true });
      if (c === "memory" && totalMemoryBytes > 0) {
        await writeFile(join(parent, "memory.limit_in_bytes"), String(totalMemoryBytes));
      }
      mounts[c] = parent;
    } catch (err) {
      problems.push(`v1 ${c} cgroup under ${base}: ${(err as Error).message}`);
    }
  }
  const mem = mounts.memory;
  const pids = mounts.pids;
  if (mem === undefined && pids === undefined) return problems.join("; ");
  const close = removeAtExit([mem, pids].filter((d): d is string => d !== undefined));
  const layers = [
    ...(mem !== undefined ? ["cgroup-v1-memory"] : []),
    ...(pids !== undefined ? ["cgroup-v1-pids"] : []),
  ];
  return {
    kind: "v1",
    close,
    layers,
    complete: mem !== undefined && pids !== undefined,
    detail:
      `cgroup v1 ${[mem, pids].filter(Boolean).join(" and ")}` +
      (problems.length > 0 ? ` (${problems.join("; ")})` : ""),
    async create(name, limits) {
      if (!NAME.test(name)) throw new Error(`invalid cgroup name ${name}`);
      const dirs: string[] = [];
      const limit = async (l: CgroupLimits) => {
        if (mem !== undefined) {
          const dir = join(mem, name);
          writeFileSync(join(dir, "memory.limit_in_bytes"), String(l.memoryBytes));
          // memsw = limit: no swap on top of memory (only with swap accounting).
          if (existsSync(join(dir, "memory.memsw.limit_in_bytes"))) {
            writeFileSync(join(dir, "memory.memsw.limit_in_bytes"), String(l.memoryBytes));
          }
          try {
            writeFileSync(join(dir, "memory.swappiness"), "0");
          } catch {
            // not offered on every kernel
          }
        }
        if (pids !== undefined) writeFileSync(join(pids, name, "pids.max"), String(l.maxProcesses));
      };
      try {
        for (const root of [mem, pids]) {
          if (root === undefined) continue;
          const dir = join(root, name);
          await mkdir(dir);
          dirs.push(dir);
        }
        if (limits !== undefined) await limit(limits);
      } catch (err) {
        await drainAndRemove(dirs);
        throw err;
      }
      const memDir = mem !== undefined ? join(mem, name) : undefined;
      const pidsDir = pids !== undefined ? join(pids, name) : undefined;
      return {
        async place(pid) {
          for (const dir of dirs) await writeFile(join(dir, "cgroup.procs"), String(pid));
        },
        limit,
        async usage() {
          if (memDir === undefined && pidsDir === undefined) {
            return { memoryPeakBytes: 0, oomKills: 0, pidsLimitHits: 0 };
          }
          const peak = memDir
            ? Number(readNow(join(memDir, "memory.max_usage_in_bytes")).trim()) || 0
            : 0;
          const oom = memDir ? readNow(join(memDir, "memory.oom_control")) : "";
          const ev = pidsDir ? readNow(join(pidsDir, "pids.events")) : "";
          return {
            memoryPeakBytes: peak,
            oomKills: counter(oom, "oom_kill"),
            pidsLimitHits: counter(ev, "max"),
          };
        },
        async destroy() {
          await drainAndRemove(dirs);
        },
      };
    },
  };
}

/**
 * Detects and prepares per-task cgroups: a delegated cgroup v2 subtree (memory, pids and, when
 * offered, cpu controllers) or else the cgroup v1 `memory` and `pids` controllers. Task cgroups
 * live in `<own cgroup>/mcpg-<pid>/<task>`; empty leftovers of dead runners are removed.
 * Never throws: when nothing is usable the controller has kind "none" and says why.
 *
 * @example
 * const cgroups = await createCgroupController({ totalMemoryBytes: 8 << 30 });
 * const cg = await cgroups.create("task-1", { memoryBytes: 512 << 20, maxProcesses: 66 });
 * await cg.place(pid); // before the process runs user code
 */
export async function createCgroupController(
  options: CgroupControllerOptions = {},
): Promise<CgroupController> {
  if (options.mode === "off") return none("disabled by configuration (cgroups: off)");
  const sysRoot = options.sysRoot ?? "/sys/fs/cgroup";
  const text = options.selfCgroup ?? (await readText("/proc/self/cgroup"));
  if (text === "") return none("/proc/self/cgroup is unreadable");
  const self = parseSelfCgroup(text);
  const runnerName = `mcpg-${options.pid ?? process.pid}`;
  const total = options.totalMemoryBytes ?? 0;
  const reasons: string[] = [];
  const v2own = self.get("");
  if (v2own !== undefined) {
    const v2 = await tryV2(sysRoot, v2own, runnerName, total);
    if (typeof v2 !== "string") return v2;
    reasons.push(v2);
  }
  const v1 = await tryV1(sysRoot, self, runnerName, total);
  if (typeof v1 !== "string") return v1;
  reasons.push(v1);
  return none(reasons.join("; "));
}
