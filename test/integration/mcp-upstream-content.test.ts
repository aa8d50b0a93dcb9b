import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError, ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { connectJson, type Gateway, ROOT, runCli, startGateway } from "./harness.js";
import { freePort, startEverything } from "./helpers/everything.js";

/**
 * Upstream resources, prompts and completions through the gateway, with the
 * reference server-everything over Streamable HTTP as the upstream: resources
 * named `mcp-gateway://everything/<uri>`, prompts `everything__<name>`, each
 * request decided by the shipped policy (policies/data/upstreams.json: a
 * viewer reads only the static documents and gets only simple-prompt) and
 * audited with its outcome.
 */
let gw: Gateway;
let everything: ChildProcess;
let config = "";
let dev: string;
let viewer: string;
let admin: string;

const DOC = "demo://resource/static/document/architecture.md";
const GW_DOC = `mcp-gateway://everything/${DOC}`;

before(async () => {
  const port = await freePort();
  everything = await startEverything(port);
  const dir = join(ROOT, "node_modules", ".cache");
  mkdirSync(dir, { recursive: true });
  config = join(dir, `mcp-upstream-content-${process.pid}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      mcp: {
        upstreams: [{ name: "everything", kind: "http", url: `http://127.0.0.1:${port}/mcp` }],
      },
    }),
  );
  gw = await startGateway({ edgeArgs: ["--config", config] });
  dev = await gw.token("content-dev", ["developer"]);
  viewer = await gw.token("content-viewer", ["viewer"]);
  admin = await gw.token("content-admin", ["admin"]);
});

after(async () => {
  everything?.kill("SIGKILL");
  await gw?.stop();
  rmSync(config, { force: true });
});

