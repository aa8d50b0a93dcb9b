import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectJson, type Gateway, runnerClient, startGateway } from "./harness.js";

let gw: Gateway;
let token: string;

before(async () => {
  gw = await startGateway();
  token = await gw.token("bob", ["developer"]);
});
after(async () => {
  await gw?.stop();
});

describe("bad input gets a clear code and message, never a crash", () => {
  it("malformed JSON → 400 invalid_argument", async () => {
    const r = await connectJson(gw.url, "ExecuteCommand", undefined, token, "{not json");
    assert.equal(r.status, 400);
    assert.equal(r.body.code, "invalid_argument");
  });

  it("wrong field types → 400 invalid_argument", async () => {
    const r = await connectJson(gw.url, "ExecuteCommand", { command: 42, args: "x" }, token);
    assert.equal(r.status, 400);
    assert.equal(r.body.code, "invalid_argument");
  });

  it("empty command → invalid_argument naming the field", async () => {
    const r = await connectJson(gw.url, "ExecuteCommand", { command: "" }, token);
    assert.equal(r.body.code, "invalid_argument");
    assert.match(String(r.body.message), /command is required/);
  });

  it("unknown task id → 404 not_found; garbage id → invalid_argument", async () => {
    const r = await connectJson(
      gw.url,
      "GetTaskStatus",
      { taskId: "task-00000000-0000-4000-8000-000000000000" },
      token,
    );
    assert.equal(r.status, 404);
    assert.equal(r.body.code, "not_found");
    const g = await connectJson(gw.url, "GetTaskStatus", { taskId: "../../etc" }, token);
    assert.equal(g.body.code, "invalid_argument");
  });

  it("oversized body → resource_exhausted, and the edge keeps serving", async () => {
    const big = "x".repeat(9 * 1024 * 1024);
    const r = await connectJson(
      gw.url,
      "WriteFile",
      { path: "big.txt", content: Buffer.from(big).toString("base64") },
      token,
    );
    assert.equal(r.body.code, "resource_exhausted");
    const h = await fetch(`${gw.url}/health`);
    assert.equal(h.status, 200);
  });

  it("an oversized body past the drain bound is refused and its connection closed, unread", async () => {
    // Up to 16 MiB the refused body is read and discarded after the answer (so a client still
    // sending gets the answer, not a reset); past that the connection ends at once.
    const url = new URL(gw.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => {
        socket.write(
          "POST /mcp.McpService/WriteFile HTTP/1.1\r\n" +
            `host: ${url.host}\r\nauthorization: Bearer ${token}\r\n` +
            `content-type: application/json\r\ncontent-length: ${64 * 1024 * 1024}\r\n\r\n{"path":`,
        );
      });
      let text = "";
      socket.on("data", (c: Buffer) => {
        text += c.toString("utf8");
      });
      socket.on("error", reject);
      socket.on("close", () => resolve(text));
      setTimeout(() => reject(new Error(`not closed; got ${text}`)), 5000).unref();
    });
    assert.match(answer, /^HTTP\/1\.1 429/);
    assert.match(answer, /connection: close/i);
    assert.match(answer, /exceeds the limit/);
  });

  it("path traversal in file calls → invalid_argument", async () => {
    for (const path of ["../etc/passwd", "/etc/passwd", "a/../../b"]) {
      const r = await connectJson(gw.url, "ReadFile", { path }, token);
      assert.equal(r.body.code, "invalid_argument", `${path}: ${JSON.stringify(r.body)}`);
    }
  });

  it("no token → 401 unauthenticated with WWW-Authenticate", async () => {
    const r = await connectJson(gw.url, "ExecuteCommand", { command: "true" });
    assert.equal(r.status, 401);
    assert.equal(r.body.code, "unauthenticated");
    assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer/);
  });

  it("policy denial → 403 permission_denied with the reasons", async () => {
    const r = await connectJson(
      gw.url,
      "ExecuteCommand",
      { command: "rm", args: ["-rf", "/"] },
      token,
    );
    assert.equal(r.status, 403);
    assert.equal(r.body.code, "permission_denied");
    assert.ok(String(r.body.message).length > 20);
  });

  it("files round-trip inside the workspace", async () => {
    const w = await connectJson(
      gw.url,
      "WriteFile",
      {
        path: "dir/hello.txt",
        content: Buffer.from("hi there").toString("base64"),
        createParents: true,
      },
      token,
    );
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const r = await connectJson(gw.url, "ReadFile", { path: "dir/hello.txt" }, token);
    assert.equal(Buffer.from(String(r.body.content), "base64").toString(), "hi there");
    const l = await connectJson(gw.url, "ListDirectory", { path: "dir" }, token);
    const entries = l.body.entries as Array<Record<string, unknown>>;
    assert.deepEqual(
      entries.map((e) => e.name),
      ["hello.txt"],
    );
    const d = await connectJson(gw.url, "DeleteFile", { path: "dir/hello.txt" }, token);
    assert.equal(d.status, 200);
    const gone = await connectJson(gw.url, "ReadFile", { path: "dir/hello.txt" }, token);
    assert.equal(gone.body.code, "not_found");
  });
});

