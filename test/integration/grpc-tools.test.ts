import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { RunnerService } from "@mcp-gateway/proto/runner/v1";
import {
  connectJson,
  type Gateway,
  type Proc,
  ROOT,
  runCli,
  startGateway,
  startProc,
} from "./harness.js";
import {
  eventually,
  grpcTools,
  healthProbe,
  PROBE_SERVING,
  PROBE_UNHEALTHY,
  runTool,
  type ToolRun,
} from "./helpers/grpc-tools.js";

/**
 * A gRPC user's tools against real edge processes: grpcurl (server
 * reflection, the README's calls), grpc-health-probe (grpc.health.v1.Health)
 * and @grpc/grpc-js, gRPC-Web and Connect clients calling procedures the edge
 * does not serve.
 */
let gw: Gateway;
let token: string;
let addr: string;
let grpcurl: string;
let configDir: string;

/** The README's lines that start with `grpcurl` or `grpc-health-probe`. */
const README_LINES = readFileSync(join(ROOT, "README.md"), "utf8")
  .split("\n")
  .filter((l) => /^(grpcurl|grpc-health-probe) /.test(l));

function readmeLine(pattern: RegExp): string {
  const line = README_LINES.find((l) => pattern.test(l));
  assert.ok(line, `README.md has no grpcurl line matching ${pattern}`);
  return line;
}

/**
 * Runs a README line verbatim through bash, with the tools on PATH and $TOKEN
 * set; only the address (localhost:8081 → the test edge's port) and the
 * placeholder task id change.
 */
async function runReadme(line: string, vars: { taskId?: string } = {}): Promise<ToolRun> {
  let command = line.replaceAll("localhost:8081", addr);
  if (vars.taskId) command = command.replaceAll("task-…", vars.taskId);
  return runTool("bash", ["-c", command], {
    TOKEN: token,
    PATH: `${dirname(grpcurl)}:${process.env.PATH ?? ""}`,
  });
}