async function connect(token: string): Promise<Client> {
  const client = new Client({ name: "mcp-content-it", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

/** Runs `fn` with a connected client and closes it. */
async function as<T>(token: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = await connect(token);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

describe("upstream resources, prompts and completions through the gateway", () => {
  it("advertises what it serves: resources with subscriptions, prompts, completions, logging", async () => {
    await as(dev, async (c) => {
      const caps = c.getServerCapabilities();
      assert.ok(caps?.tools);
      assert.deepEqual(caps?.resources, { subscribe: true, listChanged: false });
      assert.deepEqual(caps?.prompts, { listChanged: false });
      assert.deepEqual(caps?.completions, {});
      assert.deepEqual(caps?.logging, {}, "upstream log messages are relayed (ADR 0026)");
      assert.deepEqual(await c.setLoggingLevel("error"), {});
    });
  });

  it("lists and reads upstream resources under mcp-gateway://<server>/<uri>", async () => {
    await as(dev, async (c) => {
      const listed = (await c.listResources()).resources.map((r) => r.uri);
      assert.ok(listed.includes(GW_DOC), listed.join(" "));
      assert.ok(listed.every((u) => u.startsWith("mcp-gateway://everything/")));
      const templates = (await c.listResourceTemplates()).resourceTemplates.map(
        (t) => t.uriTemplate,
      );
      assert.ok(
        templates.includes("mcp-gateway://everything/demo://resource/dynamic/text/{resourceId}"),
        templates.join(" "),
      );
      const doc = await c.readResource({ uri: GW_DOC });
      assert.equal(doc.contents[0]?.uri, GW_DOC, "content URIs are the gateway's names");
      assert.match(JSON.stringify(doc.contents[0]), /"text":"[^"]/);
      // A resource of a template, expanded by the client.
      const dyn = await c.readResource({
        uri: "mcp-gateway://everything/demo://resource/dynamic/text/7",
      });
      assert.match(JSON.stringify(dyn.contents[0]), /"text":"[^"]*7/);
      // The upstream's own error answer is passed on, naming the server.
      await assert.rejects(
        c.readResource({ uri: "mcp-gateway://everything/demo://resource/nowhere" }),
        (err: unknown) => {
          assert.ok(err instanceof McpError);
          assert.ok([-32002, -32602].includes(err.code), String(err.code));
          assert.match(err.message, /upstream everything: .*demo:\/\/resource\/nowhere/);
          return true;
        },
      );
      // An upstream's own URI is not a gateway name (no upstream is unprefixed here).
      await assert.rejects(c.readResource({ uri: DOC }), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, -32602);
        assert.match(err.message, /resources are named mcp-gateway:\/\/<server>\/<uri>/);
        return true;
      });
    });
  });

  it("renames resource links in upstream tool results, so they can be read through the gateway", async () => {
    await as(dev, async (c) => {
      const r = await c.callTool({
        name: "everything__get-resource-links",
        arguments: { count: 1 },
      });
      const link = (r.content as Array<{ type: string; uri?: string }>).find(
        (b) => b.type === "resource_link",
      );
      assert.ok(link?.uri, JSON.stringify(r.content));
      assert.match(link.uri, /^mcp-gateway:\/\/everything\/demo:\/\/resource\/dynamic\//);
      const read = await c.readResource({ uri: link.uri });
      assert.equal(read.contents[0]?.uri, link.uri);
    });
  });

  it("lists and gets upstream prompts as <server>__<prompt>, and completes their arguments", async () => {
    await as(dev, async (c) => {
      const names = (await c.listPrompts()).prompts.map((p) => p.name);
      for (const n of ["everything__simple-prompt", "everything__args-prompt"]) {
        assert.ok(names.includes(n), names.join(" "));
      }
      const simple = await c.getPrompt({ name: "everything__simple-prompt" });
      assert.ok(simple.messages.length > 0);
      const args = await c.getPrompt({
        name: "everything__args-prompt",
        arguments: { city: "Lyon" },
      });
      assert.match(JSON.stringify(args.messages), /Lyon/);
      const done = await c.complete({
        ref: { type: "ref/prompt", name: "everything__completable-prompt" },
        argument: { name: "department", value: "En" },
      });
      assert.deepEqual(done.completion.values, ["Engineering"]);
    });
  });

  it("filters lists and denies reads by role, with the policy's reason", async () => {
    await as(viewer, async (c) => {
      const listed = (await c.listResources()).resources.map((r) => r.uri);
      assert.ok(listed.includes(GW_DOC));
      const templates = (await c.listResourceTemplates()).resourceTemplates;
      assert.deepEqual(templates, [], "the viewer may read no dynamic resource");
      assert.deepEqual(
        (await c.listPrompts()).prompts.map((p) => p.name),
        ["everything__simple-prompt"],
      );
      assert.ok((await c.readResource({ uri: GW_DOC })).contents.length > 0);
      await assert.rejects(
        c.readResource({ uri: "mcp-gateway://everything/demo://resource/dynamic/text/1" }),
        (err: unknown) => {
          assert.ok(err instanceof McpError);
          assert.equal(err.code, -32003);
          assert.match(
            err.message,
            /permission denied: your roles \(viewer\) may not read resource demo:\/\/resource\/dynamic\/text\/1 of server everything/,
          );
          assert.deepEqual(err.data, { code: "permission_denied" });
          return true;
        },
      );
      await assert.rejects(
        c.getPrompt({ name: "everything__args-prompt", arguments: { city: "Lyon" } }),
        /may not get prompt args-prompt of server everything/,
      );
    });
  });

  it("records decisions and outcomes (arguments and result digests) in the audit chain", async () => {
    const r = await connectJson(gw.url, "ListAuditEvents", { pageSize: 1000 }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const events = (r.body.events ?? []) as Array<{
      operation: string;
      decision: string;
      outcome: string;
      reasons?: string[];
      paramsJson: string;
      detailsJson: string;
    }>;
    const reads = events.filter((e) => e.operation === "read_resource");
    const allowed = reads.find((e) => e.decision === "allow" && e.paramsJson.includes(DOC));
    assert.ok(allowed, "an allowed read is audited with its URI");
    assert.match(allowed.paramsJson, /"server":"everything"/);
    const denied = reads.find((e) => e.decision === "deny");
    assert.ok(denied, "a denied read is audited");
    assert.match(
      String(denied.reasons),
      /may not read resource demo:\/\/resource\/dynamic\/text\/1/,
    );
    const outcome = reads.find((e) => e.decision === "none" && e.outcome === "completed");
    assert.ok(outcome, "the outcome of a read is audited");
    assert.match(outcome.detailsJson, /"result_digest":"sha256:[0-9a-f]{64}"/);
    assert.ok(
      reads.some((e) => e.decision === "none" && e.outcome === "failed"),
      "a read the upstream refused is audited as failed",
    );
    const prompts = events.filter((e) => e.operation === "get_prompt");
    assert.ok(prompts.some((e) => e.decision === "deny"));
    const got = prompts.find((e) => e.decision === "allow" && e.paramsJson.includes("args-prompt"));
    assert.match(got?.paramsJson ?? "", /"arguments_digest":"sha256:[0-9a-f]{64}"/);
    assert.ok(!(got?.paramsJson ?? "").includes("Lyon"), "arguments only as a digest by default");
    assert.ok(events.some((e) => e.operation === "complete" && e.decision === "allow"));
    for (const op of ["list_resources", "list_prompts"]) {
      assert.ok(
        events.some((e) => e.operation === op && e.decision === "allow"),
        op,
      );
    }
    const verify = await runCli(["audit", "verify"], { MCP_GATEWAY_DATA_DIR: gw.dataDir });
    assert.equal(verify.code, 0, verify.stderr);
  });
  it("relays updates of subscribed resources on the standing stream, until unsubscribed", async () => {
    // The same subject in another tenant is someone else: its standing stream, open all along,
    // gets none of these updates.
    const twinToken = await gw.token("content-dev", ["developer"], ["--tenant", "other-tenant"]);
    const twin = await fetch(`${gw.url}/mcp`, {
      headers: { accept: "text/event-stream", authorization: `Bearer ${twinToken}` },
    });
    assert.equal(twin.status, 200);
    const twinReader = twin.body?.getReader();
    let twinText = new TextDecoder().decode((await twinReader?.read())?.value);
    assert.match(twinText, /standing stream/, "the twin's stream is open");
    const twinRead = (async () => {
      for (;;) {
        const r = await twinReader?.read().catch(() => undefined);
        if (!r || r.done) return;
        twinText += new TextDecoder().decode(r.value);
      }
    })();
    await as(dev, async (c) => {
      const updates: string[] = [];
      c.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
        updates.push(n.params.uri);
      });
      assert.deepEqual(await c.subscribeResource({ uri: GW_DOC }), {});
      // server-everything sends updates of subscribed resources every 5 s once this is on (on
      // the gateway's session with it, as the call goes through the gateway).
      const toggle = () =>
        c.callTool({ name: "everything__toggle-subscriber-updates", arguments: {} });
      await toggle();
      try {
        const until = Date.now() + 15_000;
        while (!updates.includes(GW_DOC) && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(updates.includes(GW_DOC), `an update under the gateway's URI: ${updates}`);
        assert.deepEqual(await c.unsubscribeResource({ uri: GW_DOC }), {});
        await new Promise((r) => setTimeout(r, 200));
        updates.length = 0;
        await new Promise((r) => setTimeout(r, 6000)); // more than one update interval
        assert.deepEqual(updates, [], "no update after unsubscribing");
        assert.doesNotMatch(
          twinText,
          /resources\/updated/,
          "another tenant's principal of the same name gets none",
        );
      } finally {
        await toggle();
        await twinReader?.cancel();
        await twinRead;
      }
    });
    await as(viewer, async (c) => {
      await assert.rejects(
        c.subscribeResource({ uri: "mcp-gateway://everything/demo://resource/dynamic/text/1" }),
        (err: unknown) =>
          err instanceof McpError &&
          err.code === -32003 &&
          /may not read resource demo:\/\/resource\/dynamic\/text\/1/.test(err.message),
      );
    });
    const r = await connectJson(gw.url, "ListAuditEvents", { pageSize: 1000 }, admin);
    const subscribed = ((r.body.events ?? []) as Array<{ decision: string; paramsJson: string }>)
      .filter((e) => e.paramsJson.includes('"subscribe":true'))
      .map((e) => e.decision)
      .sort();
    assert.deepEqual(
      [...new Set(subscribed)],
      ["allow", "deny", "none"],
      "subscriptions are decided and audited like reads",
    );
  });

  it("malformed params of resource, prompt and subscription requests are -32602 naming the field", async () => {
    for (const [method, params, field] of [
      ["resources/read", { uri: 7 }, "params.uri"],
      ["resources/subscribe", {}, "params.uri"],
      ["prompts/get", {}, "params.name"],
    ] as const) {
      const r = await fetch(`${gw.url}/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${dev}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      });
      const body = (await r.json()) as { error?: { code: number; message: string } };
      assert.equal(body.error?.code, -32602, `${method}: ${JSON.stringify(body)}`);
      assert.ok(body.error?.message.includes(`invalid params of ${method}: ${field}`), method);
    }
  });

  it("a standing stream (GET /mcp) needs a token and text/event-stream", async () => {
    const noToken = await fetch(`${gw.url}/mcp`, { headers: { accept: "text/event-stream" } });
    assert.equal(noToken.status, 401);
    await noToken.body?.cancel();
    const notSse = await fetch(`${gw.url}/mcp`, {
      headers: { accept: "application/json", authorization: `Bearer ${dev}` },
    });
    assert.equal(notSse.status, 406);
    await notSse.body?.cancel();
    const del = await fetch(`${gw.url}/mcp`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${dev}` },
    });
    assert.equal(del.status, 405);
    assert.equal(del.headers.get("allow"), "GET, POST");
    await del.body?.cancel();
    const badVersion = await fetch(`${gw.url}/mcp`, {
      headers: {
        accept: "text/event-stream",
        authorization: `Bearer ${dev}`,
        "mcp-protocol-version": "1999-01-01",
      },
    });
    assert.equal(badVersion.status, 400);
    await badVersion.body?.cancel();
    // Four standing streams per principal and edge; a fifth is refused, not traded for one.
    const owner = await gw.token("content-streams", ["developer"]);
    const open = () =>
      fetch(`${gw.url}/mcp`, {
        headers: { accept: "text/event-stream", authorization: `Bearer ${owner}` },
      });
    const streams = [];
    for (let i = 0; i < 4; i++) {
      const ok = await open();
      assert.equal(ok.status, 200);
      assert.match(ok.headers.get("content-type") ?? "", /^text\/event-stream/);
      const reader = ok.body?.getReader();
      const first = await reader?.read();
      assert.match(
        new TextDecoder().decode(first?.value),
        /^: mcp-security-gateway standing stream/,
      );
      streams.push(reader);
    }
    const fifth = await open();
    assert.equal(fifth.status, 429);
    assert.equal(fifth.headers.get("retry-after"), "30");
    assert.match(JSON.stringify(await fifth.json()), /at most 4 standing streams/);
    await streams[0]?.cancel();
    // Its slot is free once the edge has seen it close.
    let again = await open();
    for (let i = 0; again.status === 429 && i < 50; i++) {
      await again.body?.cancel();
      await new Promise((r) => setTimeout(r, 100));
      again = await open();
    }
    assert.equal(again.status, 200);
    await again.body?.cancel();
    for (const r of streams.slice(1)) await r?.cancel();
  });
});
