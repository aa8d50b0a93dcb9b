import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createMcpClient } from "@mcp-gateway/client";
import {
  ExecuteCommandRequestSchema,
  type ExecuteCommandResponseSchema,
  GetTaskStatusRequestSchema,
  type GetTaskStatusResponseSchema,
  HealthRequestSchema,
  type HealthResponseSchema,
  OutputKind,
  StreamTaskOutputRequestSchema,
  type StreamTaskOutputResponseSchema,
  TaskStatus,
} from "@mcp-gateway/proto/mcp";
import { createGrpcJsClient, serverStream, unary } from "./grpc-js-client.js";
import { connectJson, type Gateway, startGateway, waitForTask } from "./harness.js";

let gw: Gateway;
let token: string;

before(async () => {
  gw = await startGateway();
  token = await gw.token("alice", ["developer"]);
});
after(async () => {
  await gw?.stop();
});

describe("Connect JSON (curl-style)", () => {
  it("runs the README's echo example end to end through the sandbox", async () => {
    const res = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "echo", args: ["hello world"], timeout: 30 },
      token,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const taskId = String(res.body.taskId);
    assert.match(taskId, /^task-[0-9a-f-]{36}$/);
    assert.ok(["TASK_STATUS_QUEUED", "TASK_STATUS_RUNNING"].includes(String(res.body.status)));
    assert.ok(res.body.createdAt);
    const task = await waitForTask(gw.url, token, taskId);
    assert.equal(task.status, "TASK_STATUS_COMPLETED", JSON.stringify(task));
    const result = task.result as Record<string, unknown>;
    assert.equal(result.stdout, "hello world\n");
    assert.equal(result.exitCode ?? 0, 0);
    assert.equal(task.owner, "alice");
  });

  it("reports a non-zero exit code and stderr", async () => {
    const res = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "sh", args: ["-c", "echo oops >&2; exit 3"] },
      token,
    );
    const task = await waitForTask(gw.url, token, String(res.body.taskId));
    const result = task.result as Record<string, unknown>;
    assert.equal(task.status, "TASK_STATUS_COMPLETED");
    assert.equal(result.exitCode, 3);
    assert.equal(result.stderr, "oops\n");
  });

  it("serves /health with status, version and uptime, and /metrics", async () => {
    const h = await fetch(`${gw.url}/health`);
    assert.equal(h.status, 200);
    const body = (await h.json()) as Record<string, unknown>;
    assert.equal(body.status, "ok");
    assert.equal(typeof body.version, "string");
    assert.equal(typeof body.uptime_seconds, "number");
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(m, /mcp_api_requests_total\{method="ExecuteCommand",protocol="connect",code="OK"/);
    assert.match(m, /mcp_policy_decisions_total/);
  });
});

describe("native gRPC (@grpc/grpc-js over h2c)", () => {
  let client: grpc.Client;
  before(() => {
    client = createGrpcJsClient(new URL(gw.url).host);
  });
  after(() => client.close());

  it("answers Health without credentials", async () => {
    const h = await unary<typeof HealthRequestSchema, typeof HealthResponseSchema>(
      client,
      "health",
      HealthRequestSchema,
      {},
      undefined,
    );
    assert.equal(h.status, "ok");
  });

  it("executes, streams the output with an EXIT chunk, and reports status", async () => {
    const res = await unary<
      typeof ExecuteCommandRequestSchema,
      typeof ExecuteCommandResponseSchema
    >(
      client,
      "executeCommand",
      ExecuteCommandRequestSchema,
      { command: "sh", args: ["-c", "echo one; echo two >&2; echo three"] },
      token,
    );
    const chunks = await serverStream<
      typeof StreamTaskOutputRequestSchema,
      typeof StreamTaskOutputResponseSchema
    >(client, "streamTaskOutput", StreamTaskOutputRequestSchema, { taskId: res.taskId }, token);
    const stdout = chunks
      .filter((c) => c.kind === OutputKind.STDOUT)
      .map((c) => Buffer.from(c.data).toString())
      .join("");
    const stderr = chunks
      .filter((c) => c.kind === OutputKind.STDERR)
      .map((c) => Buffer.from(c.data).toString())
      .join("");
    assert.equal(stdout, "one\nthree\n");
    assert.equal(stderr, "two\n");
    const last = chunks.at(-1);
    assert.equal(last?.kind, OutputKind.EXIT);
    assert.equal(last?.status, TaskStatus.COMPLETED);
    const st = await unary<typeof GetTaskStatusRequestSchema, typeof GetTaskStatusResponseSchema>(
      client,
      "getTaskStatus",
      GetTaskStatusRequestSchema,
      { taskId: res.taskId },
      token,
    );
    assert.equal(st.task?.status, TaskStatus.COMPLETED);
  });

  it("rejects a call without a token with UNAUTHENTICATED", async () => {
    await assert.rejects(
      unary(client, "executeCommand", ExecuteCommandRequestSchema, { command: "true" }, undefined),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED,
    );
  });

  it("maps a policy denial to PERMISSION_DENIED with the policy's reason", async () => {
    await assert.rejects(
      unary(
        client,
        "executeCommand",
        ExecuteCommandRequestSchema,
        { command: "sudo", args: ["id"] },
        token,
      ),
      (err: grpc.ServiceError) =>
        err.code === grpc.status.PERMISSION_DENIED && /sudo/i.test(err.details),
    );
  });
});

