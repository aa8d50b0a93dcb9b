import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { GatewayError } from "@mcp-gateway/common/errors";
import { Client } from "pg";
import {
  createTestDatabase,
  startPrivateCluster,
  type TestDatabase,
} from "../../../test/integration/helpers/postgres.js";
import { verifyAuditChain } from "../audit/chain.js";
import { runStoreContract, sampleAuditEntry, sampleTask } from "./contract.js";
import { createPostgresStore, type PostgresStore, type TaskEvent } from "./postgres.js";
import type { RawAuditRow } from "./types.js";

// These tests never skip: without $DATABASE_URL the helper starts a throwaway cluster
// (scripts/start-postgres.sh, installing PostgreSQL with apt when missing) or fails loudly.

async function collect(store: PostgresStore): Promise<RawAuditRow[]> {
  const rows: RawAuditRow[] = [];
  for await (const row of store.rawAudit({ batchSize: 97 })) rows.push(row);
  return rows;
}

/** Waits until `predicate` holds, polling; fails with `what` after `ms`. */
async function until(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

runStoreContract("postgres", {
  async open() {
    const db = await createTestDatabase("contract");
    const store = await createPostgresStore({ connectionString: db.url, poolSize: 8 });
    const close = store.close.bind(store);
    store.close = async () => {
      await close();
      await db.drop();
    };
    const exec = async (sql: string) => {
      const c = new Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query(sql);
      } finally {
        await c.end();
      }
    };
    return {
      store,
      rawAudit: () => collect(store),
      async refuseAuditInserts() {
        await exec(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
                      $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$;
                    CREATE TRIGGER refuse_audit BEFORE INSERT ON audit
                      FOR EACH ROW EXECUTE FUNCTION refuse_audit()`);
        return () => exec("DROP TRIGGER refuse_audit ON audit; DROP FUNCTION refuse_audit()");
      },
    };
  },
});

describe("postgres store", () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase("pgstore");
  });
  after(async () => {
    await db?.drop();
  });

  it("migrates once when several edges start at the same time", async () => {
    const fresh = await createTestDatabase("migrate");
    try {
      const stores = await Promise.all(
        Array.from({ length: 4 }, () =>
          createPostgresStore({ connectionString: fresh.url, poolSize: 2 }),
        ),
      );
      const again = await createPostgresStore({ connectionString: fresh.url });
      stores.push(again);
      const c = new Client({ connectionString: fresh.url });
      await c.connect();
      const { rows } = await c.query<{ version: number }>(
        "SELECT version FROM schema_migrations ORDER BY version",
      );
      await c.end();
      assert.deepEqual(
        rows.map((r) => r.version),
        [1, 2, 3, 4, 5, 6, 7],
      );
      await stores[0]?.createTask(sampleTask("m-1"));
      assert.equal((await again.getTask("m-1"))?.id, "m-1");
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await fresh.drop();
    }
  });

  it("detects a modified and a deleted audit record", async () => {
    const fresh = await createTestDatabase("tamper");
    const store = await createPostgresStore({ connectionString: fresh.url });
    try {
      for (const op of ["execute", "read_file", "execute", "cancel_task"]) {
        await store.appendAudit(sampleAuditEntry({ operation: op }));
      }
      assert.equal(verifyAuditChain(await collect(store)).ok, true);
      const c = new Client({ connectionString: fresh.url });
      await c.connect();
      await c.query("UPDATE audit SET body = replace(body, 'echo', 'rm') WHERE seq = 2");
      let verdict = verifyAuditChain(await collect(store));
      assert.equal(verdict.ok, false);
      assert.equal(verdict.firstBad?.seq, 2);
      assert.match(verdict.firstBad?.reason ?? "", /modified/);
      await c.query("DELETE FROM audit WHERE seq = 2");
      verdict = verifyAuditChain(await collect(store));
      assert.equal(verdict.firstBad?.seq, 3);
      assert.match(verdict.firstBad?.reason ?? "", /deleted/);
      await c.end();
    } finally {
      await store.close();
      await fresh.drop();
    }
  });

  it("keeps one linear chain with 4 edges appending 200 records each concurrently", async () => {
    const fresh = await createTestDatabase("chain");
    const edges = await Promise.all(
      Array.from({ length: 4 }, () =>
        createPostgresStore({ connectionString: fresh.url, poolSize: 4 }),
      ),
    );
    try {
      const perEdge = 200;
      const inFlight = 8;
      const appended = await Promise.all(
        edges.map(async (store, e) => {
          const seqs: number[] = [];
          // `inFlight` concurrent writers per edge, each appending its share in order.
          await Promise.all(
            Array.from({ length: inFlight }, async (_, w) => {
              for (let i = w; i < perEdge; i += inFlight) {
                const r = await store.appendAudit(
                  sampleAuditEntry({ time: i, traceId: `edge-${e}`, details: { e, i } }),
                );
                seqs.push(r.seq);
              }
            }),
          );
          return seqs;
        }),
      );
      const all = appended.flat().sort((a, b) => a - b);
      assert.deepEqual(
        all,
        Array.from({ length: 4 * perEdge }, (_, i) => i + 1),
      );
      const rows = await collect(edges[0] as PostgresStore);
      assert.deepEqual(
        rows.map((r) => r.seq),
        all,
      );
      const verdict = verifyAuditChain(rows);
      assert.equal(verdict.ok, true, verdict.firstBad?.reason);
      assert.equal(verdict.checked, 800);
      // Every edge's records are in the chain with their own content.
      const traces = new Map<string, number>();
      for (const r of rows) {
        const body = JSON.parse(r.body) as { traceId: string };
        traces.set(body.traceId, (traces.get(body.traceId) ?? 0) + 1);
      }
      assert.deepEqual(
        [...traces.entries()].sort(),
        [0, 1, 2, 3].map((e) => [`edge-${e}`, perEdge]),
      );
    } finally {
      await Promise.all(edges.map((s) => s.close()));
      await fresh.drop();
    }
  });

  it("numbers output and resolves task races across edges", async () => {
    const edges = await Promise.all(
      Array.from({ length: 3 }, () =>
        createPostgresStore({ connectionString: db.url, poolSize: 4 }),
      ),
    );
    try {
      const seqs = await Promise.all(
        Array.from({ length: 90 }, (_, i) =>
          (edges[i % 3] as PostgresStore).appendOutput(
            "x-task",
            "stdout",
            new TextEncoder().encode(String(i)),
            i,
          ),
        ),
      );
      assert.deepEqual(
        [...seqs].sort((a, b) => a - b),
        Array.from({ length: 90 }, (_, i) => i + 1),
      );
      await edges[0]?.createTask(sampleTask("x-race", { state: "running" }));
      const results = await Promise.all(
        edges.flatMap((s, e) =>
          [0, 1, 2].map((i) =>
            s.updateTask("x-race", {
              state: i === 0 ? "cancelled" : "completed",
              statusMessage: `edge ${e}/${i}`,
            }),
          ),
        ),
      );
      const stored = await edges[2]?.getTask("x-race");
      for (const r of results) assert.equal(r?.statusMessage, stored?.statusMessage);
    } finally {
      await Promise.all(edges.map((s) => s.close()));
    }
  });

  it("grants a lease to one holder at a time and increments the fencing token on takeover", async () => {
    const a = await createPostgresStore({ connectionString: db.url });
    const b = await createPostgresStore({ connectionString: db.url });
    try {
      const first = await a.tryAcquireLease("edge-active", "edge-a", 300);
      assert.equal(first.acquired, true);
      assert.equal(first.token, 1n);
      assert.equal(first.holder, "edge-a");
      const denied = await b.tryAcquireLease("edge-active", "edge-b", 300);
      assert.deepEqual([denied.acquired, denied.holder, denied.token], [false, "edge-a", 1n]);
      // Renewal (by re-acquiring or renewLease) keeps the tenure and its token.
      assert.equal((await a.tryAcquireLease("edge-active", "edge-a", 300)).token, 1n);
      assert.equal(await a.renewLease("edge-active", "edge-a", 1n, 300), true);
      assert.equal(await b.renewLease("edge-active", "edge-b", 1n, 300), false);

      await sleep(450); // let it expire without renewal
      assert.equal((await b.getLease("edge-active"))?.expired, true);
      const takeover = await b.tryAcquireLease("edge-active", "edge-b", 5_000);
      assert.deepEqual([takeover.acquired, takeover.holder, takeover.token], [true, "edge-b", 2n]);
      // The paused ex-leader is fenced off.
      assert.equal(await a.renewLease("edge-active", "edge-a", 1n, 300), false);
      assert.equal(await a.releaseLease("edge-active", "edge-a", 1n), false);
      assert.equal((await a.tryAcquireLease("edge-active", "edge-a", 300)).acquired, false);

      // A release hands over at once, with a new token.
      assert.equal(await b.releaseLease("edge-active", "edge-b", 2n), true);
      const back = await a.tryAcquireLease("edge-active", "edge-a", 5_000);
      assert.deepEqual([back.acquired, back.token], [true, 3n]);
      const lease = await b.getLease("edge-active");
      assert.deepEqual([lease?.holder, lease?.token, lease?.expired], ["edge-a", 3n, false]);
      assert.equal(await a.getLease("no-such-lease"), undefined);

      // Many contenders for a free lease: exactly one wins.
      const contenders = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 ? a : b).tryAcquireLease("runner-active", `r-${i}`, 5_000),
        ),
      );
      const winners = contenders.filter((c) => c.acquired);
      assert.equal(winners.length, 1);
      for (const c of contenders) assert.equal(c.holder, winners[0]?.holder);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("keeps a runner registry with heartbeats, health and load order", async () => {
    const store = await createPostgresStore({ connectionString: db.url });
    try {
      const r1 = await store.upsertRunner({
        id: "runner-1",
        url: "https://r1:9443",
        load: 0.5,
        healthy: true,
      });
      assert.ok(Math.abs(r1.lastHeartbeat - Date.now()) < 60_000);
      await store.upsertRunner({
        id: "runner-2",
        url: "https://r2:9443",
        load: 0.1,
        healthy: true,
      });
      await store.upsertRunner({ id: "runner-3", url: "https://r3:9443", load: 0, healthy: false });
      assert.deepEqual(
        (await store.listRunners()).map((r) => r.id),
        ["runner-3", "runner-2", "runner-1"],
      );
      assert.deepEqual(
        (await store.listRunners({ healthyOnly: true })).map((r) => r.id),
        ["runner-2", "runner-1"],
      );
      // runner-2 stops heartbeating: it drops out of the alive set.
      const c = new Client({ connectionString: db.url });
      await c.connect();
      await c.query(
        "UPDATE runners SET last_heartbeat = now() - interval '10 seconds' WHERE id = 'runner-2'",
      );
      await c.end();
      assert.deepEqual(
        (await store.listRunners({ aliveWithinMs: 5_000, healthyOnly: true })).map((r) => r.id),
        ["runner-1"],
      );
      const beat = await store.upsertRunner({
        id: "runner-2",
        url: "https://r2b:9443",
        load: 0.7,
        healthy: true,
      });
      assert.equal(beat.url, "https://r2b:9443");
      assert.deepEqual(
        (await store.listRunners({ aliveWithinMs: 5_000, healthyOnly: true })).map((r) => [
          r.id,
          r.load,
        ]),
        [
          ["runner-1", 0.5],
          ["runner-2", 0.7],
        ],
      );
      assert.equal(await store.removeRunner("runner-3"), true);
      assert.equal(await store.removeRunner("runner-3"), false);
      assert.equal((await store.listRunners()).length, 2);
    } finally {
      await store.close();
    }
  });

  it("delivers task events from one edge to listeners on another", async () => {
    const a = await createPostgresStore({ connectionString: db.url });
    const b = await createPostgresStore({ connectionString: db.url });
    try {
      const seenA: TaskEvent[] = [];
      const seenB: TaskEvent[] = [];
      const subA = await a.listen((e) => seenA.push(e));
      const subB = await b.listen((e) => seenB.push(e));
      await b.notify("task-n1");
      await until(() => seenA.length === 1 && seenB.length === 1, "task-n1 on both edges");
      assert.deepEqual(seenA, [{ kind: "task", taskId: "task-n1" }]);
      await subA.close();
      await b.notify("task-n2");
      await until(() => seenB.length === 2, "task-n2 on edge b");
      await sleep(100);
      assert.equal(seenA.length, 1, "a closed subscription receives nothing");
      await subB.close();
    } finally {
      await a.close();
      await b.close();
    }
  });
  it("survives its connections being killed by the server", async () => {
    const name = `mcp-kill-test-${process.pid}`;
    const store = await createPostgresStore({ connectionString: db.url, applicationName: name });
    try {
      const events: TaskEvent[] = [];
      const sub = await store.listen((e) => events.push(e));
      await store.createTask(sampleTask("k-1"));
      const admin = new Client({ connectionString: db.url });
      await admin.connect();
      const { rows } = await admin.query<{ killed: boolean }>(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1",
        [name],
      );
      await admin.end();
      assert.ok(rows.length >= 2, "the pool connection and the LISTEN connection were terminated");
      assert.equal((await store.getTask("k-1"))?.id, "k-1");
      await until(() => events.some((e) => e.kind === "resync"), "LISTEN to reconnect");
      await store.notify("k-1");
      await until(
        () => events.some((e) => e.kind === "task" && e.taskId === "k-1"),
        "a notification on the new LISTEN connection",
      );
      await sub.close();
    } finally {
      await store.close();
      await store.close(); // idempotent
    }
  });
});

describe("postgres store across a PostgreSQL restart", () => {
  it("fails fast while PostgreSQL is down and recovers without reopening the store", {
    timeout: 180_000,
  }, async () => {
    const cluster = await startPrivateCluster("restart");
    const store = await createPostgresStore({
      connectionString: cluster.url,
      connectTimeoutMs: 2_000,
      poolSize: 4,
    });
    try {
      const events: TaskEvent[] = [];
      const sub = await store.listen((e) => events.push(e));
      await store.createTask(sampleTask("r-1"));
      await store.appendAudit(sampleAuditEntry({ operation: "before" }));

      await cluster.restart();
      assert.equal(
        (await store.getTask("r-1"))?.id,
        "r-1",
        "a read right after the restart succeeds",
      );
      await store.createTask(sampleTask("r-2"));
      await store.appendAudit(sampleAuditEntry({ operation: "after-restart" }));
      await until(
        () => events.some((e) => e.kind === "resync"),
        "the LISTEN connection to come back",
      );
      await store.notify("r-2");
      await until(
        () => events.some((e) => e.kind === "task" && e.taskId === "r-2"),
        "a notification after the restart",
      );

      const resyncs = events.filter((e) => e.kind === "resync").length;
      await cluster.stop();
      const started = Date.now();
      await assert.rejects(store.getTask("r-1"), (err: unknown) => {
        assert.ok(err instanceof GatewayError, `expected GatewayError, got ${String(err)}`);
        assert.equal(err.code, "unavailable");
        return true;
      });
      await assert.rejects(
        store.appendAudit(sampleAuditEntry({ operation: "lost" })),
        /unavailable/,
      );
      assert.ok(Date.now() - started < 30_000, "failed queries surface as errors, not hangs");

      await cluster.start();
      await store.ping();
      assert.equal((await store.updateTask("r-2", { state: "completed" }))?.state, "completed");
      await store.appendAudit(sampleAuditEntry({ operation: "after-outage" }));
      const verdict = verifyAuditChain(await collect(store));
      assert.equal(verdict.ok, true);
      assert.equal(verdict.checked, 3);
      await until(
        () => events.filter((e) => e.kind === "resync").length > resyncs,
        "LISTEN to reconnect after the outage",
      );
      await store.notify("r-3");
      await until(
        () => events.some((e) => e.kind === "task" && e.taskId === "r-3"),
        "a notification after the outage",
      );
      await sub.close();
    } finally {
      await store.close();
      await cluster.destroy();
    }
  });
});
