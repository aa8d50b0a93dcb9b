import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { SignJWT } from "jose";
import { type Gateway, ROOT, runCli, startGateway } from "./harness.js";

/**
 * The MCP endpoint with real clients: the official SDK client over
 * Streamable HTTP and over stdio through `mcp-gateway mcp`, against a real
 * edge and runner (bubblewrap + seccomp), every call audited.
 */
let gw: Gateway;
let dev: string;
let viewer: string;
const ACCEPT = "application/json, text/event-stream";

before(async () => {
  gw = await startGateway();
  dev = await gw.token("mcp-alice", ["developer"]);
  viewer = await gw.token("mcp-victor", ["viewer"]);
});
after(async () => {
  await gw?.stop();
});

async function connect(token: string): Promise<Client> {
  const client = new Client({ name: "mcp-it", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

function structured<T = Record<string, unknown>>(r: unknown): T {
  const res = r as CallToolResult;
  assert.ok(res.structuredContent, `no structuredContent in ${JSON.stringify(res)}`);
  return res.structuredContent as T;
}

/** A raw JSON-RPC POST, as curl would send it. */
async function post(
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> | undefined }> {
  const res = await fetch(`${gw.url}/mcp`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: ACCEPT,
      "mcp-protocol-version": "2025-11-25",
      authorization: `Bearer ${dev}`,
      ...headers,
    },
    body,
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json };
}

/**
 * POSTs to /mcp declaring a 1 GiB body and sends until the edge answers and cuts the link (or
 * the gigabyte is sent): the HTTP status seen (0 if the cut came first) and the bytes written.
 */
function sendWithoutEnd(
  headers: Record<string, string>,
): Promise<{ status: number; sent: number }> {
  return new Promise((resolve) => {
    const req = http.request(`${gw.url}/mcp`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: ACCEPT,
        "content-length": String(1024 * 1024 * 1024),
        ...headers,
      },
    });
    let status = 0;
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve({ status, sent });
    };
    req.on("response", (res) => {
      status = res.statusCode ?? 0;
      res.resume();
    });
    req.on("error", finish);
    req.on("close", finish);
    const chunk = Buffer.alloc(64 * 1024, 120);
    const pump = () => {
      while (!done && sent < 1024 * 1024 * 1024) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
    };
    pump();
  });
}

const errorOf = (j: Record<string, unknown> | undefined) =>
  (j?.error ?? {}) as { code?: number; message?: string };