describe("gRPC-Web and Connect transports from the client library", () => {
  for (const protocol of ["grpc-web", "connect", "grpc"] as const) {
    it(`${protocol}: streams output and cancels a long task`, async () => {
      const client = createMcpClient({ baseUrl: gw.url, protocol, token });
      const { taskId } = await client.executeCommand({
        command: "sh",
        args: ["-c", "echo started; sleep 30"],
        timeout: 60,
      });
      const seen: string[] = [];
      const stream = client.streamTaskOutput({ taskId });
      let exit: { status: TaskStatus } | undefined;
      for await (const chunk of stream) {
        if (chunk.kind === OutputKind.STDOUT) {
          seen.push(Buffer.from(chunk.data).toString());
          const c = await client.cancelTask({ taskId });
          assert.equal(c.taskId, taskId);
        }
        if (chunk.kind === OutputKind.EXIT) exit = { status: chunk.status };
      }
      assert.deepEqual(seen, ["started\n"]);
      assert.equal(exit?.status, TaskStatus.CANCELLED);
      const { task } = await client.getTaskStatus({ taskId });
      assert.equal(task?.status, TaskStatus.CANCELLED);
    });
  }
});

describe('the fetch path on Node (rpcPath "fetch", ADR 0007)', () => {
  // The default serves Connect and gRPC-Web through the Node adapter; this edge serves them
  // through app.fetch as a fetch runtime would, end to end with a real runner.
  let fetchGw: Gateway;
  let fetchToken: string;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "mcp-fetch-path-"));
    const file = join(dir, "edge.json");
    writeFileSync(file, JSON.stringify({ rpcPath: "fetch" }));
    fetchGw = await startGateway({ edgeArgs: ["--config", file] });
    fetchToken = await fetchGw.token("alice", ["developer"]);
  });
  after(async () => {
    await fetchGw?.stop();
  });

  it("Connect JSON unary through app.fetch", async () => {
    const res = await connectJson(
      fetchGw.url,
      "ExecuteCommand",
      { command: "echo", args: ["via fetch"], timeout: 30 },
      fetchToken,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const task = await waitForTask(fetchGw.url, fetchToken, String(res.body.taskId));
    assert.equal((task.result as Record<string, unknown>).stdout, "via fetch\n");
  });

  for (const protocol of ["grpc-web", "connect"] as const) {
    it(`${protocol} streaming through app.fetch`, async () => {
      const client = createMcpClient({ baseUrl: fetchGw.url, protocol, token: fetchToken });
      const { taskId } = await client.executeCommand({ command: "echo", args: ["streamed"] });
      let out = "";
      let exit: TaskStatus | undefined;
      for await (const chunk of client.streamTaskOutput({ taskId })) {
        if (chunk.kind === OutputKind.STDOUT) out += Buffer.from(chunk.data).toString();
        if (chunk.kind === OutputKind.EXIT) exit = chunk.status;
      }
      assert.equal(out, "streamed\n");
      assert.equal(exit, TaskStatus.COMPLETED);
    });
  }
});
