import assert from "node:assert/strict";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GatewayError } from "@mcp-gateway/common/errors";
import { createLogger } from "@mcp-gateway/common/logger";
import { createTracing } from "@mcp-gateway/common/tracing";
import { TaskStatus } from "@mcp-gateway/proto/mcp";
import type { TaskEvent } from "@mcp-gateway/proto/runner/v1";
import { runnerConfigSchema } from "../config.js";
import { createSandbox, DEFAULT_SANDBOX_LIMITS } from "../sandbox/index.js";
import { createTaskManager } from "../task-manager.js";
import { createEgressStarter, type EgressRecord, startEgressProxy } from "./index.js";

const logger = createLogger({ name: "test", level: "silent" });
const tracer = createTracing({ serviceName: "test", instanceId: "t", logger }).tracer;
let dir: string;
let http: Server;
let port = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mcpg-egress-t-"));
  await chmod(dir, 0o755);
  if (process.getuid?.() === 0) await chown(dir, 65534, 65534);
  http = createServer((req, res) => res.end(`hi ${req.headers.host} ${req.url}\n`));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const a = http.address();
  port = typeof a === "object" && a !== null ? a.port : 0;
});
after(async () => {
  http.close();
  await rm(dir, { recursive: true, force: true });
});

/** Sends raw bytes to the proxy's socket and returns everything it answers. */
function ask(socketPath: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(socketPath);
    let out = "";
    s.on("data", (d) => {
      out += d.toString("latin1");
    });
    s.on("error", reject);
    s.on("close", () => resolve(out));
    s.write(data);
    s.end();
  });
}

describe("egress proxy", () => {
  it("admits listed names (own resolver), refuses others with 403 and the reason, and reports each attempt", async () => {
    const records: EgressRecord[] = [];
    const socketPath = join(dir, "p1.sock");
    const proxy = await startEgressProxy({
      socketPath,
      egress: { allow_hosts: ["ok.test", "rebind.test"], max_bytes: 1 << 20, max_connections: 4 },
      onConnection: (r) => records.push(r),
      resolve: async (h) => (h === "ok.test" ? ["198.51.100.7"] : ["127.0.0.1"]),
      dial: (address, p) =>
        address === "198.51.100.7" ? { host: "127.0.0.1", port } : { host: address, port: p },
    });
    try {
      const ok = await ask(
        socketPath,
        "GET http://ok.test/a?b=1 HTTP/1.1\r\nHost: ok.test\r\n\r\n",
      );
      assert.match(ok, /^HTTP\/1\.1 200/);
      assert.match(ok, /hi ok\.test \/a\?b=1/);
      const no = await ask(socketPath, "CONNECT other.test:443 HTTP/1.1\r\n\r\n");
      assert.match(no, /^HTTP\/1\.1 403 Forbidden/);
      assert.match(no, /denied: host other\.test port 443 is not in the egress allowlist/);
      const rebind = await ask(socketPath, "GET http://rebind.test/ HTTP/1.1\r\n\r\n");
      assert.match(rebind, /rebind\.test resolves to 127\.0\.0\.1 \(loopback\)/);
      // Origin form is decided by the Host header; a client's Host never differs from the target.
      const origin = await ask(socketPath, "GET /o HTTP/1.1\r\nHost: ok.test\r\n\r\n");
      assert.match(origin, /hi ok\.test \/o/);
      const fronted = await ask(
        socketPath,
        "GET http://ok.test/f HTTP/1.1\r\nHost: other.test\r\n\r\n",
      );
      assert.match(fronted, /hi ok\.test \/f/);
      const bad = await ask(socketPath, "GET /relative HTTP/1.1\r\n\r\n");
      assert.match(bad, /^HTTP\/1\.1 400/);
      const tls = await ask(socketPath, "GET https://ok.test/ HTTP/1.1\r\n\r\n");
      assert.match(tls, /scheme https: is not proxied/);
      // A host the resolver would read differently from the allowlist (cut at the NUL) is a 400.
      for (const host of ["1.2.3.4\0.ok.test", "ok.test\0", "a b.ok.test", "x/y.ok.test"]) {
        const odd = await ask(socketPath, `CONNECT ${host}:443 HTTP/1.1\r\n\r\n`);
        assert.match(odd, /^HTTP\/1\.1 400/, JSON.stringify(host));
      }
      assert.deepEqual(
        records.map((r) => [r.host, r.port, r.allowed, r.kind]),
        [
          ["ok.test", 80, true, "http"],
          ["other.test", 443, false, "connect"],
          ["rebind.test", 80, false, "http"],
          ["ok.test", 80, true, "http"],
          ["ok.test", 80, true, "http"],
        ],
      );
      assert.ok((records[0]?.bytesReceived ?? 0) > 0 && (records[0]?.bytesSent ?? 0) > 0);
      assert.equal(records[0]?.address, "198.51.100.7");
    } finally {
      await proxy.close();
    }
  });

  it("a socket path that cannot be listened on rejects (the task must not start)", async () => {
    await assert.rejects(
      startEgressProxy({
        socketPath: join(dir, "missing-dir", "p.sock"),
        egress: { allow_hosts: ["ok.test"], max_bytes: 1, max_connections: 1 },
        onConnection: () => {},
      }),
      /ENOENT|EACCES/,
    );
  });
});

