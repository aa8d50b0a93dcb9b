/**
 * Kernel-enforced workspace quotas: each workspace is its own ext4 filesystem in a sparse image
 * file, loop-mounted on the workspace directory. Its size bounds the bytes and its inode count
 * the files, for tasks and file operations alike, and one workspace filling up never touches
 * another or the host. See docs/adr/0012-resource-isolation-cgroups-and-workspace-images.md.
 *
 * @module
 */
import { execFile } from "node:child_process";
import {
  chmod,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rmdir,
  stat,
  statfs,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";
import { WorkspaceError } from "./errors.js";

const execFileAsync = promisify(execFile);

/** Quota and usage of one workspace, from statfs(2) of its filesystem. */
export interface WorkspaceUsage {
  /** Bytes in use (blocks, metadata included). */
  bytesUsed: number;
  /** The configured byte quota. */
  bytesLimit: number;
  /** Inodes in use (files, directories, symlinks; the root and lost+found included). */
  inodesUsed: number;
  /** Inodes the filesystem has. */
  inodesLimit: number;
}

/** Bytes and inodes of one workspace's filesystem. */
export interface WorkspaceSize {
  /** Bytes the workspace may hold. */
  bytes: number;
  /** Files and directories it may hold. */
  inodes: number;
}

/** Options of {@link createWorkspaceQuota}. */
export interface WorkspaceQuotaOptions {
  /** "loop-image": one size-capped ext4 image per workspace; "none": no quota. */
  mode: "loop-image" | "none";
  /** Bytes a workspace may hold at most (at least this much is usable); the policy may set less. */
  bytes: number;
  /** Files and directories a workspace may hold at most; the policy may set less. */
  inodes: number;
  /** Directory holding the images (outside every workspace). */
  imageDir: string;
  /** Owner of a new workspace's root directory. */
  uid: number;
  /** Group of a new workspace's root directory. */
  gid: number;
  /** Logger (pino); nothing is logged when absent. */
  logger?: Logger;
}

/** Per-workspace quota mechanism. */
export interface WorkspaceQuota {
  /** "loop-image" or "none". */
  readonly mode: "loop-image" | "none";
  /** Human description for Info and /health/ready, e.g. "loop-image 1073741824 bytes, 100000 inodes". */
  readonly description: string;
  /**
   * Makes `dir` the mount of workspace `name`'s own filesystem: creates and formats the image on
   * first use (with `size`, the policy's obligation, capped by the configured maximum), mounts it
   * again after a runner restart, does nothing when it is mounted. A workspace keeps the size
   * it was created with.
   */
  attach(name: string, dir: string, size?: WorkspaceSize): Promise<void>;
  /** Quota and usage of a mounted workspace; null without quotas. */
  usage(dir: string): Promise<WorkspaceUsage | null>;
  /** Explains an ENOSPC/EDQUOT from `dir`: "workspace quota of 1 GiB reached" or the inode variant. */
  explain(dir: string): Promise<string>;
  /** Unmounts every workspace this process mounted (the images stay); never throws. */
  detachAll(): Promise<void>;
}

/** "1 GiB", "512 MiB", "100000 bytes". */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  }
  return `${n} bytes`;
}

/** ext4 inode size used for the images (256: nanosecond timestamps, no y2038 problem). */
const INODE_SIZE = 256;
/** Journal of each image (the minimum ext4 accepts), MiB. */
const JOURNAL_MIB = 4;

/**
 * Image size giving at least `bytes` of usable space with `inodes` inodes: inode tables,
 * journal, and ~3% for block-group metadata on top.
 */
export function imageSizeFor(bytes: number, inodes: number): number {
  const raw = bytes + inodes * INODE_SIZE + JOURNAL_MIB * 1024 * 1024 + Math.ceil(bytes / 32);
  return Math.ceil(raw / 4096) * 4096;
}

