/**
 * Issue 22 end to end: a real edge and runner, called like any client. A denied program that
 * the static command policy cannot see is refused by the kernel, and the task's own output
 * stream carries the refused path and the policy's reason; an unknown environment variable is
 * refused naming it; each member of a tenant has their own workspace by default.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OutputKind } from "@mcp-gateway/proto/mcp";
import { createMcpClient } from "../../client/src/client.js";
import { connectJson, type Gateway, runCli, startGateway, waitForTask } from "./harness.js";

let gw: Gateway;
let alice: string;
let bob: string;

before(async () => {
  gw = await startGateway({});
  alice = await gw.token("alice", ["developer"]);
  bob = await gw.token("bob", ["developer"]);
});
after(async () => {
  await gw?.stop();
});

describe("the kernel holds the line the static policy cannot see", () => {
  it("sh -c 'x=dd; $x' is allowed statically, refused by Landlock, and the events say why", async () => {
    const client = createMcpClient({ baseUrl: gw.url, token: alice });
    const r = await client.executeCommand({
      command: "sh",
      args: ["-c", "x=dd; $x --version"],
      workspace: "ll",
    });
    const events: string[] = [];
    let out = "";
    for await (const m of client.streamTaskOutput({ taskId: r.taskId })) {
      if (m.kind === OutputKind.EVENT) events.push(m.message);
      if (m.kind === OutputKind.STDOUT || m.kind === OutputKind.STDERR) {
        out += new TextDecoder().decode(m.data);
      }
    }
    assert.doesNotMatch(out, /coreutils/, "dd ran");
    assert.match(out, /Permission denied/);
    assert.ok(
      events.some((e) =>
        /refused to execute \/usr\/bin\/dd: command "dd" is denied: dd writes raw blocks/.test(e),
      ),
      JSON.stringify(events),
    );
  });

  it("an environment variable outside the allowlist is refused with its name", async () => {
    const r = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "git", args: ["status"], env: { GIT_CONFIG_COUNT: "1" }, workspace: "ll" },
      alice,
    );
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.match(String(r.body.message), /GIT_CONFIG_COUNT is not allowed/);
  });

  it("an admin resets a broken member's workspace (RPC and CLI); members may not", async () => {
    const broke = await connectJson(
      gw.url,
      "ExecuteCommand",
      {
        command: "sh",
        args: [
          "-c",
          "mkdir -p d/e && touch d/e/f && chmod 000 d && ln -s /etc evil; chmod 000 /workspace",
        ],
        workspace: "broken",
      },
      alice,
    );
    await waitForTask(gw.url, alice, String(broke.body.taskId));
    const denied = await connectJson(
      gw.url,
      "ResetWorkspace",
      { workspace: "broken", owner: "alice" },
      bob,
    );
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
    const admin = await gw.token("ada", ["admin"]);
    const r = await runCli(
      ["workspace", "reset", "broken", "--owner", "alice", "--url", gw.url, "--token", admin],
      { MCP_GATEWAY_DATA_DIR: gw.dataDir },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /workspace broken of alice reset/);
    const list = await connectJson(
      gw.url,
      "ListDirectory",
      { workspace: "broken", path: "" },
      alice,
    );
    assert.equal(list.status, 200, JSON.stringify(list.body));
    assert.deepEqual(list.body.entries ?? [], []);
  });

  it("workspaces are per principal: bob does not see what alice planted in hers", async () => {
    const w = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "sh", args: ["-c", "echo planted > cat; chmod 755 cat"], workspace: "team" },
      alice,
    );
    await waitForTask(gw.url, alice, String(w.body.taskId));
    const mine = await connectJson(gw.url, "ListDirectory", { workspace: "team", path: "" }, alice);
    assert.ok(JSON.stringify(mine.body).includes('"cat"'), JSON.stringify(mine.body));
    const theirs = await connectJson(gw.url, "ListDirectory", { workspace: "team", path: "" }, bob);
    assert.equal(theirs.status, 200, JSON.stringify(theirs.body));
    assert.ok(!JSON.stringify(theirs.body).includes('"cat"'), JSON.stringify(theirs.body));
  });
});
