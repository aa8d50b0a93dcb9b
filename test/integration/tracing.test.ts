import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { type Gateway, runCli, startGateway, waitForTask } from "./harness.js";

interface SpanOut {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  /** Trace ids of the span's links. */
  links: string[];
}

/** A real OTLP/HTTP receiver: decodes what the exporters send (JSON encoding). */
let receiver: Server;
const spans: SpanOut[] = [];
let gw: Gateway;

before(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (req.url === "/v1/traces" && (req.headers["content-type"] ?? "").includes("json")) {
        const doc = JSON.parse(body) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
            scopeSpans: Array<{
              spans: Array<Omit<SpanOut, "service" | "links"> & { links?: { traceId: string }[] }>;
            }>;
          }>;
        };
        for (const rs of doc.resourceSpans) {
          const service =
            rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "";
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              spans.push({
                service,
                name: s.name,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? "",
                links: (s.links ?? []).map((l) => l.traceId),
              });
            }
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  const port = (receiver.address() as AddressInfo).port;
  gw = await startGateway({
    env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces` },
  });
});

after(async () => {
  await gw?.stop();
  receiver?.close();
});

describe("one trace spans edge and runner", () => {
  it("exports the RPC → authn → policy → store → dispatch → runner → sandbox → run tree", async () => {
    const token = await gw.token("tracy", ["developer"]);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const res = await fetch(`${gw.url}/mcp.McpService/ExecuteCommand`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
      body: JSON.stringify({ command: "echo", args: ["traced"] }),
    });
    const body = (await res.json()) as { taskId: string };
    await waitForTask(gw.url, token, body.taskId);
    const deadline = Date.now() + 15_000;
    const names = [
      "mcp.McpService/ExecuteCommand",
      "authn",
      "policy.decide",
      "audit.append",
      "store.create_task",
      "task.dispatch",
      "runner.execute",
      "sandbox.spawn",
      "task.run",
    ];
    let mine: SpanOut[] = [];
    while (Date.now() < deadline) {
      // The edge starts its own trace and links the caller's (issue 21): find it by the link.
      const own = spans.find((s) => s.links.includes(traceId))?.traceId;
      mine = spans.filter((s) => s.traceId === own);
      if (names.every((n) => mine.some((s) => s.name === n))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const byName = (n: string) => {
      const s = mine.find((x) => x.name === n);
      assert.ok(
        s,
        `span ${n} missing; got ${mine.map((x) => `${x.service}:${x.name}`).join(", ")}`,
      );
      return s;
    };
    const rpc = byName("mcp.McpService/ExecuteCommand");
    assert.equal(rpc.service, "mcp-edge");
    assert.equal(rpc.parentSpanId, "", "the RPC span starts the gateway's own trace");
    assert.notEqual(rpc.traceId, traceId);
    assert.deepEqual(rpc.links, [traceId], "and links the caller's");
    for (const n of ["authn", "policy.decide", "audit.append", "store.create_task"])
      assert.equal(byName(n).parentSpanId, rpc.spanId, n);
    const dispatch = byName("task.dispatch");
    assert.equal(dispatch.parentSpanId, rpc.spanId);
    const runnerExec = byName("runner.execute");
    assert.equal(runnerExec.service, "mcp-runner");
    assert.equal(runnerExec.parentSpanId, dispatch.spanId, "W3C context crossed the mTLS hop");
    assert.equal(byName("sandbox.spawn").parentSpanId, runnerExec.spanId);
    assert.equal(byName("task.run").parentSpanId, runnerExec.spanId);
  });

  it("keeps the gateway's own trace id in the audit record and the caller's traceparent apart", async () => {
    const token = await gw.token("tracy", ["developer"]);
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const res = await fetch(`${gw.url}/mcp.McpService/ExecuteCommand`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
        traceparent: `00-${traceId}-b7ad6b7169203331-01`,
      },
      body: JSON.stringify({ command: "true" }),
    });
    assert.equal(res.status, 200);
    // The response may arrive before the edge's log line is flushed to its stdout pipe.
    const findLine = () =>
      gw.edge
        .stdout()
        .split("\n")
        .find((l) => l.includes(`"clientTraceId":"${traceId}"`));
    let line = findLine();
    for (let i = 0; i < 50 && !line; i++) {
      await new Promise((r) => setTimeout(r, 100));
      line = findLine();
    }
    assert.ok(line, "an edge log line carries the caller's trace id as clientTraceId");
    const own = (JSON.parse(line) as { traceId: string }).traceId;
    assert.match(own, /^[0-9a-f]{32}$/);
    assert.notEqual(own, traceId);
    assert.doesNotMatch(gw.edge.stdout(), /Bearer ey/, "tokens never reach the logs");
    const exported = await runCli(["audit", "export"], { MCP_GATEWAY_DATA_DIR: gw.dataDir });
    const records = exported.stdout
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            traceId: string;
            operation: string;
            details: { clientTraceparent?: string };
          },
      );
    const record = records.find((r) => r.traceId === own && r.operation === "execute");
    assert.ok(record, "the audit record carries the gateway's trace id");
    assert.equal(record.details.clientTraceparent, `00-${traceId}-b7ad6b7169203331-01`);
    assert.ok(!records.some((r) => r.traceId === traceId), "never the caller's");
  });
});
