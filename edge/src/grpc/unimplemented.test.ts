import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { unimplementedResponse } from "./unimplemented.js";

const KNOWN = new Set(["mcp.McpService", "grpc.health.v1.Health"]);

function ask(method: string, url: string, headers: Record<string, string>) {
  return unimplementedResponse({ method, url, header: new Headers(headers) }, KNOWN);
}

async function body(res: UniversalServerResponse | undefined): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of res?.body ?? []) chunks.push(c);
  return Buffer.concat(chunks);
}

describe("unimplementedResponse", () => {
  it("gRPC: 200 with grpc-status 12 in the trailers, on any path", () => {
    const res = ask("POST", "/mcp.McpService/Nope", { "content-type": "application/grpc+proto" });
    assert.equal(res?.status, 200);
    assert.equal(res.header?.get("content-type"), "application/grpc+proto");
    assert.equal(res.trailer?.get("grpc-status"), "12");
    assert.equal(
      decodeURIComponent(res.trailer?.get("grpc-message") ?? ""),
      "unknown method Nope for service mcp.McpService",
    );
    const other = ask("POST", "/mcp.runner.v1.RunnerService/Info", {
      "content-type": "application/grpc",
    });
    assert.equal(
      decodeURIComponent(other?.trailer?.get("grpc-message") ?? ""),
      "unknown service mcp.runner.v1.RunnerService",
    );
    const odd = ask("POST", "/not-a-method", { "content-type": "application/grpc" });
    assert.equal(odd?.trailer?.get("grpc-status"), "12");
  });

  it("gRPC-Web: a trailer frame with grpc-status 12 (base64 for -text)", async () => {
    const res = ask("POST", "/pkg.Svc/M", { "content-type": "application/grpc-web+proto" });
    assert.equal(res?.status, 200);
    const frame = await body(res);
    assert.equal(frame[0], 0x80, "trailer flag");
    const text = Buffer.from(frame.subarray(5)).toString();
    assert.match(text, /grpc-status: 12\r\n/);
    assert.match(text, /grpc-message: unknown%20service%20pkg.Svc\r\n/);
    const b64 = ask("POST", "/pkg.Svc/M", { "content-type": "application/grpc-web-text" });
    const decoded = Buffer.from(Buffer.from(await body(b64)).toString(), "base64");
    assert.deepEqual(new Uint8Array(decoded), new Uint8Array(frame));
  });

  it("Connect unary (POST and GET): HTTP 501 with code unimplemented", async () => {
    for (const [method, url, headers] of [
      ["POST", "/mcp.McpService/Nope", { "content-type": "application/json; charset=utf-8" }],
      ["POST", "/mcp.McpService/Nope", { "content-type": "application/proto" }],
      ["GET", "/mcp.McpService/Nope?connect=v1&encoding=json&message=%7B%7D", {}],
      ["POST", "/Svc/M", { "content-type": "application/json", "connect-protocol-version": "1" }],
    ] as const) {
      const res = ask(method, url, headers);
      assert.equal(res?.status, 501, `${method} ${url}`);
      const json = JSON.parse(Buffer.from(await body(res)).toString()) as Record<string, string>;
      assert.equal(json.code, "unimplemented");
    }
  });

  it("Connect streaming: an end-stream message carrying the error", async () => {
    const res = ask("POST", "/pkg.Svc/M", { "content-type": "application/connect+json" });
    assert.equal(res?.status, 200);
    const frame = await body(res);
    assert.equal(frame[0], 0x02, "end-stream flag");
    const end = JSON.parse(Buffer.from(frame.subarray(5)).toString()) as {
      error: { code: string };
    };
    assert.equal(end.error.code, "unimplemented");
  });

  it("plain HTTP is not an RPC: the app's 404 stays", () => {
    for (const [method, url, headers] of [
      ["GET", "/nope", {}],
      ["GET", "/health/ready", {}],
      ["POST", "/health/ready", { "content-type": "application/json" }],
      ["POST", "/mcp", { "content-type": "application/json" }],
      ["GET", "/mcp.McpService/Nope", {}],
      ["POST", "/mcp.McpService/Nope", { "content-type": "text/plain" }],
    ] as const) {
      assert.equal(ask(method, url, headers), undefined, `${method} ${url}`);
    }
  });
});
