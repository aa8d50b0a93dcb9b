import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { type Gateway, ROOT, startGateway } from "./harness.js";

/**
 * stdio MCP servers from npm run by the runner inside the task sandbox, one process per
 * tenant and server: server-everything (tools, progress, a crash by SIGKILL) and
 * server-filesystem (confined by the policy's path rule to /workspace/, the tenant's
 * workspace), plus a server that cannot start.
 */
let gw: Gateway;
let dev: string;
/** The edge's configuration file and the upstream list in it (rewritten by the reload test). */
let edgeConfig = "";
let upstreamList: Record<string, unknown>[] = [];
const NODE_MODULES = join(ROOT, "node_modules");
const EVERYTHING = join(NODE_MODULES, "@modelcontextprotocol/server-everything/dist/index.js");
const FILESYSTEM = join(NODE_MODULES, "@modelcontextprotocol/server-filesystem/dist/index.js");

before(async () => {
  const dir = join(NODE_MODULES, ".cache");
  mkdirSync(dir, { recursive: true });
  edgeConfig = join(dir, `mcp-stdio-edge-${process.pid}.json`);
  const runnerConfig = join(dir, `mcp-stdio-runner-${process.pid}.json`);
  upstreamList = [
    {
      name: "everything",
      kind: "stdio",
      command: "node",
      args: [EVERYTHING, "stdio"],
      readOnlyPaths: [NODE_MODULES],
      timeoutMs: 30_000,
    },
    {
      name: "filesystem",
      kind: "stdio",
      command: "node",
      args: [FILESYSTEM, "/workspace"],
      readOnlyPaths: [NODE_MODULES],
      workspace: "mcp",
      idleTimeoutMs: 2000,
      timeoutMs: 30_000,
    },
    {
      name: "broken",
      kind: "stdio",
      command: "node",
      args: ["-e", "console.error('boom: cannot start'); process.exit(3)"],
      timeoutMs: 10_000,
    },
  ];
  writeFileSync(edgeConfig, JSON.stringify({ mcp: { upstreams: upstreamList } }));
  // The runner decides which host directories servers may see (here: the repository's modules).
  writeFileSync(runnerConfig, JSON.stringify({ mcpServerReadOnlyPaths: [NODE_MODULES] }));
  gw = await startGateway({
    edgeArgs: ["--config", edgeConfig],
    runnerArgs: ["--config", runnerConfig],
  });
  dev = await gw.token("stdio-dev", ["developer"]);
});

after(async () => {
  await gw?.stop();
});

