import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { createMcpClient } from "@mcp-gateway/client";
import { ExecuteCommandRequestSchema } from "@mcp-gateway/proto/mcp";
import { createGrpcJsClient, unary } from "./grpc-js-client.js";
import { connectJson, type Gateway, startGateway, waitForTask } from "./harness.js";

let gw: Gateway;
const ORIGIN = "http://console.example.test";

before(async () => {
  const config = join(tmpdir(), `mcp-limits-${process.pid}.json`);
  writeFileSync(
    config,
    JSON.stringify({ rateLimit: { ratePerSecond: 0.2, burst: 3 }, corsOrigins: [ORIGIN] }),
  );
  gw = await startGateway({ edgeArgs: ["--config", config] });
});
after(async () => {
  await gw?.stop();
});

describe("rate limit per principal", () => {
  it("Connect JSON: the call past the burst gets 429 resource_exhausted with retry-after", async () => {
    const token = await gw.token("rita", ["developer"]);
    const codes: number[] = [];
    let last: Awaited<ReturnType<typeof connectJson>> | undefined;
    for (let i = 0; i < 4; i++) {
      last = await connectJson(gw.url, "ListDirectory", { path: "" }, token);
      codes.push(last.status);
    }
    assert.deepEqual(codes, [200, 200, 200, 429]);
    assert.equal(last?.body.code, "resource_exhausted");
    assert.match(String(last?.body.message), /rate limit exceeded for rita/);
    assert.ok(Number(last?.headers.get("retry-after")) >= 1);
    // Another principal has its own bucket.
    const other = await connectJson(
      gw.url,
      "ListDirectory",
      { path: "" },
      await gw.token("sam", ["developer"]),
    );
    assert.equal(other.status, 200);
  });

  it("native gRPC: RESOURCE_EXHAUSTED", async () => {
    const token = await gw.token("greta", ["developer"]);
    const client = createGrpcJsClient(new URL(gw.url).host);
    try {
      const results: string[] = [];
      for (let i = 0; i < 4; i++) {
        await unary(
          client,
          "executeCommand",
          ExecuteCommandRequestSchema,
          { command: "true" },
          token,
        ).then(
          () => results.push("ok"),
          (err: grpc.ServiceError) => results.push(String(err.code)),
        );
      }
      assert.deepEqual(results, ["ok", "ok", "ok", String(grpc.status.RESOURCE_EXHAUSTED)]);
    } finally {
      client.close();
    }
  });
});

describe("CORS for browser apps", () => {
  const preflight = (origin: string) =>
    fetch(`${gw.url}/mcp.McpService/ExecuteCommand`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,authorization,x-grpc-web,x-user-agent",
      },
    });

  it("answers a preflight from an allowed origin with exactly the headers gRPC-Web and Connect need", async () => {
    const res = await preflight(ORIGIN);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), ORIGIN);
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").split(/,\s*/);
    for (const h of ["content-type", "authorization", "x-grpc-web", "connect-protocol-version"])
      assert.ok(allowed.includes(h), h);
    assert.equal(res.headers.get("access-control-allow-methods"), "POST, GET");
  });

  it("gives other origins no CORS headers", async () => {
    const res = await preflight("http://evil.example.test");
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("access-control-allow-origin"), null);
    const post = await fetch(`${gw.url}/health`, {
      headers: { origin: "http://evil.example.test" },
    });
    assert.equal(post.headers.get("access-control-allow-origin"), null);
  });

  it("exposes grpc-status and www-authenticate to an allowed origin", async () => {
    const res = await fetch(`${gw.url}/mcp.McpService/ExecuteCommand`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("access-control-allow-origin"), ORIGIN);
    assert.match(res.headers.get("access-control-expose-headers") ?? "", /www-authenticate/);
  });
});

describe("policy over every protocol, obligations applied", () => {
  it("gRPC-Web: a denied command is PermissionDenied with the policy's reason", async () => {
    const client = createMcpClient({
      baseUrl: gw.url,
      protocol: "grpc-web",
      token: await gw.token("pat", ["developer"]),
    });
    await assert.rejects(
      client.executeCommand({ command: "mkfs.ext4", args: ["/dev/sda"] }),
      (err: unknown) => {
        const ce = ConnectError.from(err);
        return ce.code === Code.PermissionDenied && /mkfs/i.test(ce.rawMessage);
      },
    );
  });

  it("a request for 64 GiB of memory runs with the policy's cap (RLIMIT_AS)", async () => {
    const token = await gw.token("olga", ["developer"]);
    const r = await connectJson(
      gw.url,
      "ExecuteCommand",
      {
        command: "sh",
        args: ["-c", "ulimit -v"],
        sandbox: { limits: { memoryBytes: String(64 * 2 ** 30) } },
      },
      token,
    );
    const t = await waitForTask(gw.url, token, String(r.body.taskId));
    assert.equal(
      (t.result as Record<string, unknown>).stdout,
      `${512 * 1024}\n`,
      "512 MiB default cap, in KiB",
    );
  });

  it("a restricted tenant's command list and tighter limits apply", async () => {
    const token = await gw.token("rick", ["developer"], ["--tenant", "example-restricted"]);
    const denied = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "sh", args: ["-c", "id"] },
      token,
    );
    assert.equal(denied.body.code, "permission_denied");
    assert.match(String(denied.body.message), /"sh"|\bsh\b/);
    const r = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "cat", args: ["/proc/self/limits"] },
      token,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const t = await waitForTask(gw.url, token, String(r.body.taskId));
    const limits = String((t.result as Record<string, unknown>).stdout);
    assert.match(limits, /Max address space\s+268435456\s+268435456\s+bytes/);
    assert.match(limits, /Max core file size\s+0\s+0/);
  });
});
