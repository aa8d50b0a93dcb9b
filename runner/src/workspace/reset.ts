import { DEFAULT_EXEC_POLICY, DEFAULT_SANDBOX_LIMITS, type Sandbox } from "../sandbox/index.js";
import { WorkspaceError } from "./errors.js";

/**
 * Empties a workspace directory from inside a sandbox: the cleanup runs as the sandbox uid
 * with the task profile (bwrap, seccomp, Landlock: writes only in the workspace), so a tree a
 * task left behind — directories it made unreadable (chmod 000), symlinks to host paths, a
 * replaced `.git` — is removed without the runner ever following a path a task controls.
 * The caller restores the root's owner and mode (WorkspaceFs.ensure) before and after.
 *
 * @example
 * const clean = createWorkspaceCleaner(sandbox);
 * await clean(await fs.ensure("demo")); // the workspace is empty
 */
export function createWorkspaceCleaner(sandbox: Sandbox): (dir: string) => Promise<void> {
  return async (dir) => {
    let stderr = "";
    const proc = await sandbox.spawn(
      {
        command: "sh",
        args: [
          "-c",
          // u+rwX first: a directory a task made unreadable would stop the delete.
          'chmod -R u+rwX /workspace 2>/dev/null; find /workspace -mindepth 1 -delete && [ -z "$(ls -A /workspace)" ]',
        ],
        env: {},
        cwd: "",
        workspaceDir: dir,
        network: "none",
        timeoutMs: 120_000,
        limits: DEFAULT_SANDBOX_LIMITS,
        exec: DEFAULT_EXEC_POLICY,
      },
      {
        onOutput: (stream, data) => {
          if (stream === "stderr" && stderr.length < 2048) stderr += Buffer.from(data).toString();
        },
      },
    );
    const r = await proc.result;
    if (r.status !== "completed" || r.exitCode !== 0) {
      throw new WorkspaceError(
        "io_error",
        `the workspace could not be emptied (${r.message || `exit code ${r.exitCode}`}): ${stderr.trim().slice(0, 300)}`,
      );
    }
  };
}
