import { spawn } from "node:child_process";
import { chmodSync, chownSync, lchownSync, lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { DEFAULT_HELPER_PATH } from "../sandbox/sandbox.js";
import { isWorkspaceErrorCode, WorkspaceError } from "./errors.js";
import type { WorkspaceQuota, WorkspaceSize, WorkspaceUsage } from "./quota.js";

/** Options of {@link createWorkspaceFs}. */
export interface WorkspaceFsOptions {
  /** Host directory holding all workspaces (created 0711 if missing). */
  root: string;
  /** Largest file {@link WorkspaceFs.readFile} returns, in bytes. */
  maxReadBytes: number;
  /** Largest content {@link WorkspaceFs.writeFile} accepts, in bytes. */
  maxWriteBytes: number;
  /** Native helper performing the operations; default runner/native/build/mcpg-sandbox-helper. */
  helperPath?: string;
  /** Host uid owning workspaces and running the helper when the runner is root (default 65534). */
  sandboxUid?: number;
  /** Host gid owning workspaces and running the helper when the runner is root (default 65534). */
  sandboxGid?: number;
  /**
   * Per-workspace quota (its own size-capped filesystem, attached by {@link WorkspaceFs.ensure});
   * none when absent.
   */
  quota?: WorkspaceQuota;
  /** Logger (pino); nothing is logged when absent. */
  logger?: Logger;
}

/** One directory entry returned by {@link WorkspaceFs.listDirectory}. */
export interface WorkspaceEntry {
  /** Entry name (no slashes). */
  name: string;
  /** Kind of entry; symlinks are reported, never followed. */
  type: "file" | "directory" | "symlink" | "other";
  /** Size in bytes (lstat). */
  size: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  /** Last modification, milliseconds since the epoch. */
  modifiedAtMs: number;
}

/** File operations confined to one workspace (see docs/security/sandbox.md). */
export interface WorkspaceFs {
  /**
   * Validates the name ([A-Za-z0-9._-]{1,64}, not "." or ".."), creates the dir (owned by the
   * sandbox uid) if missing — with quotas, its own filesystem of `size` (the policy's
   * obligation, capped by the runner's configured maximum) — and returns its absolute path.
   */
  ensure(workspace: string, size?: WorkspaceSize): Promise<string>;
  /** Reads a regular file (no symlinks anywhere in the path, no hard-linked files). */
  readFile(workspace: string, path: string): Promise<{ content: Uint8Array; size: number }>;
  /** Creates or replaces a regular file; mode keeps permission bits only (& 0o777). */
  writeFile(
    workspace: string,
    path: string,
    content: Uint8Array,
    opts: { createParents: boolean; mode: number },
  ): Promise<{ bytesWritten: number }>;
  /** Deletes a file, symlink (never its target) or directory (recursive when asked). */
  deleteFile(workspace: string, path: string, opts: { recursive: boolean }): Promise<void>;
  /** Lists a directory ("" = the workspace root), sorted by name. */
  listDirectory(workspace: string, path: string): Promise<WorkspaceEntry[]>;
  /** The workspace's quota and usage (null without quotas); call after {@link ensure}. */
  usage(workspace: string): Promise<WorkspaceUsage | null>;
}

const WORKSPACE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const TYPES: Record<string, WorkspaceEntry["type"]> = {
  f: "file",
  d: "directory",
  l: "symlink",
  o: "other",
};

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** Lexical checks; the helper's openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) is the guarantee. */
function checkPath(path: string, allowRoot: boolean): void {
  if (path.includes("\0")) throw new WorkspaceError("invalid_path", "path contains a NUL byte");
  if (path.length > 4096) throw new WorkspaceError("invalid_path", "path is too long");
  if (path.startsWith("/")) {
    throw new WorkspaceError("escape_attempt", `${path}: absolute paths are not allowed`);
  }
  if (path.split("/").includes("..")) {
    throw new WorkspaceError("escape_attempt", `${path}: '..' is not allowed`);
  }
  if (!allowRoot && path.split("/").every((c) => c === "" || c === ".")) {
    throw new WorkspaceError("invalid_path", "the workspace root itself cannot be used here");
  }
}

/**
 * Creates the workspace file service. Every operation runs the native helper as the
 * sandbox uid; the helper resolves paths with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 * | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so "..", absolute paths, planted symlinks and
 * rename races cannot reach outside the workspace, and refuses hard-linked regular files.
 *
 * @example
 * const fs = createWorkspaceFs({ root: "/var/lib/mcp-gateway/workspaces", maxReadBytes: 1 << 20, maxWriteBytes: 1 << 20 });
 * await fs.ensure("demo");
 * await fs.writeFile("demo", "src/a.txt", new TextEncoder().encode("hi"), { createParents: true, mode: 0o644 });
 */
export function createWorkspaceFs(options: WorkspaceFsOptions): WorkspaceFs {
  const helperPath = options.helperPath ?? DEFAULT_HELPER_PATH;
  const uid = options.sandboxUid ?? 65534;
  const gid = options.sandboxGid ?? 65534;
  const log = options.logger;
  const quota = options.quota;

  function dirOf(workspace: string): string {
    if (!WORKSPACE_NAME.test(workspace) || workspace === "." || workspace === "..") {
      throw new WorkspaceError(
        "invalid_path",
        `workspace name ${JSON.stringify(workspace)} must match [A-Za-z0-9._-]{1,64} and not be . or ..`,
      );
    }
    return join(options.root, workspace);
  }

  /** Runs `helper fs ARGS`, feeding `input`; resolves stdout or throws WorkspaceError. */
  function run(args: string[], input: Uint8Array | null, maxStdout: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const child = spawn(helperPath, ["fs", ...args], {
        stdio: [input === null ? "ignore" : "pipe", "pipe", "pipe"],
        env: {},
        ...(isRoot() ? { uid, gid } : {}),
      });
      const out: Buffer[] = [];
      let outLen = 0;
      let overflow = false;
      let err = "";
      child.stdout?.on("data", (c: Buffer) => {
        outLen += c.length;
        if (outLen > maxStdout) {
          overflow = true;
          child.kill("SIGKILL");
          return;
        }
        out.push(c);
      });
      child.stderr?.on("data", (c: Buffer) => {
        if (err.length < 8192) err += c.toString("utf8");
      });
      child.stdin?.on("error", () => {
        // helper exited early (e.g. refused the path): reported through its exit status
      });
      if (input !== null) child.stdin?.end(input);
      child.on("error", (e) => {
        reject(
          new WorkspaceError(
            "io_error",
            `workspace helper cannot run (${e.message}); run \`bash scripts/build-native.sh\``,
            { cause: e },
          ),
        );
      });
      child.on("close", (code) => {
        if (overflow) {
          reject(new WorkspaceError("too_large", "helper output exceeded its limit"));
        } else if (code === 0) {
          resolve(Buffer.concat(out));
        } else {
          const line = err.split("\n")[0] ?? "";
          const tab = line.indexOf("\t");
          const c = tab > 0 ? line.slice(0, tab) : "";
          if (code === 3 && c === "quota_exceeded" && quota !== undefined && args[1]) {
            const detail = line.slice(tab + 1);
            void quota
              .explain(args[1])
              .then((why) => reject(new WorkspaceError("quota_exceeded", `${why} (${detail})`)));
          } else if (code === 3 && isWorkspaceErrorCode(c)) {
            reject(new WorkspaceError(c, line.slice(tab + 1)));
          } else {
            log?.warn({ code, stderr: err.slice(0, 500) }, "workspace helper failed");
            reject(
              new WorkspaceError("io_error", `workspace helper failed (exit ${code}): ${line}`),
            );
          }
        }
      });
    });
  }

  /** Gives the workspace root (the mount's root with quotas) back its owner and mode 0700. */
  function restoreRoot(dir: string): void {
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory()) {
        throw new WorkspaceError("not_a_directory", `workspace ${dir} is not a directory`);
      }
      if (isRoot() && (st.uid !== uid || st.gid !== gid)) lchownSync(dir, uid, gid);
      if ((st.mode & 0o7777) !== 0o700) chmodSync(dir, 0o700);
    } catch (e) {
      if (e instanceof WorkspaceError) throw e;
      throw new WorkspaceError("io_error", `workspace root: ${(e as Error).message}`, { cause: e });
    }
  }

  return {
    async ensure(workspace, size) {
      // Synchronous system calls: a few µs each on a local file system, where each trip through
      // libuv's thread pool (shared with the store's syncs) cost far more on every task.
      const dir = dirOf(workspace);
      mkdirSync(options.root, { recursive: true, mode: 0o711 });
      try {
        const st = lstatSync(dir);
        if (st.isSymbolicLink()) {
          throw new WorkspaceError("escape_attempt", `workspace ${workspace} is a symbolic link`);
        }
        if (!st.isDirectory()) {
          throw new WorkspaceError("not_a_directory", `workspace ${workspace} is not a directory`);
        }
        if (isRoot() && (st.uid !== uid || st.gid !== gid)) lchownSync(dir, uid, gid);
      } catch (e) {
        if (e instanceof WorkspaceError) throw e;
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
          throw new WorkspaceError("io_error", `workspace ${workspace}: ${(e as Error).message}`, {
            cause: e,
          });
        }
        try {
          mkdirSync(dir, { mode: 0o700 });
        } catch (m) {
          if ((m as NodeJS.ErrnoException).code !== "EEXIST") throw m;
        }
        if (isRoot()) chownSync(dir, uid, gid);
      }
      await quota?.attach(workspace, dir, size);
      // The root keeps its owner and mode whatever a task did to it (`chmod 000 /workspace`
      // would lock every later task and file operation out): restored before each use.
      restoreRoot(dir);
      return dir;
    },

    async usage(workspace) {
      return quota ? quota.usage(dirOf(workspace)) : null;
    },

    async readFile(workspace, path) {
      const dir = dirOf(workspace);
      checkPath(path, false);
      const content = await run(
        ["read", dir, path, String(options.maxReadBytes)],
        null,
        options.maxReadBytes,
      );
      return { content: new Uint8Array(content), size: content.length };
    },

    async writeFile(workspace, path, content, opts) {
      const dir = dirOf(workspace);
      checkPath(path, false);
      if (content.length > options.maxWriteBytes) {
        throw new WorkspaceError(
          "too_large",
          `content of ${content.length} bytes exceeds the write limit of ${options.maxWriteBytes}`,
        );
      }
      if (!Number.isInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o7777) {
        throw new WorkspaceError("invalid_path", `invalid mode ${opts.mode}`);
      }
      const out = await run(
        [
          "write",
          dir,
          path,
          (opts.mode & 0o777).toString(8),
          opts.createParents ? "1" : "0",
          String(options.maxWriteBytes),
        ],
        content,
        64,
      );
      return { bytesWritten: Number.parseInt(out.toString("utf8"), 10) };
    },

    async deleteFile(workspace, path, opts) {
      const dir = dirOf(workspace);
      checkPath(path, false);
      await run(["delete", dir, path, opts.recursive ? "1" : "0"], null, 0);
    },

    async listDirectory(workspace, path) {
      const dir = dirOf(workspace);
      checkPath(path, true);
      const out = await run(["list", dir, path], null, 64 * 1024 * 1024);
      const entries: WorkspaceEntry[] = [];
      for (const rec of out.toString("utf8").split("\0")) {
        if (rec === "") continue;
        const m = /^([fdlo]) (\d+) ([0-7]+) (-?\d+) ([\s\S]+)$/.exec(rec);
        if (m === null) continue;
        entries.push({
          name: m[5] ?? "",
          type: TYPES[m[1] ?? "o"] ?? "other",
          size: Number(m[2]),
          mode: Number.parseInt(m[3] ?? "0", 8),
          modifiedAtMs: Number(m[4]),
        });
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return entries;
    },
  };
}
