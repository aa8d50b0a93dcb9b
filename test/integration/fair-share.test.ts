import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connectJson, type Gateway, startGateway, waitForTask } from "./harness.js";

/**
 * Issue 21, finding 4, the queue: with every runner slot taken, the tasks that wait get the
 * freed slots round robin over tenants — a tenant with many tasks waiting does not push back
 * another tenant's single task (a runner with one slot makes the order observable).
 */
let gw: Gateway;

before(async () => {
  const runnerConfig = join(tmpdir(), `mcp-fair-runner-${process.pid}.json`);
  writeFileSync(runnerConfig, JSON.stringify({ maxConcurrentTasks: 1 }));
  gw = await startGateway({ runnerArgs: ["--config", runnerConfig] });
});
after(async () => {
  await gw?.stop();
});

const startedMs = (t: Record<string, unknown>) => Date.parse(String(t.startedAt));

describe("fair share of runner slots between tenants", () => {
  it("another tenant's task starts at the next free slot, ahead of a backlog queued before it", async () => {
    const alice = await gw.token("alice", ["developer"], ["--tenant", "acme"]);
    const bob = await gw.token("bob", ["developer"], ["--tenant", "globex"]);
    const submit = async (token: string, command: string, args: string[]) => {
      const r = await connectJson(gw.url, "ExecuteCommand", { command, args }, token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return String(r.body.taskId);
    };
    // acme takes the only slot, then queues a backlog of six.
    const busy = await submit(alice, "sleep", ["2"]);
    const backlog: string[] = [];
    for (let i = 0; i < 6; i++) backlog.push(await submit(alice, "echo", [`acme ${i}`]));
    await new Promise((r) => setTimeout(r, 700));
    // globex's single task arrives last.
    const single = await submit(bob, "echo", ["globex"]);

    const b = await waitForTask(gw.url, bob, single, 60_000);
    assert.equal(b.status, "TASK_STATUS_COMPLETED", JSON.stringify(b));
    const a = await Promise.all(backlog.map((id) => waitForTask(gw.url, alice, id, 60_000)));
    for (const t of a) assert.equal(t.status, "TASK_STATUS_COMPLETED", JSON.stringify(t));
    const first = await waitForTask(gw.url, alice, busy, 60_000);
    assert.equal(first.status, "TASK_STATUS_COMPLETED");
    // Turns alternate between tenants: at most one of acme's backlog starts before globex's task
    // (the one whose turn it was when the slot freed); first come, first served would be six.
    const ahead = a.filter((t) => startedMs(t) < startedMs(b)).length;
    assert.ok(ahead <= 1, `${ahead} of acme's queued tasks started before globex's`);
  });
});
