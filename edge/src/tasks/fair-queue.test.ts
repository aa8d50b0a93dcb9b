import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createFairQueue, type Ticket } from "./fair-queue.js";

/** Serves every ticket in turn (each attempt succeeds) and returns the tenants in start order. */
async function drain(tickets: Ticket[]): Promise<string[]> {
  const order: string[] = [];
  await Promise.all(
    tickets.map(async (t) => {
      while (!(await t.turn(50))) {}
      order.push(t.tenant);
      t.taken();
    }),
  );
  return order;
}

describe("fair queue", () => {
  it("alternates between tenants however many tasks each has waiting", async () => {
    const q = createFairQueue();
    const tickets = [
      ...Array.from({ length: 6 }, () => q.enter("acme")),
      q.enter("globex"),
      q.enter("initech"),
    ];
    assert.equal(q.size(), 8);
    const order = await drain(tickets);
    assert.deepEqual(order.slice(0, 3), ["acme", "globex", "initech"]);
    assert.deepEqual(order.slice(3), ["acme", "acme", "acme", "acme", "acme"]);
    assert.equal(q.size(), 0);
  });

  it("gives one turn at a time; a refused attempt keeps its place and waits the back-off", async () => {
    const q = createFairQueue({ backoffMs: 30 });
    const a = q.enter("acme");
    const b = q.enter("globex");
    assert.equal(await a.turn(10), true);
    assert.equal(await b.turn(10), false, "only one attempt in flight");
    a.refused();
    assert.equal(await b.turn(5), false, "nobody gets a turn during the back-off");
    assert.equal(await a.turn(200), true, "the same ticket is asked again first");
    a.taken();
    assert.equal(await b.turn(10), true);
    b.taken();
  });

  it("a ticket that leaves with the turn passes it on; one that leaves without it is skipped", async () => {
    const q = createFairQueue();
    const a = q.enter("acme");
    const b = q.enter("acme");
    const c = q.enter("globex");
    assert.equal(await a.turn(10), true);
    b.leave();
    a.leave();
    assert.equal(await c.turn(10), true);
    assert.equal(await b.turn(10), false);
    c.taken();
    assert.equal(q.size(), 0);
  });

  it("wake() ends a back-off at once", async () => {
    const q = createFairQueue({ backoffMs: 60_000 });
    const a = q.enter("acme");
    assert.equal(await a.turn(10), true);
    a.refused();
    assert.equal(await a.turn(10), false);
    q.wake();
    assert.equal(await a.turn(10), true);
    a.taken();
  });

  it("reports its length to a gauge", () => {
    let n = 0;
    const q = createFairQueue({ onSize: (d) => (n += d) });
    const a = q.enter("acme");
    q.enter("acme").leave();
    assert.equal(n, 1);
    a.taken();
    assert.equal(n, 0);
  });
});
