/**
 * Notifications that a task changed (new output or new state). Watchers
 * re-read the store when woken, so a missed wake-up only delays, never loses,
 * data. With PostgreSQL, changes are also published to the other edges
 * (LISTEN/NOTIFY) and their notifications wake local watchers.
 */
export interface TaskEvents {
  /** A task changed here: wake local watchers and tell other edges. */
  notify(taskId: string): void;
  /** Another edge said a task changed (null: events may have been missed, wake everyone). */
  wakeLocal(taskId: string | null): void;
  /** Resolves at the next change of the task, after timeoutMs, or on abort. */
  wait(taskId: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

/** Options for {@link createTaskEvents}. */
export interface TaskEventsOptions {
  /** Forwards a local change to other edges. */
  publish?: (taskId: string) => void;
}

/** Creates the task event bus. */
export function createTaskEvents(options: TaskEventsOptions = {}): TaskEvents {
  const waiters = new Map<string, Set<() => void>>();
  const wake = (taskId: string) => {
    const set = waiters.get(taskId);
    if (!set) return;
    waiters.delete(taskId);
    for (const w of set) w();
  };
  return {
    notify(taskId) {
      wake(taskId);
      options.publish?.(taskId);
    },
    wakeLocal(taskId) {
      if (taskId !== null) {
        wake(taskId);
        return;
      }
      for (const id of [...waiters.keys()]) wake(id);
    },
    wait(taskId, timeoutMs, signal) {
      return new Promise<void>((resolve) => {
        let set = waiters.get(taskId);
        if (!set) {
          set = new Set();
          waiters.set(taskId, set);
        }
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          const s = waiters.get(taskId);
          s?.delete(done);
          if (s && s.size === 0) waiters.delete(taskId);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        signal?.addEventListener("abort", done, { once: true });
        set.add(done);
      });
    },
  };
}
