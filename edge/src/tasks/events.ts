/**
 * In-process notifications that a task changed (new output or new state).
 * Watchers re-read the store when woken, so a missed wake-up only delays,
 * never loses, data; a PostgreSQL LISTEN/NOTIFY feed can call notify() too.
 */
export interface TaskEvents {
  notify(taskId: string): void;
  /** Resolves at the next notify for the task, after timeoutMs, or on abort. */
  wait(taskId: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

/** Creates the in-process task event bus. */
export function createTaskEvents(): TaskEvents {
  const waiters = new Map<string, Set<() => void>>();
  return {
    notify(taskId) {
      const set = waiters.get(taskId);
      if (!set) return;
      waiters.delete(taskId);
      for (const wake of set) wake();
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
