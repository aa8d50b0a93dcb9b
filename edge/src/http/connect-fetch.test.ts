import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createContextKey,
  createContextValues,
  type Interceptor,
  type ServiceImpl,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  ExecuteCommandResponseSchema,
  HealthRequestSchema,
  HealthResponseSchema,
  McpService,
  OutputKind,
  StreamTaskOutputResponseSchema,
  TaskStatus,
} from "@mcp-gateway/proto/mcp";
import { Hono } from "hono";
import { isFetchServable, mountConnect } from "./connect-fetch.js";

const peerKey = createContextKey("", { description: "peer" });

/**
 * A Hono app with McpService (a stand-in implementation) mounted by {@link mountConnect}, an
 * interceptor that demands a bearer token except for Health, and a plain route beside them.
 * Nothing listens on a port: every call goes through `app.fetch`.
 */
function setup() {
  const seen: Array<{ procedure: string; peer: string; protocolHeader: string | null }> = [];
  const auth: Interceptor = (next) => async (req) => {
    seen.push({
      procedure: req.method.name,
      peer: req.contextValues.get(peerKey),
      protocolHeader: req.header.get("content-type"),
    });
    if (req.method.name !== "Health" && req.header.get("authorization") !== "Bearer good") {
      throw new ConnectError("authentication required", Code.Unauthenticated);
    }
    return next(req);
  };
  const impl: Partial<ServiceImpl<typeof McpService>> = {
    health: () => create(HealthResponseSchema, { status: "ok", version: "test" }),
    executeCommand: (req) => {
      if (!req.command) throw new ConnectError("command is required", Code.InvalidArgument);
      return create(ExecuteCommandResponseSchema, {
        taskId: `task-${req.command}`,
        status: TaskStatus.QUEUED,
      });
    },
    async *streamTaskOutput() {
      for (const line of ["one\n", "two\n"]) {
        yield create(StreamTaskOutputResponseSchema, {
          kind: OutputKind.STDOUT,
          data: new TextEncoder().encode(line),
        });
      }
      yield create(StreamTaskOutputResponseSchema, {
        kind: OutputKind.EXIT,
        status: TaskStatus.COMPLETED,
      });
    },
  };
  const app = new Hono();
  app.get("/health/live", (c) => c.json({ status: "ok" }));
  const paths = mountConnect(
    app,
    { routes: (router) => router.service(McpService, impl), interceptors: [auth] },
    { contextValues: () => createContextValues().set(peerKey, "fetch-runtime") },
  );
  const fetch = async (input: string | URL | Request, init?: RequestInit) =>
    app.fetch(new Request(input, init));
  return { app, paths, seen, fetch };
}

function clients(fetch: typeof globalThis.fetch): Record<string, Transport> {
  const baseUrl = "http://edge.invalid";
  return {
    connect: createConnectTransport({ baseUrl, fetch }),
    "connect (binary)": createConnectTransport({ baseUrl, fetch, useBinaryFormat: true }),
    "grpc-web": createGrpcWebTransport({ baseUrl, fetch }),
  };
}

describe("mountConnect: Connect and gRPC-Web through app.fetch, no Node server", () => {
  it("serves a Connect JSON call as curl sends it", async () => {
    const { app, seen } = setup();
    const res = await app.fetch(
      new Request("http://edge.invalid/mcp.McpService/ExecuteCommand", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer good" },
        body: JSON.stringify({ command: "echo", args: ["hi"] }),
      }),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { taskId: "task-echo", status: "TASK_STATUS_QUEUED" });
    assert.deepEqual(seen, [
      { procedure: "ExecuteCommand", peer: "fetch-runtime", protocolHeader: "application/json" },
    ]);
  });

  it("maps errors to Connect JSON error bodies with their HTTP status", async () => {
    const { app } = setup();
    const unauthenticated = await app.fetch(
      new Request("http://edge.invalid/mcp.McpService/ExecuteCommand", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ command: "echo" }),
      }),
    );
    assert.equal(unauthenticated.status, 401);
    assert.deepEqual(await unauthenticated.json(), {
      code: "unauthenticated",
      message: "authentication required",
    });
    const invalid = await app.fetch(
      new Request("http://edge.invalid/mcp.McpService/ExecuteCommand", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer good" },
        body: "{}",
      }),
    );
    assert.equal(invalid.status, 400);
    assert.equal(((await invalid.json()) as { code: string }).code, "invalid_argument");
  });

  it("serves a gRPC-Web call from raw frames, trailers in the body", async () => {
    const { app } = setup();
    const message = toBinary(HealthRequestSchema, create(HealthRequestSchema, {}));
    const frame = new Uint8Array(5 + message.length);
    new DataView(frame.buffer).setUint32(1, message.length);
    frame.set(message, 5);
    const res = await app.fetch(
      new Request("http://edge.invalid/mcp.McpService/Health", {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        body: frame,
      }),
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/grpc-web+proto");
    const body = new Uint8Array(await res.arrayBuffer());
    const view = new DataView(body.buffer, body.byteOffset);
    assert.equal(body[0], 0, "first frame: the message");
    const len = view.getUint32(1);
    const health = fromBinary(HealthResponseSchema, body.subarray(5, 5 + len));
    assert.equal(health.status, "ok");
    const trailer = body.subarray(5 + len);
    assert.equal(trailer[0], 0x80, "second frame: the trailers");
    assert.match(new TextDecoder().decode(trailer.subarray(5)), /grpc-status: ?0/);
  });

  for (const [name, transport] of Object.entries(clients(setup().fetch))) {
    it(`${name}: unary and server-streaming calls with the generated client`, async () => {
      const client = createClient(McpService, transport);
      const health = await client.health({});
      assert.equal(health.version, "test");
      const headers = { authorization: "Bearer good" };
      const started = await client.executeCommand({ command: "ls" }, { headers });
      assert.equal(started.taskId, "task-ls");
      const chunks: string[] = [];
      for await (const chunk of client.streamTaskOutput({ taskId: "task-ls" }, { headers })) {
        chunks.push(chunk.kind === OutputKind.EXIT ? "exit" : new TextDecoder().decode(chunk.data));
      }
      assert.deepEqual(chunks, ["one\n", "two\n", "exit"]);
      await assert.rejects(client.executeCommand({ command: "ls" }), (err: unknown) => {
        assert.equal(ConnectError.from(err).code, Code.Unauthenticated);
        return true;
      });
    });
  }

  it("answers native gRPC with 415 (it needs HTTP/2 trailers; the Node entry serves it)", async () => {
    const { app, paths } = setup();
    assert.ok(paths.has("/mcp.McpService/ExecuteCommand"));
    const res = await app.fetch(
      new Request("http://edge.invalid/mcp.McpService/Health", {
        method: "POST",
        headers: { "content-type": "application/grpc" },
        body: new Uint8Array(5),
      }),
    );
    assert.equal(res.status, 415);
    assert.equal(isFetchServable("POST", "application/grpc+proto"), false);
    assert.equal(isFetchServable("POST", "application/grpc-web-text"), true);
    assert.equal(isFetchServable("POST", "application/connect+json"), true);
  });

  it("leaves other routes of the app alone", async () => {
    const { app } = setup();
    const res = await app.fetch(new Request("http://edge.invalid/health/live"));
    assert.deepEqual(await res.json(), { status: "ok" });
  });
});