describe("egress configuration", () => {
  it("the test-only resolver is refused unless MCP_GATEWAY_TESTING=1", () => {
    const input = { egress: { testResolver: { hosts: { "a.test": ["203.0.113.1"] } } } };
    const saved = process.env.MCP_GATEWAY_TESTING;
    try {
      delete process.env.MCP_GATEWAY_TESTING;
      const refused = runnerConfigSchema.safeParse(input);
      assert.equal(refused.success, false);
      assert.match(JSON.stringify(refused.error?.issues), /for tests only/);
      process.env.MCP_GATEWAY_TESTING = "1";
      assert.equal(runnerConfigSchema.safeParse(input).success, true);
      // Without it, the default config parses and has no resolver override.
      delete process.env.MCP_GATEWAY_TESTING;
      assert.equal(runnerConfigSchema.parse({}).egress.testResolver, undefined);
    } finally {
      if (saved === undefined) delete process.env.MCP_GATEWAY_TESTING;
      else process.env.MCP_GATEWAY_TESTING = saved;
    }
  });
});

async function events(tm: ReturnType<typeof createTaskManager>, id: string): Promise<TaskEvent[]> {
  const out: TaskEvent[] = [];
  for await (const e of tm.events(id, 0n, new AbortController().signal)) out.push(e);
  return out;
}

describe("restricted tasks in the task manager", () => {
  const restricted = {
    command: "bash",
    args: ["-c", "true"],
    env: {},
    cwd: "",
    workspaceDir: "",
    network: "restricted" as const,
    timeoutMs: 20_000,
    limits: DEFAULT_SANDBOX_LIMITS,
  };
  const egress = { allow_hosts: ["ok.test"], max_bytes: 1 << 20, max_connections: 4 };

  it("a proxy that cannot start refuses the task with failed_precondition; nothing runs", async () => {
    const tm = createTaskManager({
      sandbox: createSandbox({}),
      logger,
      maxConcurrent: 4,
      retentionMs: 60_000,
      maxRetainedBytes: 64 * 1024 * 1024,
      tracer,
      startEgress: async () => {
        throw new Error("EADDRINUSE");
      },
    });
    const id = "task-00000000-0000-4000-8000-0000000000e1";
    await assert.rejects(
      tm.start(id, { ...restricted, workspaceDir: dir }, undefined, egress),
      (err: unknown) =>
        err instanceof GatewayError &&
        err.code === "failed_precondition" &&
        /egress proxy could not start: EADDRINUSE/.test(err.message),
    );
    assert.equal(tm.has(id), false);
    // Without an obligation (or a starter) it is refused the same way.
    const bare = createTaskManager({
      sandbox: createSandbox({}),
      logger,
      maxConcurrent: 4,
      retentionMs: 60_000,
      maxRetainedBytes: 64 * 1024 * 1024,
      tracer,
    });
    await assert.rejects(
      bare.start(id, { ...restricted, workspaceDir: dir }, undefined, egress),
      /not available on this runner/,
    );
  });

  it("the proxy going away mid-task cuts the way out; the task still ends cleanly", async () => {
    process.env.MCP_GATEWAY_TESTING = "1";
    const starter = createEgressStarter({
      config: runnerConfigSchema.parse({
        egress: {
          testResolver: {
            hosts: { "ok.test": ["198.51.100.7"] },
            dial: { "198.51.100.7:80": `127.0.0.1:${port}` },
          },
        },
      }).egress,
      sandboxUid: 65534,
      sandboxGid: 65534,
      logger,
    });
    delete process.env.MCP_GATEWAY_TESTING;
    let kill: (() => Promise<void>) | null = null;
    const tm = createTaskManager({
      sandbox: createSandbox({}),
      logger,
      maxConcurrent: 4,
      retentionMs: 60_000,
      maxRetainedBytes: 64 * 1024 * 1024,
      tracer,
      startEgress: async (taskId, e, onConnection) => {
        const handle = await starter(taskId, e, (r) => {
          onConnection(r);
          // After the first connection the proxy is gone (as if it had crashed).
          void handle.close();
        });
        kill = handle.close;
        return handle;
      },
    });
    const id = "task-00000000-0000-4000-8000-0000000000e2";
    const script =
      "curl -sS --max-time 5 http://ok.test/one; echo first=$?; sleep 1; " +
      "curl -sS --max-time 5 http://ok.test/two; echo second=$?";
    await tm.start(
      id,
      { ...restricted, args: ["-c", script], workspaceDir: dir },
      undefined,
      egress,
    );
    const evs = await events(tm, id);
    assert.ok(kill !== null);
    const stdout = evs
      .map((e) => (e.event.case === "output" ? Buffer.from(e.event.value.data).toString() : ""))
      .join("");
    assert.match(stdout, /hi ok\.test \/one\nfirst=0\n/);
    assert.match(stdout, /second=(?!0)\d+/);
    const last = evs.at(-1)?.event;
    assert.equal(last?.case, "exited");
    assert.equal(last?.case === "exited" ? last.value.status : undefined, TaskStatus.COMPLETED);
    const egressEvents = evs.filter((e) => e.event.case === "egress");
    assert.equal(egressEvents.length, 1);
  });
});
