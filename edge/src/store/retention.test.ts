import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "@mcp-gateway/common/logger";
import { sampleTask } from "./contract.js";
import { startOutputRetention } from "./retention.js";
import { createSqliteStore } from "./sqlite.js";

describe("background output retention", () => {
  it("prunes at start and on every interval, keeps running tasks' output, stops cleanly", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    const logger = createLogger({ name: "test", level: "silent" });
    const now = Date.now();
    await store.createTask(sampleTask("task-1", { createdAt: now - 10 * 86_400_000 }));
    await store.appendOutput("task-1", "stdout", new Uint8Array(100), now, 1);
    await store.updateTask("task-1", { state: "completed", finishedAt: now });
    await store.createTask(
      sampleTask("task-2", { state: "running", createdAt: now - 10 * 86_400_000 }),
    );
    await store.appendOutput("task-2", "stdout", new Uint8Array(100), now, 1);
    const totals: number[] = [];
    const stop = startOutputRetention({
      store,
      maxAgeMs: 86_400_000,
      maxTotalBytes: 1 << 20,
      intervalMs: 20,
      logger,
      onPass: (t) => totals.push(t),
    });
    while (totals.length < 2) await new Promise((r) => setTimeout(r, 10));
    await stop();
    assert.equal(totals[0], 100, "the old finished task's output is gone, the running one's kept");
    assert.deepEqual(await store.readOutput("task-1", 0, 10), []);
    assert.equal((await store.readOutput("task-2", 0, 10)).length, 1);
    const passes = totals.length;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(totals.length, passes, "no pass after stop");
    await store.close();
  });
});
