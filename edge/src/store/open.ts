import { join } from "node:path";
import type { Logger } from "pino";
import type { AuditKey } from "../audit/keys.js";
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
  /** Key that signs new audit records (HMAC); unkeyed chain without. */
  auditKey?: AuditKey | undefined;
}

/** A runner's registration as its heartbeats report it. */
export interface RegisteredRunner {
  id: string;
  url: string;
  /** Fraction of its task slots in use, 0..1. */
  load: number;
  /** False while its sandbox self-check fails or it drains. */
  healthy: boolean;
  /** Random id of the runner process; a restarted runner has forgotten its tasks. */
  bootId: string;
}

/** Where runners that register themselves are kept (shared by all edges with PostgreSQL). */
export interface RunnerRegistry {
  heartbeat(runner: RegisteredRunner): Promise<void>;
  /** Runners whose last heartbeat is at most `withinMs` old. */
  alive(withinMs: number): Promise<RegisteredRunner[]>;
  remove(id: string): Promise<void>;
}

/** Leases with fencing tokens (PostgreSQL only: several edges). */
export interface Leases {
  /** Takes the lease when free or expired, or renews it for its holder. */
  acquire(
    name: string,
    holder: string,
    ttlMs: number,
  ): Promise<{ acquired: boolean; token: bigint; holder: string }>;
  /** Extends a lease still held with this token; false when it was lost. */
  renew(name: string, holder: string, token: bigint, ttlMs: number): Promise<boolean>;
  release(name: string, holder: string, token: bigint): Promise<boolean>;
  /** Whether someone holds the lease now. */
  held(name: string): Promise<boolean>;
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
  /** Self-registered runners. */
  registry: RunnerRegistry;
  /** Present with PostgreSQL, where several edges share the store. */
  leases?: Leases;
}

/**
 * Opens the store the configuration names: PostgreSQL when a database URL is
 * set, else the SQLite file. Handlers only ever see the TaskStore interface.
 */
export async function openStore(location: StoreLocation, logger: Logger): Promise<OpenedStore> {
  if (location.databaseUrl) {
    // Loaded only for PostgreSQL: the driver is a large part of the edge's code (start-up time).
    const { createPostgresStore } = await import("./postgres.js");
    const pg = await createPostgresStore({
      connectionString: location.databaseUrl,
      logger,
      auditKey: location.auditKey,
    });
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
      registry: {
        async heartbeat(r) {
          await pg.upsertRunner({
            id: r.id,
            url: r.url,
            load: r.load,
            healthy: r.healthy,
            bootId: r.bootId,
          });
        },
        async alive(withinMs) {
          return (await pg.listRunners({ aliveWithinMs: withinMs })).map((r) => ({
            id: r.id,
            url: r.url,
            load: r.load,
            healthy: r.healthy,
            bootId: r.bootId ?? "",
          }));
        },
        async remove(id) {
          await pg.removeRunner(id);
        },
      },
      leases: {
        acquire: (name, holder, ttlMs) => pg.tryAcquireLease(name, holder, ttlMs),
        renew: (name, holder, token, ttlMs) => pg.renewLease(name, holder, token, ttlMs),
        release: (name, holder, token) => pg.releaseLease(name, holder, token),
        async held(name) {
          const lease = await pg.getLease(name);
          return lease !== undefined && !lease.expired;
        },
      },
    };
  }
  const store = createSqliteStore({
    path: location.databasePath ?? join(location.dataDir, "gateway.db"),
    auditKey: location.auditKey,
  });
  return {
    store,
    kind: "sqlite",
    publish() {},
    async subscribe() {
      return async () => {};
    },
    registry: createMemoryRegistry(),
  };
}

/** The registry of a single edge (SQLite): in memory, rebuilt by the next heartbeats after a restart. */
function createMemoryRegistry(): RunnerRegistry {
  const runners = new Map<string, RegisteredRunner & { at: number }>();
  return {
    async heartbeat(r) {
      runners.set(r.id, { ...r, at: Date.now() });
    },
    async alive(withinMs) {
      const now = Date.now();
      return [...runners.values()]
        .filter((r) => now - r.at <= withinMs)
        .map(({ at: _, ...r }) => r);
    },
    async remove(id) {
      runners.delete(id);
    },
  };
}