describe("MCP over Streamable HTTP (official SDK client)", () => {
  it("negotiates 2025-11-25 and lists only the tools the roles permit", async () => {
    const client = await connect(dev);
    try {
      assert.equal(client.getServerVersion()?.name, "mcp-security-gateway");
      const tools = (await client.listTools()).tools;
      const names = tools.map((t) => t.name).sort();
      assert.deepEqual(names, [
        "cancel_task",
        "delete_file",
        "get_task",
        "get_task_output",
        "list_directory",
        "read_file",
        "run_command",
        "start_command",
        "write_file",
      ]);
      const run = tools.find((t) => t.name === "run_command");
      assert.equal(run?.annotations?.readOnlyHint, false);
      assert.equal(run?.annotations?.destructiveHint, true);
      assert.ok(run?.outputSchema, "run_command has an outputSchema");
      const read = tools.find((t) => t.name === "read_file");
      assert.equal(read?.annotations?.readOnlyHint, true);
    } finally {
      await client.close();
    }
    const v = await connect(viewer);
    try {
      const names = (await v.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(names, ["get_task", "get_task_output", "list_directory", "read_file"]);
    } finally {
      await v.close();
    }
  });

  it("runs a command in the sandbox and returns structured output", async () => {
    const client = await connect(dev);
    try {
      const r = await client.callTool({
        name: "run_command",
        arguments: {
          command: "sh",
          args: ["-c", "echo hello from $(id -u); echo oops >&2; exit 3"],
        },
      });
      const s = structured<{
        status: string;
        exit_code: number;
        stdout: string;
        stderr: string;
        task_id: string;
      }>(r);
      assert.equal(s.status, "completed");
      assert.equal(s.exit_code, 3);
      assert.match(s.stdout, /^hello from \d+\n$/);
      assert.doesNotMatch(s.stdout, /from 0\n/, "the sandbox does not run as root");
      assert.equal(s.stderr, "oops\n");
      assert.match(s.task_id, /^task-/);
      // The task is the same one the RPC API sees.
      const t = structured<{ status: string; exit_code: number }>(
        await client.callTool({ name: "get_task", arguments: { task_id: s.task_id } }),
      );
      assert.equal(t.status, "completed");
      assert.equal(t.exit_code, 3);
      const out = structured<{ stdout: string; complete: boolean; next_seq: number }>(
        await client.callTool({ name: "get_task_output", arguments: { task_id: s.task_id } }),
      );
      assert.match(out.stdout, /hello from/);
      assert.equal(out.complete, true);
    } finally {
      await client.close();
    }
  });

  it("streams output as progress notifications while the command runs", async () => {
    const client = await connect(dev);
    try {
      const seen: Array<{ progress: number; message?: string | undefined; at: number }> = [];
      let resultAt = 0;
      const r = await client.callTool(
        {
          name: "run_command",
          arguments: { command: "sh", args: ["-c", "echo first; sleep 1; echo second"] },
        },
        undefined,
        {
          onprogress: (p) =>
            seen.push({ progress: p.progress, message: p.message, at: Date.now() }),
          resetTimeoutOnProgress: true,
        },
      );
      resultAt = Date.now();
      assert.equal(structured<{ stdout: string }>(r).stdout, "first\nsecond\n");
      const text = seen.map((s) => s.message ?? "").join("");
      assert.match(text, /task task-\S+ accepted/);
      assert.match(text, /first\n/);
      assert.match(text, /second\n/);
      const first = seen.find((s) => s.message?.includes("first"));
      assert.ok(first && first.at < resultAt, "output arrived before the result");
      for (let i = 1; i < seen.length; i++) {
        assert.ok((seen[i]?.progress ?? 0) > (seen[i - 1]?.progress ?? 0), "progress increases");
      }
    } finally {
      await client.close();
    }
  });

  it("cancelling the request (notifications/cancelled) cancels the task", async () => {
    const client = await connect(dev);
    try {
      const abort = new AbortController();
      let taskId = "";
      const call = client
        .callTool(
          { name: "run_command", arguments: { command: "sleep", args: ["30"] } },
          undefined,
          {
            signal: abort.signal,
            onprogress: (p) => {
              const m = /task (task-\S+) accepted/.exec(p.message ?? "");
              if (m?.[1]) {
                taskId = m[1];
                abort.abort("user pressed stop");
              }
            },
          },
        )
        .then(
          () => "resolved",
          () => "rejected",
        );
      assert.equal(await call, "rejected");
      assert.match(taskId, /^task-/);
      let task = { status: "", status_message: "" };
      for (let i = 0; i < 100 && task.status !== "cancelled"; i++) {
        task = structured<{ status: string; status_message: string }>(
          await client.callTool({ name: "get_task", arguments: { task_id: taskId } }),
        );
        if (task.status !== "cancelled") await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(task.status, "cancelled", task.status_message);
    } finally {
      await client.close();
    }
  });

  it("file tools write, read, list and delete workspace files", async () => {
    const client = await connect(dev);
    try {
      const w = structured<{ bytes_written: number }>(
        await client.callTool({
          name: "write_file",
          arguments: {
            path: "mcp/notes.txt",
            content: "hi from mcp\n",
            create_parents: true,
            workspace: "mcpws",
          },
        }),
      );
      assert.equal(w.bytes_written, 12);
      const bin = structured<{ bytes_written: number }>(
        await client.callTool({
          name: "write_file",
          arguments: {
            path: "mcp/blob.bin",
            content: Buffer.from([0xff, 0x00, 0xfe]).toString("base64"),
            encoding: "base64",
            workspace: "mcpws",
          },
        }),
      );
      assert.equal(bin.bytes_written, 3);
      const r = structured<{ content: string; encoding: string; size: number }>(
        await client.callTool({
          name: "read_file",
          arguments: { path: "mcp/notes.txt", workspace: "mcpws" },
        }),
      );
      assert.deepEqual([r.content, r.encoding, r.size], ["hi from mcp\n", "utf8", 12]);
      const b = structured<{ content: string; encoding: string }>(
        await client.callTool({
          name: "read_file",
          arguments: { path: "mcp/blob.bin", workspace: "mcpws" },
        }),
      );
      assert.deepEqual([b.encoding, b.content], ["base64", "/wD+"]);
      const ls = structured<{ entries: Array<{ name: string; type: string }> }>(
        await client.callTool({
          name: "list_directory",
          arguments: { path: "mcp", workspace: "mcpws" },
        }),
      );
      assert.deepEqual(ls.entries.map((e) => `${e.name}:${e.type}`).sort(), [
        "blob.bin:file",
        "notes.txt:file",
      ]);
      // The sandboxed command sees the same workspace.
      const cat = structured<{ stdout: string }>(
        await client.callTool({
          name: "run_command",
          arguments: { command: "cat", args: ["mcp/notes.txt"], workspace: "mcpws" },
        }),
      );
      assert.equal(cat.stdout, "hi from mcp\n");
      const d = structured<{ deleted: boolean }>(
        await client.callTool({
          name: "delete_file",
          arguments: { path: "mcp", recursive: true, workspace: "mcpws" },
        }),
      );
      assert.equal(d.deleted, true);
      const gone = (await client.callTool({
        name: "read_file",
        arguments: { path: "mcp/notes.txt", workspace: "mcpws" },
      })) as CallToolResult;
      assert.equal(gone.isError, true);
      assert.match(JSON.stringify(gone.content), /not_found/);
    } finally {
      await client.close();
    }
  });

  it("start_command runs detached; cancel_task stops it", async () => {
    const client = await connect(dev);
    try {
      const s = structured<{ task_id: string; status: string }>(
        await client.callTool({
          name: "start_command",
          arguments: { command: "sleep", args: ["30"] },
        }),
      );
      assert.match(s.task_id, /^task-/);
      const c = structured<{ status: string }>(
        await client.callTool({ name: "cancel_task", arguments: { task_id: s.task_id } }),
      );
      assert.ok(["cancelled", "queued", "running"].includes(c.status), JSON.stringify(c));
      let status = c.status;
      for (let i = 0; i < 100 && status !== "cancelled"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = structured<{ status: string }>(
          await client.callTool({ name: "get_task", arguments: { task_id: s.task_id } }),
        ).status;
      }
      assert.equal(status, "cancelled");
    } finally {
      await client.close();
    }
  });

  it("a policy denial is a tool error carrying the policy's reasons", async () => {
    const client = await connect(dev);
    try {
      const r = (await client.callTool({
        name: "run_command",
        arguments: { command: "sudo", args: ["id"] },
      })) as CallToolResult;
      assert.equal(r.isError, true);
      const text = JSON.stringify(r.content);
      assert.match(text, /permission denied: command \\"sudo\\" is denied/);
      assert.match(text, /privilege escalation \(sudo\) is not allowed/);
      // A viewer calling a tool it cannot see is refused by policy too.
      const v = await connect(viewer);
      try {
        const w = (await v.callTool({
          name: "write_file",
          arguments: { path: "x.txt", content: "x" },
        })) as CallToolResult;
        assert.equal(w.isError, true);
        assert.match(JSON.stringify(w.content), /do not allow the operation \\"write_file\\"/);
      } finally {
        await v.close();
      }
    } finally {
      await client.close();
    }
  });

  it("unknown tools and invalid arguments are -32602 naming the problem", async () => {
    const client = await connect(dev);
    try {
      await assert.rejects(
        client.callTool({ name: "format_disk", arguments: {} }),
        (e: Error & { code?: number }) =>
          e.code === -32602 && /unknown tool "format_disk"/.test(e.message),
      );
      await assert.rejects(
        client.callTool({ name: "run_command", arguments: { command: "ls", args: [1, 2] } }),
        (e: Error & { code?: number }) => e.code === -32602 && /args\.0/.test(e.message),
      );
      await assert.rejects(
        client.callTool({ name: "read_file", arguments: { path: "x", workspace: "../etc" } }),
        (e: Error & { code?: number }) => e.code === -32602 && /workspace/.test(e.message),
      );
    } finally {
      await client.close();
    }
  });
});

describe("MCP authorization (OAuth 2.1 resource server)", () => {
  function devKey() {
    const pem = readFileSync(join(gw.dataDir, "auth", "signing-key.pem"));
    const jwks = JSON.parse(readFileSync(join(gw.dataDir, "auth", "jwks.json"), "utf8")) as {
      keys: Array<{ kid: string }>;
    };
    return { key: createPrivateKey(pem), kid: jwks.keys[0]?.kid ?? "" };
  }
  const now = () => Math.floor(Date.now() / 1000);
  const init = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "t", version: "1" },
    },
  });

  it("serves protected-resource metadata (RFC 9728)", async () => {
    for (const path of [
      "/.well-known/oauth-protected-resource/mcp",
      "/.well-known/oauth-protected-resource",
    ]) {
      const res = await fetch(`${gw.url}${path}`);
      assert.equal(res.status, 200);
      const doc = (await res.json()) as Record<string, unknown>;
      assert.equal(doc.resource, `${gw.url}/mcp`);
      assert.deepEqual(doc.bearer_methods_supported, ["header"]);
      assert.ok(Array.isArray(doc.authorization_servers));
    }
  });

  it("refuses missing, forged, expired and wrong-audience tokens with 401 and resource_metadata", async () => {
    const { key, kid } = devKey();
    const signed = (aud: string, exp: number) =>
      new SignJWT({ roles: ["developer"] })
        .setProtectedHeader({ alg: "ES256", kid })
        .setSubject("mallory")
        .setIssuer("mcp-gateway-dev")
        .setAudience(aud)
        .setIssuedAt(now() - 10)
        .setExpirationTime(exp)
        .sign(key);
    const good = await signed("mcp-gateway", now() + 600);
    const [h, p, s] = good.split(".");
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p ?? "", "base64url").toString()), roles: ["admin"] })).toString("base64url")}.${s}`;
    const cases: Array<[string, string | undefined, RegExp]> = [
      ["no token", undefined, /authentication required/],
      ["forged", forged, /signature/],
      ["expired", await signed("mcp-gateway", now() - 120), /expired/],
      ["wrong audience", await signed("another-service", now() + 600), /audience/],
    ];
    for (const [name, token, reason] of cases) {
      const headers: Record<string, string> = { authorization: token ? `Bearer ${token}` : "" };
      const r = await post(init, headers);
      assert.equal(r.status, 401, name);
      const www = r.headers.get("www-authenticate") ?? "";
      assert.match(www, /^Bearer /, name);
      assert.match(
        www,
        new RegExp(`resource_metadata="${gw.url}/.well-known/oauth-protected-resource/mcp"`),
        name,
      );
      assert.match(errorOf(r.json).message ?? "", reason, name);
    }
    // The SDK client surfaces the 401 too.
    await assert.rejects(connect("not-a-token"), /not a well-formed JWT/);
  });

  it("refuses a foreign browser Origin with 403 (DNS rebinding)", async () => {
    const r = await post(init, { origin: "http://evil.example" });
    assert.equal(r.status, 403);
    assert.match(errorOf(r.json).message ?? "", /origin http:\/\/evil\.example is not allowed/);
  });
});

describe("MCP bad input", () => {
  it("malformed JSON is -32700 and the connection stays usable", async () => {
    const bad = await post("{not json");
    assert.equal(bad.status, 400);
    assert.equal(errorOf(bad.json).code, -32700);
    const ok = await post(JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list" }));
    assert.equal(ok.status, 200);
    assert.equal(ok.json?.id, 7);
  });

  it("malformed params are -32602 naming the field, never -32603 with a schema dump", async () => {
    const init = await post(
      JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "initialize",
        params: { protocolVersion: 5, capabilities: {}, clientInfo: { name: "t", version: "1" } },
      }),
    );
    const e = errorOf(init.json);
    assert.equal(e.code, -32602, JSON.stringify(init.json));
    assert.match(
      String(e.message),
      /invalid params of initialize: params\.protocolVersion: .*expected string/,
    );
    assert.doesNotMatch(String(e.message), /"code": "invalid_type"/);
    const call = await post(
      JSON.stringify({ jsonrpc: "2.0", id: 11, method: "tools/call", params: { name: 5 } }),
    );
    assert.equal(errorOf(call.json).code, -32602, JSON.stringify(call.json));
    assert.match(
      String(errorOf(call.json).message),
      /^invalid params of tools\/call: params\.name/,
    );
    const list = await post(
      JSON.stringify({ jsonrpc: "2.0", id: 10, method: "tools/list", params: { cursor: 5 } }),
    );
    assert.equal(errorOf(list.json).code, -32602, JSON.stringify(list.json));
    assert.match(String(errorOf(list.json).message), /params\.cursor/);
  });

  it("a tools/call answered on the edge's Node fast path equals the SDK's answer to it", async () => {
    // A single message takes the fast path; the same call in a one-element batch takes the SDK
    // transport and server. Success, tool error, unknown tool and invalid arguments must match.
    await post(
      JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "write_file", arguments: { path: "same.txt", content: "same" } },
      }),
    );
    /** "call" log lines of the gateway's own tools, by the door that answered. */
    const doors = () => {
      const n = { node: 0, sdk: 0 };
      for (const line of gw.edge.stdout().split("\n")) {
        if (!line.includes('"msg":"call"')) continue;
        const door = (JSON.parse(line) as { door?: string }).door;
        if (door === "node" || door === "sdk") n[door]++;
      }
      return n;
    };
    /** The counts once the edge's log has caught up (it is written asynchronously). */
    const settled = async () => {
      for (let last = doors(); ; ) {
        await new Promise((r) => setTimeout(r, 200));
        const now = doors();
        if (now.node === last.node && now.sdk === last.sdk) return now;
        last = now;
      }
    };
    const before = await settled();
    for (const params of [
      { name: "read_file", arguments: { path: "same.txt" } },
      { name: "read_file", arguments: { path: "missing.txt" } },
      { name: "format_disk", arguments: {} },
      { name: "run_command", arguments: { command: "ls", args: [1, 2] } },
      { name: "list_directory" },
    ]) {
      for (const id of [5, "req-5"]) {
        const call = { jsonrpc: "2.0", id, method: "tools/call", params };
        const single = await post(JSON.stringify(call));
        const batch = await post(JSON.stringify([call]));
        assert.equal(single.status, 200, params.name);
        assert.equal(single.headers.get("content-type"), "application/json");
        // The SDK answers a one-element batch with the bare response.
        const viaSdk = Array.isArray(batch.json) ? (batch.json as unknown[])[0] : batch.json;
        assert.ok(viaSdk, `${params.name}: the SDK path answered ${JSON.stringify(batch.json)}`);
        assert.deepEqual(single.json, viaSdk, params.name);
      }
    }
    // Each of the 6 calls that reached a tool was answered once by each door.
    assert.deepEqual(await settled(), { node: before.node + 6, sdk: before.sdk + 6 });
  });

  it("what the SDK refuses stays refused on the fast path: extra members, unsafe ids, a bad Host", async () => {
    const call = { jsonrpc: "2.0", method: "tools/call", params: { name: "list_directory" } };
    for (const bad of [
      { ...call, id: 1, extra: true },
      { ...call, id: 2 ** 60 },
      { ...call, id: 1.5 },
    ]) {
      const r = await post(JSON.stringify(bad));
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(errorOf(r.json).code, -32700);
    }
    const host = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${gw.url}/mcp`, {
        method: "POST",
        setHost: false,
        headers: {
          host: "user@evil.example",
          "content-type": "application/json",
          accept: ACCEPT,
          authorization: `Bearer ${dev}`,
        },
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end(JSON.stringify({ ...call, id: 1 }));
    });
    assert.equal(host.status, 400);
    assert.match(host.body, /Host header/);
  });

  it("a request refused before its body (no token) is not read to its end", async () => {
    const refused = await sendWithoutEnd({});
    assert.ok([0, 401].includes(refused.status), `status ${refused.status}`);
    assert.ok(refused.sent < 64 * 1024 * 1024, `the edge read ${refused.sent} bytes`);
  });

  it("a JSON value that is not JSON-RPC is refused with a JSON-RPC error", async () => {
    const r = await post(JSON.stringify({ hello: "world" }));
    assert.equal(r.status, 400);
    assert.ok([-32700, -32600].includes(errorOf(r.json).code ?? 0));
  });

  it("wrong Accept → 406, wrong Content-Type → 415, unsupported protocol version → 400", async () => {
    const list = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    assert.equal((await post(list, { accept: "application/json" })).status, 406);
    assert.equal((await post(list, { "content-type": "text/plain" })).status, 415);
    const v = await post(list, { "mcp-protocol-version": "1999-01-01" });
    assert.equal(v.status, 400);
    assert.match(errorOf(v.json).message ?? "", /protocol version/i);
  });

  it("an oversized body → 413; GET and DELETE → 405 (stateless endpoint)", async () => {
    const big = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: {
        name: "write_file",
        arguments: { path: "big", content: "x".repeat(5 * 1024 * 1024) },
      },
    });
    assert.equal((await post(big)).status, 413);
    // Without a declared length (chunked), the edge stops reading at the limit and says so.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${gw.url}/mcp`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: ACCEPT,
          authorization: `Bearer ${dev}`,
          "transfer-encoding": "chunked",
        },
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      const chunk = "x".repeat(64 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < 6 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    assert.equal(chunked.status, 413);
    assert.match(chunked.body, /request body exceeds/);
    // A client that declares 1 GiB and keeps sending gets the 413, then its connection is cut
    // once the edge has dropped as much again as the limit (it does not read the gigabyte).
    const endless = await sendWithoutEnd({ authorization: `Bearer ${dev}` });
    // (The cut may reach the client before it has read the 413: a reset drops unread data.)
    assert.ok([0, 413].includes(endless.status), `status ${endless.status}`);
    assert.ok(endless.sent < 64 * 1024 * 1024, `the edge read ${endless.sent} bytes`);
    for (const method of ["GET", "DELETE"]) {
      const res = await fetch(`${gw.url}/mcp`, {
        method,
        headers: { accept: ACCEPT, authorization: `Bearer ${dev}` },
      });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.get("allow"), "POST");
    }
  });
});

