import assert from "node:assert/strict";
import { chown, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { Decision } from "@mcp-gateway/common/policy";
import { NetworkMode } from "@mcp-gateway/proto/mcp";
import {
  type McpServerRequest,
  McpServerRequestSchema,
  type McpServerResponse,
} from "@mcp-gateway/proto/runner/v1";
import pino from "pino";
import { createMcpServerHost } from "./mcp-servers.js";
import { createSandbox } from "./sandbox/index.js";

const isRoot = process.getuid?.() === 0;
let ws = "";
const sandbox = createSandbox({});

before(async () => {
  ws = await mkdtemp(join(tmpdir(), "mcpg-mcp-host-test-"));
  if (isRoot) await chown(ws, 65534, 65534);
});
after(async () => {
  await sandbox.close();
  await rm(ws, { recursive: true, force: true });
});

const allow: Decision = {
  allow: true,
  denyReasons: [],
  warnings: [],
  revision: "r1",
  operations: [],
  tools: [],
  obligations: {
    max_timeout_seconds: 30,
    network: "none",
    limits: {
      memory_bytes: 256 * 1024 * 1024,
      max_processes: 16,
      max_file_size_bytes: 1024 * 1024,
      max_open_files: 64,
      cpu_seconds: 30,
      max_output_bytes: 4096,
    },
  },
};

/** A request stream the test pushes into. */
function requests() {
  const items: McpServerRequest[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  return {
    push(r: McpServerRequest["message"]) {
      items.push(create(McpServerRequestSchema, { message: r }));
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = items.shift();
        if (next) yield next;
        else if (ended) return;
        else await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

function launch(command: string, args: string[], readOnlyPaths: string[] = []) {
  return {
    case: "launch" as const,
    value: {
      server: "echo",
      readOnlyPaths,
      spec: {
        command,
        args,
        env: {},
        cwd: "",
        timeoutMs: 0n,
        workspace: "mcp",
        network: NetworkMode.UNSPECIFIED,
      },
    },
  } as unknown as McpServerRequest["message"];
}

describe("MCP server host (real sandbox)", () => {
  const host = createMcpServerHost({
    sandbox,
    runnerId: "runner-test",
    logger: pino({ level: "silent" }),
    readOnlyPaths: ["/usr/share"],
    protectedPaths: [],
    maxServers: 2,
  });
  const ctx = (signal = new AbortController().signal) => ({
    recheck: () => allow,
    workspaceDir: async () => ws,
    accepting: () => true,
    signal,
  });

  it("pipes stdin to the server and its stdout back, in its own namespaces, until the stream ends", async () => {
    const reqs = requests();
    reqs.push(launch("cat", []));
    const out: McpServerResponse[] = [];
    let text = "";
    let pid = 0;
    for await (const r of host.serve(reqs, ctx())) {
      out.push(r);
      if (r.message.case === "started") {
        pid = r.message.value.pid;
        assert.equal(r.message.value.network, NetworkMode.NONE);
        assert.equal(r.message.value.lifetimeMs, 30_000n);
        const status = await readFile(`/proc/${pid}/status`, "utf8");
        assert.match(status, /^Seccomp:\s+2$/m);
        assert.match(status, /^CapEff:\s+0+$/m);
        // More than the stderr/output cap of 4096 bytes: a server's stdout is not capped.
        reqs.push({ case: "stdin", value: Buffer.from(`${"x".repeat(10_000)}\n`) });
      }
      if (r.message.case === "stdout") {
        text += Buffer.from(r.message.value).toString();
        if (text.length >= 10_001) reqs.end();
      }
    }
    assert.equal(text.length, 10_001);
    assert.equal(out[0]?.message.case, "started");
    assert.equal(out.at(-1)?.message.case, "exited");
    assert.ok(pid > 0);
    assert.equal(host.running(), 0);
  });

  it("refuses read-only paths outside its allowlist", async () => {
    const reqs = requests();
    reqs.push(launch("true", [], ["/opt"]));
    await assert.rejects(async () => {
      for await (const _ of host.serve(reqs, ctx())) {
        // nothing
      }
    }, /read-only path \/opt is not under this runner's mcpServerReadOnlyPaths/);
  });

  it("refuses a read-only path the sandbox's own /tmp would hide", async () => {
    const reqs = requests();
    reqs.push(launch("true", [], ["/tmp"]));
    await assert.rejects(async () => {
      for await (const _ of host.serve(reqs, ctx())) {
        // nothing
      }
    }, /read-only path \/tmp is under \/tmp, which the sandbox replaces with its own/);
  });

  it("reports a server that exits by itself", async () => {
    const reqs = requests();
    reqs.push(launch("sh", ["-c", "echo broken >&2; exit 3"]));
    let stderr = "";
    let exited: McpServerResponse["message"] | undefined;
    for await (const r of host.serve(reqs, ctx())) {
      if (r.message.case === "stderr") stderr += Buffer.from(r.message.value).toString();
      if (r.message.case === "exited") exited = r.message;
    }
    assert.match(stderr, /broken/);
    assert.equal(exited?.case === "exited" && exited.value.exitCode, 3);
  });

  it("refuses to expose protected host paths", () => {
    assert.throws(
      () =>
        createMcpServerHost({
          sandbox,
          runnerId: "r",
          logger: pino({ level: "silent" }),
          readOnlyPaths: ["/tmp"],
          protectedPaths: [join(tmpdir(), "data")],
          maxServers: 1,
        }),
      /may not be exposed to MCP servers/,
    );
  });
});