describe("workspaces are separated by tenant", () => {
  it("the same workspace name in another tenant is another directory", async () => {
    const a = await gw.token("ann", ["developer"], ["--tenant", "tenant-a"]);
    const b = await gw.token("ben", ["developer"], ["--tenant", "tenant-b"]);
    const w = await connectJson(
      gw.url,
      "WriteFile",
      {
        workspace: "shared",
        path: "secret.txt",
        content: Buffer.from("tenant a only").toString("base64"),
      },
      a,
    );
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const r = await connectJson(gw.url, "ReadFile", { workspace: "shared", path: "secret.txt" }, b);
    assert.equal(r.body.code, "not_found");
    const l = await connectJson(gw.url, "ListDirectory", { workspace: "shared", path: "" }, b);
    assert.deepEqual(l.body.entries ?? [], []);
    const mine = await connectJson(
      gw.url,
      "ReadFile",
      { workspace: "shared", path: "secret.txt" },
      a,
    );
    assert.equal(Buffer.from(String(mine.body.content), "base64").toString(), "tenant a only");
  });
});

describe("runner port is mTLS only", () => {
  it("refuses a TLS client without a certificate in the handshake", async () => {
    const u = new URL(gw.runnerUrl);
    const ca = readFileSync(join(gw.dataDir, "pki", "ca.crt"));
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({
        host: u.hostname,
        port: Number(u.port),
        ca,
        servername: "localhost",
        ALPNProtocols: ["h2"],
      });
      s.on("secureConnect", () => {
        // TLS 1.3: the server's rejection of a missing client cert arrives after the client's handshake finishes.
        s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      });
      s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      s.on("close", () => resolve("closed"));
    });
    assert.match(outcome, /CERTIFICATE_REQUIRED|ECONNRESET|closed/);
  });

  it("a plain h2 client without a certificate gets no answer from RunnerService", async () => {
    const ca = readFileSync(join(gw.dataDir, "pki", "ca.crt"));
    const err = await new Promise<Error | null>((resolve) => {
      const session = http2.connect(gw.runnerUrl, { ca });
      session.on("error", (e) => resolve(e));
      const req = session.request({
        ":method": "POST",
        ":path": "/mcp.runner.v1.RunnerService/Info",
        "content-type": "application/grpc",
      });
      req.on("error", (e) => resolve(e));
      req.on("response", () => resolve(null));
      req.end();
    });
    assert.ok(err, "the runner must not answer a client without a certificate");
  });
});

describe("runner fencing", () => {
  it("refuses a Cancel carrying a lower fencing token than one it has seen (a deposed active edge)", async () => {
    const pki = join(gw.dataDir, "pki");
    const client = runnerClient(
      gw.runnerUrl,
      {
        caPath: join(pki, "ca.crt"),
        certPath: join(pki, "edge-edge-local.crt"),
        keyPath: join(pki, "edge-edge-local.key"),
      },
      "runner-local",
    );
    const taskId = "task-00000000-0000-4000-8000-00000000fe9c";
    assert.deepEqual((await client.cancel({ taskId, fencingToken: 7n })).cancelled, false);
    await assert.rejects(client.cancel({ taskId, fencingToken: 6n }), (err: unknown) => {
      const ce = ConnectError.from(err);
      assert.equal(ce.code, Code.FailedPrecondition);
      assert.match(ce.rawMessage, /stale fencing token 6 \(current 7\)/);
      return true;
    });
    // The current token and active-active calls (token 0) still pass.
    assert.equal((await client.cancel({ taskId, fencingToken: 7n })).cancelled, false);
    assert.equal((await client.cancel({ taskId })).cancelled, false);
  });
});

describe("a dead runner", () => {
  it("makes new tasks fail with unavailable and leaves the edge serving", async () => {
    await gw.runner.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 2500)); // one probe interval
    const r = await connectJson(gw.url, "ListDirectory", { path: "" }, token);
    assert.equal(r.body.code, "unavailable");
    assert.match(String(r.body.message), /no runner is available/);
    const h = await fetch(`${gw.url}/health/ready`);
    assert.equal(h.status, 503);
  });
});