async function isMountPoint(dir: string): Promise<boolean> {
  const [a, b] = await Promise.all([stat(dir), stat(dirname(dir))]);
  return a.dev !== b.dev || a.ino === b.ino;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/**
 * Creates the workspace quota mechanism. "loop-image" needs root (mount, loop devices) and
 * mkfs.ext4 (e2fsprogs, installed by scripts/setup.sh); images are sparse, so a workspace costs
 * disk only for what it holds plus ~5 MiB of metadata.
 *
 * @example
 * const quota = createWorkspaceQuota({ mode: "loop-image", bytes: 1 << 30, inodes: 100_000,
 *   imageDir: "/var/lib/mcp-gateway/images/t-…", uid: 65534, gid: 65534 });
 * await quota.attach("demo", "/var/lib/mcp-gateway/workspaces/t-…/demo");
 */
export function createWorkspaceQuota(options: WorkspaceQuotaOptions): WorkspaceQuota {
  const log = options.logger;
  if (options.mode === "none") {
    return {
      mode: "none",
      description: "none",
      async attach() {},
      async usage() {
        return null;
      },
      async explain() {
        return "the runner host's disk is full";
      },
      async detachAll() {},
    };
  }
  const mounted = new Set<string>();
  const busy = new Map<string, Promise<void>>();
  /** Byte quota of each mounted workspace (from its sidecar file). */
  const sizes = new Map<string, number>();

  async function run(cmd: string, args: string[]): Promise<void> {
    try {
      await execFileAsync(cmd, args, { timeout: 60_000, env: { PATH: process.env.PATH ?? "" } });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new WorkspaceError(
        "io_error",
        `${cmd} failed: ${(e.stderr ?? e.message).trim().split("\n")[0]}` +
          (cmd.startsWith("mkfs") ? " (install e2fsprogs: bash scripts/setup.sh)" : ""),
        { cause: err },
      );
    }
  }

  /** The size a workspace was created with (sidecar JSON beside its image). */
  async function sizeOf(name: string): Promise<WorkspaceSize> {
    try {
      const s = JSON.parse(
        await readFile(join(options.imageDir, `${name}.quota.json`), "utf8"),
      ) as WorkspaceSize;
      if (Number.isSafeInteger(s.bytes) && Number.isSafeInteger(s.inodes)) return s;
    } catch {
      // an image from before sidecars: the configured default
    }
    return { bytes: options.bytes, inodes: options.inodes };
  }

  async function doAttach(name: string, dir: string, wanted: WorkspaceSize): Promise<void> {
    if (await isMountPoint(dir)) {
      mounted.add(dir);
      if (!sizes.has(dir)) sizes.set(dir, (await sizeOf(name)).bytes);
      return;
    }
    const image = join(options.imageDir, `${name}.img`);
    await mkdir(options.imageDir, { recursive: true, mode: 0o700 });
    const fresh = !(await exists(image));
    if (fresh) {
      // A workspace made before quotas were enabled keeps its files only if empty.
      if ((await readdir(dir)).length > 0) {
        throw new WorkspaceError(
          "io_error",
          `workspace ${name} was created before quotas were enabled and is not empty; move its files out and back in`,
        );
      }
      const tmp = `${image}.new`;
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.truncate(imageSizeFor(wanted.bytes, wanted.inodes));
      } finally {
        await fh.close();
      }
      await run("mkfs.ext4", [
        "-q",
        "-F",
        "-m",
        "0",
        "-N",
        String(wanted.inodes),
        "-I",
        String(INODE_SIZE),
        "-J",
        `size=${JOURNAL_MIB}`,
        "-E",
        `lazy_itable_init=1,nodiscard,root_owner=${options.uid}:${options.gid}`,
        tmp,
      ]);
      await writeFile(join(options.imageDir, `${name}.quota.json`), JSON.stringify(wanted), {
        mode: 0o600,
      });
      await rename(tmp, image);
    } else {
      // After a crash: replay the journal / repair what is safe before mounting.
      await run("e2fsck", ["-p", image]).catch((err: unknown) => {
        log?.warn({ image, err: String(err) }, "e2fsck reported problems; mounting anyway");
      });
    }
    await run("mount", ["-t", "ext4", "-o", "loop,nosuid,nodev,noatime,noinit_itable", image, dir]);
    mounted.add(dir);
    sizes.set(dir, fresh ? wanted.bytes : (await sizeOf(name)).bytes);
    await chmod(dir, 0o700);
    if (fresh) await rmdir(join(dir, "lost+found")).catch(() => undefined);
    log?.info({ workspace: name, image, fresh }, "workspace filesystem mounted");
  }

  return {
    mode: "loop-image",
    description: `loop-image ${options.bytes} bytes, ${options.inodes} inodes`,
    attach(name, dir, size) {
      const running = busy.get(dir);
      if (running) return running;
      // The policy's size, never above the runner's configured maximum, never below what ext4
      // needs to exist.
      const wanted = {
        bytes: Math.max(16 * 1024 * 1024, Math.min(size?.bytes ?? options.bytes, options.bytes)),
        inodes: Math.max(64, Math.min(size?.inodes ?? options.inodes, options.inodes)),
      };
      const p = doAttach(name, dir, wanted).finally(() => busy.delete(dir));
      busy.set(dir, p);
      return p;
    },
    async usage(dir) {
      const s = await statfs(dir);
      return {
        bytesUsed: (s.blocks - s.bfree) * s.bsize,
        bytesLimit: sizes.get(dir) ?? options.bytes,
        inodesUsed: s.files - s.ffree,
        inodesLimit: s.files,
      };
    },
    async explain(dir) {
      try {
        const s = await statfs(dir);
        if (s.ffree === 0) {
          return `workspace quota of ${s.files} files and directories reached`;
        }
      } catch {
        // fall through to the byte quota
      }
      return `workspace quota of ${formatBytes(sizes.get(dir) ?? options.bytes)} reached`;
    },
    async detachAll() {
      for (const dir of mounted) {
        try {
          await execFileAsync("umount", [dir], { timeout: 30_000 });
        } catch {
          await execFileAsync("umount", ["-l", dir], { timeout: 30_000 }).catch(() => undefined);
        }
        mounted.delete(dir);
      }
    },
  };
}
