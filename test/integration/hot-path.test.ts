import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { McpService, OutputKind } from "@mcp-gateway/proto/mcp";
import { type Gateway, startGateway } from "./harness.js";

/**
 * Regression guard of the hot path (issue 13) without timings: the store work
 * a sandboxed task costs, counted by the edge's own metrics. A change that adds
 * a write to every task, or syncs the disk per write instead of per group,
 * fails here whatever the machine's load.
 */

/** Store writes (commits) of one sequential `echo hi` task: the audit records of
 * ExecuteCommand and StreamTaskOutput, the task, its runner, started, one output
 * chunk, and the outcome with its audit record (one transaction: a crash cannot separate them). */
const COMMITS_PER_TASK = 6;
/** Of those, the writes that join the audit batch (the two records and the outcome with its
 * record): made in one turn of the edge's event loop, they share one commit. */
const BATCHED_PER_TASK = 3;
/** Of those, the ones that wait for the disk: the task's insert (whose sync also covers
 * ExecuteCommand's audit record, committed just before it), StreamTaskOutput's audit record and
 * the outcome. `started`, the output chunk and the exit are the runner's to replay until the
 * outcome is durable. */
const SYNCED_PER_TASK = 3;

async function storeCounters(url: string): Promise<{ commits: number; syncs: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(text);
    assert.ok(m, `${name} missing from /metrics`);
    return Number(m[1]);
  };
  return { commits: read("mcp_store_commits_total"), syncs: read("mcp_store_syncs_total") };
}

describe("hot path: store work per task", () => {
  let gw: Gateway;
  let client: (sub: string) => ReturnType<typeof createClient<typeof McpService>>;

  before(async () => {
    gw = await startGateway();
    const tokens = new Map<string, string>();
    for (const sub of ["hot-a", "hot-b", "hot-c", "hot-d"]) tokens.set(sub, await gw.token(sub));
    client = (sub) =>
      createClient(
        McpService,
        createConnectTransport({
          baseUrl: gw.url,
          httpVersion: "1.1",
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${tokens.get(sub)}`);
              return next(req);
            },
          ],
        }),
      );
  });
  after(async () => {
    await gw?.stop();
  });

  async function echo(sub: string): Promise<void> {
    const c = client(sub);
    const { taskId } = await c.executeCommand({ command: "echo", args: ["hi"] });
    let out = "";
    let exited = false;
    for await (const m of c.streamTaskOutput({ taskId })) {
      if (m.kind === OutputKind.STDOUT) out += Buffer.from(m.data).toString();
      if (m.kind === OutputKind.EXIT) exited = true;
    }
    assert.equal(out, "hi\n");
    assert.ok(exited);
  }

  it("a sequential task costs a fixed number of store commits, each one durable", async () => {
    await echo("hot-a"); // warm-up: first-use writes (workspace, security events) are not per task
    // The outcome's sync may end after EXIT reached the client: let it land.
    await new Promise((r) => setTimeout(r, 300));
    const before = await storeCounters(gw.url);
    const n = 10;
    for (let i = 0; i < n; i++) await echo("hot-a");
    await new Promise((r) => setTimeout(r, 300));
    const afterRun = await storeCounters(gw.url);
    const commits = afterRun.commits - before.commits;
    const syncs = afterRun.syncs - before.syncs;
    // StreamTaskOutput's record and the outcome share a commit when the exit arrives in the
    // same turn of the edge's event loop (seen under load): at most one commit less per task.
    // A write added to every task still fails here unless every one of the n tasks shares.
    assert.ok(
      commits <= n * COMMITS_PER_TASK && commits >= n * (COMMITS_PER_TASK - 1),
      `store commits per task: ${commits / n} (budget ${COMMITS_PER_TASK}, ${COMMITS_PER_TASK - 1} when shared)`,
    );
    // Only the commits named above wait for a sync of their own.
    assert.ok(
      syncs >= n && syncs <= n * SYNCED_PER_TASK,
      `syncs ${syncs} for ${n} tasks (at most ${SYNCED_PER_TASK} each)`,
    );
  });

  it("concurrent tasks share WAL syncs (group commit)", async () => {
    const before = await storeCounters(gw.url);
    await Promise.all(
      ["hot-a", "hot-b", "hot-c", "hot-d"].flatMap((sub) => [echo(sub), echo(sub), echo(sub)]),
    );
    await new Promise((r) => setTimeout(r, 300));
    const afterRun = await storeCounters(gw.url);
    const commits = afterRun.commits - before.commits;
    const syncs = afterRun.syncs - before.syncs;
    // Audit records and outcomes of concurrent requests may share a commit (sqlite.ts,
    // flushAudit); nothing else does.
    assert.ok(
      commits <= 12 * COMMITS_PER_TASK && commits > 12 * (COMMITS_PER_TASK - BATCHED_PER_TASK),
      `${commits} commits for 12 concurrent tasks`,
    );
    assert.ok(syncs < commits, `${syncs} syncs for ${commits} concurrent commits: none grouped`);
  });
});