async function connect(token: string): Promise<Client> {
  const client = new Client({ name: "mcp-stdio-it", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

const text = (r: unknown) => JSON.stringify((r as CallToolResult).content);

/** Host pids of a server's processes, in start order, from the runner's log. */
function startedPids(server: string): number[] {
  return gw.runner
    .stdout()
    .split("\n")
    .filter((l) => l.includes('"mcp server started"') && l.includes(`"server":"${server}"`))
    .map((l) => Number((JSON.parse(l) as { pid: number }).pid));
}

/** Paths of the files called `name` below `dir`. */
function filesNamed(dir: string, name: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((p) => basename(p) === name)
    .map((p) => join(dir, p));
}

async function eventually<T>(what: string, fn: () => T | undefined | false, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("stdio MCP servers in the sandbox", () => {
  it("lists their tools and routes calls to the tenant's sandboxed process", async () => {
    const c = await connect(dev);
    try {
      const names = (await c.listTools()).tools.map((t) => t.name);
      assert.ok(names.includes("everything__echo"), names.join(","));
      assert.ok(names.includes("filesystem__write_file"));
      assert.ok(
        !names.some((n) => n.startsWith("broken__")),
        "a server that cannot start lists nothing",
      );
      const r = (await c.callTool({
        name: "everything__echo",
        arguments: { message: "from the sandbox" },
      })) as CallToolResult;
      assert.equal(r.isError, undefined, text(r));
      assert.match(text(r), /Echo: from the sandbox/);
    } finally {
      await c.close();
    }
  });

  it("reads resources and gets prompts of the tenant's sandboxed process", async () => {
    const c = await connect(dev);
    try {
      const uri = "mcp-gateway://everything/demo://resource/static/document/architecture.md";
      const listed = (await c.listResources()).resources.map((r) => r.uri);
      assert.ok(listed.includes(uri), listed.join(" "));
      const doc = await c.readResource({ uri });
      assert.equal(doc.contents[0]?.uri, uri);
      const p = await c.getPrompt({ name: "everything__args-prompt", arguments: { city: "Oslo" } });
      assert.match(JSON.stringify(p.messages), /Oslo/);
    } finally {
      await c.close();
    }
  });

  it("runs the server under seccomp, without capabilities, in its own namespaces", async () => {
    const pid = (await eventually("everything started", () =>
      startedPids("everything").at(-1),
    )) as number;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    assert.match(status, /^Seccomp:\s+2$/m, "seccomp filter mode");
    assert.match(status, /^CapEff:\s+0+$/m, "no effective capabilities");
    assert.match(status, /^CapPrm:\s+0+$/m, "no permitted capabilities");
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(readFileSync(`/proc/${pid}/cmdline`, "utf8"), /server-everything/);
    const runnerPid = gw.runner.child.pid as number;
    for (const ns of ["net", "mnt", "pid", "user"]) {
      assert.notEqual(
        readlinkSync(`/proc/${pid}/ns/${ns}`),
        readlinkSync(`/proc/${runnerPid}/ns/${ns}`),
        `${ns} namespace differs from the runner's`,
      );
    }
  });

  it("confines the filesystem server with the policy's path rule; files land in the tenant's workspace, not the caller's own", async () => {
    const c = await connect(dev);
    try {
      const w = (await c.callTool({
        name: "filesystem__write_file",
        arguments: { path: "/workspace/notes.txt", content: "written by a sandboxed server" },
      })) as CallToolResult;
      assert.equal(w.isError, undefined, text(w));
      // The server is one process per tenant: its file is in the tenant's workspace "mcp" on
      // the runner host (one file, below the data directory) ...
      const found = filesNamed(gw.dataDir, "notes.txt");
      assert.equal(found.length, 1, found.join(","));
      assert.equal(readFileSync(found[0] as string, "utf8"), "written by a sandboxed server");
      // ... which is not the caller's own workspace of that name: workspaces are per principal
      // unless the tenant lists the name in shared_workspaces (ADR 0014), so what one member
      // plants through a shared server is never run by another member's commands.
      const r = (await c.callTool({
        name: "read_file",
        arguments: { workspace: "mcp", path: "notes.txt" },
      })) as CallToolResult;
      assert.equal(r.isError, true, text(r));
      assert.match(text(r), /not_found/);
      const denied = (await c.callTool({
        name: "filesystem__read_text_file",
        arguments: { path: "/etc/passwd" },
      })) as CallToolResult;
      assert.equal(denied.isError, true);
      assert.match(
        text(denied),
        /permission denied: .*must stay under \/workspace\/ \(got \/etc\/passwd\)/,
      );
    } finally {
      await c.close();
    }
  });

  it("stops an idle server and starts it again on the next call", async () => {
    const first = (await eventually("filesystem started", () =>
      startedPids("filesystem").at(-1),
    )) as number;
    await eventually("the idle filesystem server is gone", () => !existsSync(`/proc/${first}`));
    const c = await connect(dev);
    try {
      const r = (await c.callTool({
        name: "filesystem__list_directory",
        arguments: { path: "/workspace/" },
      })) as CallToolResult;
      assert.equal(r.isError, undefined, text(r));
      assert.match(text(r), /notes\.txt/);
      assert.ok(startedPids("filesystem").length >= 2, "a new process served the call");
    } finally {
      await c.close();
    }
  });

  it("a server that crashes gives a clear error naming it, then is started again", async () => {
    const c = await connect(dev);
    try {
      const pid = (await eventually("everything started", () =>
        startedPids("everything").at(-1),
      )) as number;
      let killed = false;
      const r = (await c.callTool(
        {
          name: "everything__trigger-long-running-operation",
          arguments: { duration: 30, steps: 30 },
        },
        undefined,
        {
          timeout: 60_000,
          onprogress: () => {
            if (!killed) {
              killed = true;
              process.kill(pid, "SIGKILL");
            }
          },
        },
      )) as CallToolResult;
      assert.ok(killed, "progress arrived before the crash");
      assert.equal(r.isError, true);
      assert.match(text(r), /unavailable: upstream everything: the server was killed by SIGKILL/);
      const again = (await c.callTool({
        name: "everything__echo",
        arguments: { message: "after the crash" },
      })) as CallToolResult;
      assert.equal(again.isError, undefined, text(again));
      assert.match(text(again), /Echo: after the crash/);
      assert.notEqual(startedPids("everything").at(-1), pid);
    } finally {
      await c.close();
    }
  });

  it("a reloaded configuration (SIGHUP) retires the tenant's process; the next call starts the new one", async () => {
    const c = await connect(dev);
    try {
      const before = await c.callTool({ name: "everything__echo", arguments: { message: "a" } });
      assert.equal(before.isError, undefined, text(before));
      const old = startedPids("everything").at(-1) as number;
      assert.ok(existsSync(`/proc/${old}`));
      // The same server with one more environment variable: a changed configuration.
      upstreamList = upstreamList.map((u) =>
        u.name === "everything" ? { ...u, env: { RELOADED: "1" } } : u,
      );
      writeFileSync(edgeConfig, JSON.stringify({ mcp: { upstreams: upstreamList } }));
      gw.edge.child.kill("SIGHUP");
      await eventually("the reload is logged", () =>
        gw.edge.stdout().includes('"changed":["everything"]'),
      );
      await eventually("the old process is gone", () => !existsSync(`/proc/${old}`));
      const after = (await c.callTool({
        name: "everything__echo",
        arguments: { message: "after the reload" },
      })) as CallToolResult;
      assert.equal(after.isError, undefined, text(after));
      assert.match(text(after), /Echo: after the reload/);
      assert.notEqual(startedPids("everything").at(-1), old);
    } finally {
      await c.close();
    }
  });

  it("a server that cannot start gives a clear error with its exit and stderr", async () => {
    const c = await connect(dev);
    try {
      const r = (await c.callTool({ name: "broken__anything", arguments: {} })) as CallToolResult;
      assert.equal(r.isError, true);
      assert.match(
        text(r),
        /upstream broken: could not be started: the server exited with code 3 \(stderr: boom: cannot start\)/,
      );
    } finally {
      await c.close();
    }
  });
});