/** Starts an edge without runners, own data dir, with `config` (JSON) as its config file. */
async function startLoneEdge(
  config: Record<string, unknown>,
): Promise<{ proc: Proc; addr: string; token: () => Promise<string>; stop: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), "mcp-grpc-edge-"));
  const file = join(dataDir, "edge.json");
  writeFileSync(file, JSON.stringify(config));
  const env = { MCP_GATEWAY_DATA_DIR: dataDir };
  const { proc, match } = await startProc(
    ["edge", "--port", "0", "--config", file],
    /edge listening on http:\/\/127\.0\.0\.1:(\d+)/,
    env,
  );
  return {
    proc,
    addr: `localhost:${match[1]}`,
    async token() {
      const r = await runCli(["token", "--sub", "ops", "--roles", "developer", "--ttl", "1h"], env);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    },
    async stop() {
      await proc.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A unary call of `path` with @grpc/grpc-js (empty message); resolves to the status it ended with. */
function grpcJsCall(path: string, bearer?: string): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (bearer) md.set("authorization", `Bearer ${bearer}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      md,
      (err) => {
        client.close();
        resolve(err);
      },
    );
  });
}

before(async () => {
  grpcurl = (await grpcTools()).grpcurl;
  configDir = mkdtempSync(join(tmpdir(), "mcp-grpc-cfg-"));
  const config = join(configDir, "edge.json");
  // Long enough to probe the draining edge while a task keeps it draining.
  writeFileSync(config, JSON.stringify({ drainTimeoutMs: 8000 }));
  gw = await startGateway({ edgeArgs: ["--config", config] });
  addr = `localhost:${new URL(gw.url).port}`;
  token = await gw.token("alice", ["developer"]);
});
after(async () => {
  await gw?.stop();
  rmSync(configDir, { recursive: true, force: true });
});

describe("server reflection with grpcurl", () => {
  it("`list` shows the public services and never an internal one, with or without a token", async () => {
    const plain = await runReadme(readmeLine(/ list$/));
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(plain.stdout.trim().split("\n"), [
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "mcp.McpService",
    ]);
    const withToken = await runTool(grpcurl, [
      "-plaintext",
      "-H",
      `authorization: Bearer ${token}`,
      addr,
      "list",
    ]);
    assert.equal(withToken.stdout, plain.stdout);
    assert.doesNotMatch(plain.stdout, /runner|registry/i);
  });

  it("`describe mcp.McpService` shows every method without .proto files", async () => {
    const r = await runReadme(readmeLine(/ describe mcp\.McpService$/));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /mcp\.McpService is a service:/);
    for (const m of [
      "Health",
      "ExecuteCommand",
      "GetTaskStatus",
      "StreamTaskOutput",
      "CancelTask",
      "ReadFile",
      "WriteFile",
      "DeleteFile",
      "ListDirectory",
      "ListAuditEvents",
    ]) {
      assert.match(r.stdout, new RegExp(`rpc ${m} \\(`), m);
    }
    const msg = await runTool(grpcurl, [
      "-plaintext",
      addr,
      "describe",
      "mcp.ExecuteCommandRequest",
    ]);
    assert.equal(msg.code, 0, msg.stderr);
    assert.match(msg.stdout, /uint32 timeout = /);
  });

  it("internal services cannot be described", async () => {
    const r = await runTool(grpcurl, ["-plaintext", addr, "describe", RunnerService.typeName]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not found/i);
  });

  it("the README's ExecuteCommand and GetTaskStatus work verbatim (with the auth header)", async () => {
    const exec = await runReadme(readmeLine(/mcp\.McpService\/ExecuteCommand$/));
    assert.equal(exec.code, 0, exec.stderr);
    const accepted = JSON.parse(exec.stdout) as { taskId: string; status: string };
    assert.match(accepted.taskId, /^task-[0-9a-f-]{36}$/);
    const statusLine = readmeLine(/mcp\.McpService\/GetTaskStatus$/);
    assert.match(statusLine, /"task_id": "task-…"/);
    const task = await eventually("task completed", async () => {
      const r = await runReadme(statusLine, { taskId: accepted.taskId });
      assert.equal(r.code, 0, r.stderr);
      const t = (JSON.parse(r.stdout) as { task: Record<string, unknown> }).task;
      return t.status === "TASK_STATUS_COMPLETED" ? t : undefined;
    });
    assert.equal((task.result as Record<string, unknown>).stdout, "hello world\n");
  });

  it("calls still need a token: grpcurl without one gets Unauthenticated", async () => {
    const r = await runTool(grpcurl, [
      "-plaintext",
      "-d",
      '{"task_id": "task-x"}',
      addr,
      "mcp.McpService/GetTaskStatus",
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Code: Unauthenticated/);
  });
});

describe("unknown services and methods", () => {
  it("@grpc/grpc-js gets UNIMPLEMENTED for an unknown method and an unknown (or internal) service", async () => {
    for (const [path, message] of [
      ["/mcp.McpService/Nope", "unknown method Nope for service mcp.McpService"],
      ["/no.Such/Service", "unknown service no.Such"],
      ["/mcp.runner.v1.RunnerService/Info", "unknown service mcp.runner.v1.RunnerService"],
    ] as const) {
      const err = await grpcJsCall(path, token);
      assert.equal(err?.code, grpc.status.UNIMPLEMENTED, `${path}: ${err?.message}`);
      assert.equal(err.details, message);
    }
    // Other services need no token to learn they are not served ...
    assert.equal((await grpcJsCall("/no.Such/Service"))?.code, grpc.status.UNIMPLEMENTED);
    // ... but mcp.McpService authenticates before anything else, unknown methods included.
    assert.equal((await grpcJsCall("/mcp.McpService/Nope"))?.code, grpc.status.UNAUTHENTICATED);
  });

  it("grpcurl gets Unimplemented for a service the port does not serve", async () => {
    const r = await runTool(grpcurl, [
      "-plaintext",
      "-use-reflection=false",
      "-import-path",
      join(ROOT, "proto"),
      "-proto",
      "mcp/runner/v1/runner.proto",
      "-d",
      "{}",
      addr,
      "mcp.runner.v1.RunnerService/Info",
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Code: Unimplemented/);
  });

  it("gRPC-Web: grpc-status 12 in the trailer frame, for raw fetch and the Connect gRPC-Web client", async () => {
    const res = await fetch(`${gw.url}/mcp.McpService/Nope`, {
      method: "POST",
      headers: {
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        authorization: `Bearer ${token}`,
      },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/grpc-web+proto");
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(body[0], 0x80, "a trailer frame");
    const trailer = new TextDecoder().decode(body.subarray(5));
    assert.match(trailer, /^grpc-status: 12\r$/m);
    const client = createClient(
      RunnerService,
      createGrpcWebTransport({ baseUrl: gw.url, httpVersion: "1.1" }),
    );
    await assert.rejects(
      client.info({}),
      (err: unknown) => ConnectError.from(err).code === Code.Unimplemented,
    );
  });

  it("Connect: HTTP 501 with code unimplemented, for curl-style JSON and the Connect client", async () => {
    const res = await connectJson(gw.url, "Nope", {}, token);
    assert.equal(res.status, 501);
    assert.deepEqual(res.body, {
      code: "unimplemented",
      message: "unknown method Nope for service mcp.McpService",
    });
    const client = createClient(
      RunnerService,
      createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" }),
    );
    await assert.rejects(
      client.info({}),
      (err: unknown) => ConnectError.from(err).code === Code.Unimplemented,
    );
  });

  it("plain HTTP paths keep their 404", async () => {
    for (const [method, path] of [
      ["GET", "/nope"],
      ["POST", "/health/ready"],
      ["GET", "/no.Such/Method"],
    ] as const) {
      const res = await fetch(`${gw.url}${path}`, {
        method,
        ...(method === "POST"
          ? { headers: { "content-type": "application/json" }, body: "{}" }
          : {}),
      });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(((await res.json()) as { code: string }).code, "not_found");
    }
  });

  it("a wrong content type on a gRPC path gets 415 Unsupported Media Type (HTTP/2 and HTTP/1.1)", async () => {
    const session = http2.connect(gw.url);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": "/mcp.McpService/ExecuteCommand",
          "content-type": "text/plain",
          authorization: `Bearer ${token}`,
        });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", reject);
        req.end("{}");
      });
      assert.equal(status, 415);
    } finally {
      session.close();
    }
    const h1 = await fetch(`${gw.url}/mcp.McpService/ExecuteCommand`, {
      method: "POST",
      headers: { "content-type": "text/plain", authorization: `Bearer ${token}` },
      body: "{}",
    });
    assert.equal(h1.status, 415);
  });
});

describe("reflection switch (grpcReflection)", () => {
  it("off: reflection is UNIMPLEMENTED, health still answers", async () => {
    const edge = await startLoneEdge({ grpcReflection: "off" });
    try {
      const r = await runTool(grpcurl, ["-plaintext", edge.addr, "list"]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /does not support the reflection API|Unimplemented/i);
      // No runner: the same NOT_SERVING /health/ready reports, but health is there.
      const probe = await healthProbe(edge.addr);
      assert.equal(probe.code, PROBE_UNHEALTHY, probe.stderr + probe.stdout);
    } finally {
      await edge.stop();
    }
  });

  it("authenticated: reflection needs a token (Unauthenticated without one), health does not", async () => {
    const edge = await startLoneEdge({ grpcReflection: "authenticated" });
    try {
      const anonymous = await runTool(grpcurl, ["-plaintext", edge.addr, "list"]);
      assert.notEqual(anonymous.code, 0);
      assert.match(anonymous.stderr, /Unauthenticated/);
      const t = await edge.token();
      const authed = await runTool(grpcurl, [
        "-plaintext",
        "-H",
        `authorization: Bearer ${t}`,
        edge.addr,
        "list",
      ]);
      assert.equal(authed.code, 0, authed.stderr);
      assert.match(authed.stdout, /^mcp\.McpService$/m);
      const probe = await healthProbe(edge.addr);
      assert.equal(
        probe.code,
        PROBE_UNHEALTHY,
        "answers (NOT_SERVING: no runner), no token needed",
      );
      assert.match(probe.stderr + probe.stdout, /NOT_SERVING/);
    } finally {
      await edge.stop();
    }
  });
});

describe("grpc.health.v1.Health with grpc-health-probe", () => {
  it("a serving edge is SERVING, as a whole and for mcp.McpService, like /health/ready", async () => {
    const ready = await fetch(`${gw.url}/health/ready`);
    assert.equal(ready.status, 200);
    const probe = await runReadme(readmeLine(/^grpc-health-probe /));
    assert.equal(probe.code, PROBE_SERVING, probe.stderr + probe.stdout);
    assert.match(probe.stdout + probe.stderr, /status: SERVING/);
    const service = await healthProbe(addr, "mcp.McpService");
    assert.equal(service.code, PROBE_SERVING, service.stderr);
    const unknown = await healthProbe(addr, "mcp.runner.v1.RunnerService");
    assert.notEqual(unknown.code, PROBE_SERVING);
    assert.match(unknown.stderr + unknown.stdout, /NotFound/);
  });

  it("Watch reports NOT_SERVING once the edge drains; grpc-health-probe and /health/ready agree", async () => {
    // A running task keeps the edge draining (drainTimeoutMs 8 s) after SIGTERM.
    const res = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "sleep", args: ["30"], timeout: 60 },
      token,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await eventually("task running", async () => {
      const r = await connectJson(gw.url, "GetTaskStatus", { taskId: res.body.taskId }, token);
      const status = (r.body.task as { status?: string } | undefined)?.status;
      assert.ok(status === "TASK_STATUS_QUEUED" || status === "TASK_STATUS_RUNNING", status);
      return status === "TASK_STATUS_RUNNING" ? true : undefined;
    });
    const watch = runTool(grpcurl, [
      "-plaintext",
      "-max-time",
      "4",
      "-d",
      '{"service": "mcp.McpService"}',
      addr,
      "grpc.health.v1.Health/Watch",
    ]);
    await new Promise((r) => setTimeout(r, 1000));
    gw.edge.child.kill("SIGTERM");
    const probe = await eventually("probe NOT_SERVING", async () => {
      const p = await healthProbe(addr);
      return p.code === PROBE_SERVING ? undefined : p;
    });
    assert.equal(probe.code, PROBE_UNHEALTHY, probe.stderr + probe.stdout);
    assert.match(probe.stderr + probe.stdout, /NOT_SERVING/);
    const ready = await fetch(`${gw.url}/health/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(((await ready.json()) as { problems: string[] }).problems, ["draining"]);
    const watched = await watch;
    const statuses = [...watched.stdout.matchAll(/"status": "(\w+)"/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ["SERVING", "NOT_SERVING"], watched.stdout + watched.stderr);
  });
});
