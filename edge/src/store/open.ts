import { join } from "node:path";
import type { Logger } from "pino";
import { createPostgresStore } from "./postgres.js";
import { createSqliteStore } from "./sqlite.js";
import type { TaskStore } from "./types.js";

/** Where the store lives. */
export interface StoreLocation {
  /** PostgreSQL URL (HA); when set it wins. */
  databaseUrl?: string | undefined;
  /** SQLite file (embedded default). */
  databasePath?: string | undefined;
  /** Data directory; the SQLite default is <dataDir>/gateway.db. */
  dataDir: string;
}

/** An opened store, with the cross-edge task notifications PostgreSQL offers. */
export interface OpenedStore {
  store: TaskStore;
  /** "postgres" or "sqlite". */
  kind: "postgres" | "sqlite";
  /** Tells other edges a task changed (no-op for SQLite: one edge owns the file). */
  publish(taskId: string): void;
  /** Calls `onTask` when another edge published a change; resolves to an unsubscribe. */
  subscribe(onTask: (taskId: string | null) => void): Promise<() => Promise<void>>;
}

/**
 * Opens the store the configuration names: PostgreSQL when a database URL is
 * set, else the SQLite file. Handlers only ever see the TaskStore interface.
 */
export async function openStore(location: StoreLocation, logger: Logger): Promise<OpenedStore> {
  if (location.databaseUrl) {
    const pg = await createPostgresStore({ connectionString: location.databaseUrl, logger });
    return {
      store: pg,
      kind: "postgres",
      publish(taskId) {
        pg.notify(taskId).catch((err: unknown) =>
          logger.warn({ err, taskId }, "task notification failed"),
        );
      },
      async subscribe(onTask) {
        const sub = await pg.listen((e) => onTask(e.kind === "task" ? e.taskId : null));
        return () => sub.close();
      },
    };
  }
  const store = createSqliteStore({
    path: location.databasePath ?? join(location.dataDir, "gateway.db"),
  });
  return {
    store,
    kind: "sqlite",
    publish() {},
    async subscribe() {
      return async () => {};
    },
  };
}
