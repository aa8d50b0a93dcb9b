// Recent tasks of this browser tab, kept in sessionStorage: McpService has no ListTasks RPC
// (ADR 0011). A task id is not a secret (every read is authorized by the edge), but the list
// still lives only as long as the tab, like the token.

/** One remembered task. */
export interface RecentTask {
  taskId: string;
  /** The command line as submitted (for display). */
  commandLine: string;
  workspace: string;
  /** When it was submitted or first opened here, ms since the epoch. */
  at: number;
  /** The last status this tab saw, e.g. "COMPLETED". */
  status: string;
}

/** The recent-task list of one signed-in subject. */
export interface RecentTasks {
  list(): RecentTask[];
  /** Adds or updates a task (newest first, at most 50). */
  remember(task: Omit<RecentTask, "at"> & { at?: number }): void;
}

const MAX = 50;

/** Recent tasks stored under a key per subject, so two sign-ins in one tab do not mix. */
export function createRecentTasks(storage: Storage, subject: string): RecentTasks {
  const key = `mcpg.recent.${subject}`;
  const read = (): RecentTask[] => {
    try {
      const v: unknown = JSON.parse(storage.getItem(key) ?? "[]");
      return Array.isArray(v) ? (v as RecentTask[]) : [];
    } catch {
      return [];
    }
  };
  return {
    list: read,
    remember(task) {
      const all = read();
      const old = all.find((t) => t.taskId === task.taskId);
      const merged: RecentTask = {
        taskId: task.taskId,
        commandLine: task.commandLine || old?.commandLine || "",
        workspace: task.workspace || old?.workspace || "",
        at: old?.at ?? task.at ?? Date.now(),
        status: task.status || old?.status || "",
      };
      const rest = all.filter((t) => t.taskId !== task.taskId);
      storage.setItem(key, JSON.stringify([merged, ...rest].slice(0, MAX)));
    },
  };
}