describe("MCP through the stdio bridge (mcp-gateway mcp)", () => {
  it("lists tools, runs a command with progress, and reports denials", async () => {
    const client = new Client({ name: "mcp-it-stdio", version: "1.0.0" });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [join(ROOT, "cli", "bin", "mcp-gateway.js"), "mcp", "--url", gw.url, "--token", dev],
      stderr: "pipe",
    });
    await client.connect(transport);
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(names.includes("run_command"));
      const messages: string[] = [];
      const r = await client.callTool(
        { name: "run_command", arguments: { command: "echo", args: ["via stdio"] } },
        undefined,
        { onprogress: (p) => messages.push(p.message ?? "") },
      );
      assert.equal(structured<{ stdout: string }>(r).stdout, "via stdio\n");
      assert.match(messages.join(""), /via stdio/);
      const denied = (await client.callTool({
        name: "run_command",
        arguments: { command: "sudo", args: ["id"] },
      })) as CallToolResult;
      assert.equal(denied.isError, true);
      assert.match(JSON.stringify(denied.content), /sudo/);
    } finally {
      await client.close();
    }
  });

  it("a bridge with a bad token answers requests with an error instead of hanging", async () => {
    const client = new Client({ name: "mcp-it-stdio", version: "1.0.0" });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [join(ROOT, "cli", "bin", "mcp-gateway.js"), "mcp", "--url", gw.url, "--token", "bad"],
      stderr: "pipe",
    });
    await assert.rejects(client.connect(transport), /401|bridge|Unauthorized/i);
    await client.close();
  });
});

describe("MCP calls in the audit chain", () => {
  it("records each tool call with interface mcp and the tool name; the chain verifies", async () => {
    const env = { MCP_GATEWAY_DATA_DIR: gw.dataDir };
    const exported = await runCli(["audit", "export", "--format", "jsonl"], env);
    assert.equal(exported.code, 0, exported.stderr);
    const records = exported.stdout
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            operation: string;
            decision: string;
            details?: { protocol?: string; tool?: string };
          },
      );
    const mcp = records.filter((r) => r.details?.protocol === "mcp");
    const tools = new Set(mcp.map((r) => r.details?.tool));
    for (const t of [
      "tools/list",
      "run_command",
      "get_task",
      "write_file",
      "read_file",
      "delete_file",
      "cancel_task",
    ]) {
      assert.ok(tools.has(t), `audit has an mcp record for ${t}`);
    }
    assert.ok(
      mcp.some((r) => r.decision === "deny" && r.details?.tool === "run_command"),
      "the denial is audited",
    );
    const verify = await runCli(["audit", "verify"], env);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /audit chain intact/);
  });
});
