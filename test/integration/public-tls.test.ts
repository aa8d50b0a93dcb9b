import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { ensureDevPki } from "@mcp-gateway/common/tls";
import { HealthRequestSchema, type HealthResponseSchema } from "@mcp-gateway/proto/mcp";
import { createGrpcJsClient, unary } from "./grpc-js-client.js";
import { type Gateway, startGateway } from "./harness.js";

/** The public port with TLS: h2 (gRPC) and HTTP/1.1 (curl, Connect) chosen by ALPN. */
let gw: Gateway;
let ca: Buffer;

before(async () => {
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "mcp-tls-"));
  const pki = await ensureDevPki({ dir, edgeIds: ["public"], runnerIds: [] });
  const leaf = pki.edges.public;
  assert.ok(leaf);
  ca = readFileSync(pki.caCertPath);
  const config = join(dir, "edge.json");
  writeFileSync(
    config,
    JSON.stringify({ publicTls: { certPath: leaf.certPath, keyPath: leaf.keyPath } }),
  );
  gw = await startGateway({ edgeArgs: ["--config", config] });
});
after(async () => {
  await gw?.stop();
});

function get(url: string, alpn: string[]): Promise<{ status: number; alpn: string; body: string }> {
  return new Promise((resolve, reject) => {
    const agent = new https.Agent({ ca, ALPNProtocols: alpn, servername: "localhost" });
    const req = https.get(url, { agent }, (res) => {
      const negotiated = String((res.socket as TLSSocket).alpnProtocol);
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => {
        agent.destroy();
        resolve({ status: res.statusCode ?? 0, alpn: negotiated, body });
      });
    });
    req.on("error", reject);
  });
}

describe("public port with TLS", () => {
  it("serves HTTP/1.1 over TLS (ALPN http/1.1)", async () => {
    assert.match(gw.url, /^https:\/\//);
    const r = await get(`${gw.url}/health`, ["http/1.1"]);
    assert.equal(r.status, 200);
    assert.equal(r.alpn, "http/1.1");
    assert.equal((JSON.parse(r.body) as { status: string }).status, "ok");
  });

  it("serves native gRPC over h2 (ALPN h2) with the CA", async () => {
    const client = createGrpcJsClient(new URL(gw.url).host, grpc.credentials.createSsl(ca));
    try {
      const h = await unary<typeof HealthRequestSchema, typeof HealthResponseSchema>(
        client,
        "health",
        HealthRequestSchema,
        {},
        undefined,
      );
      assert.equal(h.status, "ok");
    } finally {
      client.close();
    }
  });

  it("refuses a client that does not trust the certificate", async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        https.get(`${gw.url}/health`, { servername: "localhost" }, resolve).on("error", reject);
      }),
      /self-signed|unable to verify|SELF_SIGNED|UNABLE_TO_VERIFY/i,
    );
  });
});
