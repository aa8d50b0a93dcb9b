// The browser client against a real Connect server (gRPC-Web and Connect over
// HTTP/1.1, as a browser speaks them), using Node's fetch, which is the same
// web-standard fetch connect-web calls in a browser.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { McpService, OutputKind, TaskStatus } from "@mcp-gateway/proto/mcp";
import { createMcpWebClient, describeProblem } from "./web.js";

let server: Server;
let baseUrl = "";
/** What the server saw of each call: method, authorization header and content type. */
const seen: Array<{ method: string; authorization: string | null; contentType: string | null }> =
  [];

function record(method: string, ctx: HandlerContext): void {
  seen.push({
    method,
    authorization: ctx.requestHeader.get("authorization"),
    contentType: ctx.requestHeader.get("content-type"),
  });
}

before(async () => {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(McpService, {
        async executeCommand(req, ctx) {
          record("ExecuteCommand", ctx);
          if (ctx.requestHeader.get("authorization") !== "Bearer good") {
            throw new ConnectError("token expired", Code.Unauthenticated);
          }
          if (req.command === "sudo") {
            throw new ConnectError(
              "permission denied: privilege escalation (sudo) is not allowed; command reboot is not allowed",
              Code.PermissionDenied,
            );
          }
          if (req.command === "busy") {
            throw new ConnectError(
              "no runner is available (runner-1: unhealthy)",
              Code.Unavailable,
            );
          }
          return { taskId: `task-${req.args.join("-")}`, status: TaskStatus.QUEUED };
        },
        async *streamTaskOutput(req, ctx) {
          record("StreamTaskOutput", ctx);
          const enc = new TextEncoder();
          yield { seq: 1n, kind: OutputKind.STDOUT, data: enc.encode(`one ${req.taskId}\n`) };
          yield { seq: 2n, kind: OutputKind.STDERR, data: enc.encode("two\n") };
          yield { seq: 3n, kind: OutputKind.EXIT, exitCode: 3, status: TaskStatus.COMPLETED };
        },
      }),
  });
  server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.close();
});

describe("createMcpWebClient", () => {
  for (const protocol of ["grpc-web", "connect"] as const) {
    it(`${protocol}: a unary call and a server stream, typed on the generated stubs`, async () => {
      seen.length = 0;
      const client = createMcpWebClient({ baseUrl, token: "good", protocol });
      const accepted = await client.executeCommand({ command: "echo", args: ["a", "b"] });
      assert.equal(accepted.taskId, "task-a-b");
      assert.equal(accepted.status, TaskStatus.QUEUED);
      const kinds: string[] = [];
      const dec = new TextDecoder();
      let text = "";
      for await (const chunk of client.streamTaskOutput({ taskId: accepted.taskId })) {
        kinds.push(OutputKind[chunk.kind] ?? "?");
        text += dec.decode(chunk.data);
        if (chunk.kind === OutputKind.EXIT) assert.equal(chunk.exitCode, 3);
      }
      assert.deepEqual(kinds, ["STDOUT", "STDERR", "EXIT"]);
      assert.equal(text, "one task-a-b\ntwo\n");
      const types = seen.map((s) => s.contentType);
      assert.deepEqual(
        types,
        protocol === "grpc-web"
          ? ["application/grpc-web+proto", "application/grpc-web+proto"]
          : ["application/proto", "application/connect+proto"],
      );
    });
  }

  it("connect with json: true sends JSON", async () => {
    seen.length = 0;
    const client = createMcpWebClient({ baseUrl, token: "good", protocol: "connect", json: true });
    await client.executeCommand({ command: "echo", args: ["x"] });
    assert.equal(seen[0]?.contentType, "application/json");
  });

  it("asks a token function before every call, so a new token is used at once", async () => {
    seen.length = 0;
    let current: string | null = null;
    let asked = 0;
    const client = createMcpWebClient({
      baseUrl,
      token: async () => {
        asked += 1;
        return current;
      },
    });
    await assert.rejects(client.executeCommand({ command: "echo" }), (err: unknown) => {
      assert.equal(ConnectError.from(err).code, Code.Unauthenticated);
      return true;
    });
    current = "good";
    await client.executeCommand({ command: "echo", args: ["y"] });
    assert.equal(asked, 2);
    assert.deepEqual(
      seen.map((s) => s.authorization),
      [null, "Bearer good"],
      "no header without a token; the new token on the next call",
    );
  });

  it("calls onUnauthenticated for a rejected token and still rejects", async () => {
    const calls: string[] = [];
    const client = createMcpWebClient({
      baseUrl,
      token: "stale",
      onUnauthenticated: (e) => calls.push(e.rawMessage),
    });
    await assert.rejects(client.executeCommand({ command: "echo" }), /token expired/);
    assert.deepEqual(calls, ["token expired"]);
    // Other failures do not call it.
    const ok = createMcpWebClient({
      baseUrl,
      token: "good",
      onUnauthenticated: (e) => calls.push(e.rawMessage),
    });
    await assert.rejects(ok.executeCommand({ command: "sudo" }), /permission denied/);
    assert.equal(calls.length, 1);
  });

  it("the same error model: codes and messages, described for a person", async () => {
    const client = createMcpWebClient({ baseUrl, token: "good" });
    const problemOf = async (command: string) => {
      try {
        await client.executeCommand({ command });
      } catch (err) {
        return describeProblem(err);
      }
      throw new Error(`${command} did not fail`);
    };
    const denied = await problemOf("sudo");
    assert.equal(denied.kind, "permission_denied");
    assert.equal(denied.code, Code.PermissionDenied);
    assert.deepEqual(denied.reasons, [
      "privilege escalation (sudo) is not allowed",
      "command reboot is not allowed",
    ]);
    const busy = await problemOf("busy");
    assert.equal(busy.kind, "runner_unavailable");
    assert.match(busy.summary, /No runner is available/);
    const expired = describeProblem(
      await createMcpWebClient({ baseUrl, token: "old" })
        .executeCommand({ command: "echo" })
        .then(
          () => assert.fail("no error"),
          (e: unknown) => e,
        ),
    );
    assert.equal(expired.kind, "unauthenticated");
    assert.equal(expired.summary, "Your sign-in has expired. Sign in again.");
  });

  it("an edge that is not there is 'unreachable', not a raw fetch error", async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const client = createMcpWebClient({ baseUrl: `http://127.0.0.1:${port}`, token: "good" });
    const err = await client.executeCommand({ command: "echo" }).then(
      () => assert.fail("no error"),
      (e: unknown) => e,
    );
    const p = describeProblem(err);
    assert.equal(p.kind, "unreachable");
    assert.match(p.summary, /cannot be reached/);
  });
});
