import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import {
  callToolOverHttp,
  HttpCallError,
  type HttpCallOptions,
  type HttpSession,
  SessionExpired,
} from "./http-call.js";

/** What the test upstream does with the next request. */
type Behaviour = (
  req: http.IncomingMessage,
  body: { id: string; params: Record<string, unknown> },
  res: http.ServerResponse,
) => void;

describe("callToolOverHttp (a remote upstream's tools/call)", () => {
  let server: http.Server;
  let url: URL;
  let behaviour: Behaviour;
  const seen: { headers: http.IncomingHttpHeaders; body: Record<string, unknown> }[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => (text += c.toString()));
      req.on("end", () => {
        const body = JSON.parse(text) as { id: string; params: Record<string, unknown> };
        seen.push({ headers: req.headers, body });
        behaviour(req, body, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const session = (): HttpSession => ({
    url,
    headers: { authorization: "Bearer upstream-secret" },
    sessionId: "s-1",
    protocolVersion: "2025-06-18",
  });
  function options(over: Partial<HttpCallOptions> = {}) {
    const cancelled: [string, string][] = [];
    const replies: Record<string, unknown>[] = [];
    const o: HttpCallOptions = {
      signal: new AbortController().signal,
      timeoutMs: 5000,
      maxBytes: 1 << 20,
      cancel: (id, reason) => cancelled.push([id, reason]),
      reply: (response) => replies.push(response),
      ...over,
    };
    return { o, cancelled, replies };
  }
  const json = (res: http.ServerResponse, status: number, value: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(value));
  };

  it("sends the call on the session with the gateway's credential and reads a JSON answer", async () => {
    behaviour = (_req, body, res) =>
      json(res, 200, {
        jsonrpc: "2.0",
        id: body.id,
        result: { content: [{ type: "text", text: "hi" }] },
      });
    const { o } = options();
    const result = await callToolOverHttp(session(), "echo", { message: "hi" }, o);
    assert.deepEqual(result, { content: [{ type: "text", text: "hi" }] });
    const last = seen.at(-1);
    assert.ok(last);
    assert.equal(last.headers["mcp-session-id"], "s-1");
    assert.equal(last.headers["mcp-protocol-version"], "2025-06-18");
    assert.equal(last.headers.authorization, "Bearer upstream-secret");
    assert.match(String(last.headers.accept), /application\/json/);
    assert.match(String(last.headers.accept), /text\/event-stream/);
    assert.equal(last.body.method, "tools/call");
    assert.deepEqual(last.body.params, { name: "echo", arguments: { message: "hi" } });
  });

  it("reads an SSE answer: progress passed on, ping answered, other server requests refused", async () => {
    behaviour = (_req, body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const token = (body.params._meta as { progressToken: string }).progressToken;
      res.write("id: 1\ndata:\n\n"); // a priming event
      res.write(": a comment\n");
      res.write(
        `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: token, progress: 1, total: 2, message: "half" } })}\n\n`,
      );
      res.write(
        `data: ${JSON.stringify({ jsonrpc: "2.0", id: 7, method: "sampling/createMessage", params: {} })}\r\n\r\n`,
      );
      res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: "p1", method: "ping" })}\r\r`);
      // The answer split across writes and lines.
      const answer = JSON.stringify({ jsonrpc: "2.0", id: body.id, result: { content: [] } });
      res.write(`data: ${answer.slice(0, 10)}`);
      setTimeout(() => res.end(`${answer.slice(10)}\n\n`), 20);
    };
    const progress: unknown[] = [];
    const { o, replies } = options({ onProgress: (p, t, m) => progress.push([p, t, m]) });
    const result = await callToolOverHttp(session(), "slow", {}, o);
    assert.deepEqual(result, { content: [] });
    assert.deepEqual(progress, [[1, 2, "half"]]);
    assert.deepEqual(replies, [
      {
        jsonrpc: "2.0",
        id: 7,
        error: { code: -32601, message: "the gateway does not serve sampling/createMessage" },
      },
      { jsonrpc: "2.0", id: "p1", result: {} },
    ]);
  });

  it("passes the upstream's log messages on; malformed ones are dropped", async () => {
    behaviour = (_req, body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const note = (params: unknown) =>
        res.write(
          `data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params })}\n\n`,
        );
      note({ level: "info", logger: "db", data: { rows: 3 } });
      note({ level: "loud", data: "not a level" });
      note({ level: "error" }); // no data
      note("not an object");
      note({ level: "warning", logger: 7, data: "a logger that is not a string is left out" });
      res.end(
        `data: ${JSON.stringify({ jsonrpc: "2.0", id: body.id, result: { content: [] } })}\n\n`,
      );
    };
    const logs: unknown[] = [];
    const { o } = options({ onLog: (m) => logs.push(m) });
    assert.deepEqual(await callToolOverHttp(session(), "query", {}, o), { content: [] });
    assert.deepEqual(logs, [
      { level: "info", logger: "db", data: { rows: 3 } },
      { level: "warning", data: "a logger that is not a string is left out" },
    ]);
  });

  it("parses SSE however it is chunked: CRLF split across writes, multi-line data, a long line", async () => {
    const big = "y".repeat(4 * 1024 * 1024);
    behaviour = (_req, body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      // One event whose JSON spans two data lines ("\n" between them is JSON whitespace),
      // with each CRLF split between two writes.
      const answer = JSON.stringify({ jsonrpc: "2.0", id: body.id, result: { content: [], big } });
      const cut = answer.indexOf(",");
      const parts = [
        `data: ${answer.slice(0, cut)}\r`,
        `\ndata: ${answer.slice(cut)}`,
        "\r",
        "\n\r\n",
      ];
      // The long line goes out in 16 KiB pieces.
      const pieces: string[] = [];
      for (const p of parts)
        for (let i = 0; i < p.length; i += 16384) pieces.push(p.slice(i, i + 16384));
      const next = () => {
        const piece = pieces.shift();
        if (piece === undefined) return void res.end();
        if (res.write(piece)) setImmediate(next);
        else res.once("drain", next);
      };
      next();
    };
    const result = (await callToolOverHttp(
      session(),
      "big",
      {},
      options({ maxBytes: 8 << 20 }).o,
    )) as {
      big: string;
    };
    assert.equal(result.big.length, big.length);
  });

  it("passes a JSON-RPC error answer on as an McpError with the upstream's code", async () => {
    behaviour = (_req, body, res) =>
      json(res, 200, {
        jsonrpc: "2.0",
        id: body.id,
        error: { code: -32602, message: "bad arguments" },
      });
    await assert.rejects(
      callToolOverHttp(session(), "echo", {}, options().o),
      (err: unknown) =>
        err instanceof McpError && err.code === -32602 && /bad arguments/.test(err.message),
    );
  });

  it("says when the upstream no longer knows the session (404), and other HTTP failures", async () => {
    behaviour = (_req, _body, res) => json(res, 404, { error: "no session" });
    await assert.rejects(callToolOverHttp(session(), "echo", {}, options().o), SessionExpired);
    behaviour = (_req, _body, res) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end("database\n  down");
    };
    await assert.rejects(
      callToolOverHttp(session(), "echo", {}, options().o),
      (err: unknown) => err instanceof HttpCallError && err.message === "HTTP 500: database down",
    );
    behaviour = (_req, _body, res) => {
      res.writeHead(202);
      res.end();
    };
    await assert.rejects(callToolOverHttp(session(), "echo", {}, options().o), HttpCallError);
  });

  it("times out, and tells the upstream the call was abandoned", async () => {
    behaviour = () => undefined; // never answers
    const { o, cancelled } = options({ timeoutMs: 150 });
    await assert.rejects(
      callToolOverHttp(session(), "hang", {}, o),
      (err: unknown) => err instanceof McpError && err.code === ErrorCode.RequestTimeout,
    );
    assert.equal(cancelled.length, 1);
    assert.equal(cancelled[0]?.[0], seen.at(-1)?.body.id);
    assert.equal(cancelled[0]?.[1], "timed out");
  });

  it("stops at once when the caller cancels, and tells the upstream", async () => {
    behaviour = () => undefined;
    const abort = new AbortController();
    const { o, cancelled } = options({ signal: abort.signal });
    const call = callToolOverHttp(session(), "hang", {}, o);
    setTimeout(() => abort.abort(new Error("the client went away")), 50);
    await assert.rejects(call, /the client went away/);
    assert.deepEqual(
      cancelled.map((c) => c[1]),
      ["cancelled"],
    );
  });

  it("refuses an answer larger than the limit, JSON or one SSE event", async () => {
    behaviour = (_req, body, res) =>
      json(res, 200, {
        jsonrpc: "2.0",
        id: body.id,
        result: { content: [], big: "x".repeat(5000) },
      });
    await assert.rejects(
      callToolOverHttp(session(), "echo", {}, options({ maxBytes: 1000 }).o),
      /exceeds 1000 bytes/,
    );
    behaviour = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${"x".repeat(5000)}`);
    };
    await assert.rejects(
      callToolOverHttp(session(), "echo", {}, options({ maxBytes: 1000 }).o),
      /an event of the answer exceeds 1000 bytes/,
    );
  });

  it("says so when the stream ends without an answer, or the answer is not JSON", async () => {
    behaviour = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end("data: {}\n\n");
    };
    await assert.rejects(
      callToolOverHttp(session(), "echo", {}, options().o),
      /ended without an answer/,
    );
    behaviour = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{not json");
    };
    await assert.rejects(callToolOverHttp(session(), "echo", {}, options().o), /invalid JSON/);
  });

  it("reports a refused connection as a link failure", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(
      callToolOverHttp(
        { ...session(), url: new URL(`http://127.0.0.1:${port}/mcp`) },
        "echo",
        {},
        options().o,
      ),
      (err: unknown) => err instanceof HttpCallError && /ECONNREFUSED/.test(err.message),
    );
  });
});
