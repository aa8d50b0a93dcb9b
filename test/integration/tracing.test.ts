import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Gateway, runCli, startGateway, waitForTask } from "./harness.js";
import { type SinkSpan, startSpanSink } from "./otlp-sink.js";

/** A real OTLP/HTTP receiver: decodes what the exporters send (JSON encoding). */
let sink: Awaited<ReturnType<typeof startSpanSink>>;
let spans: readonly SinkSpan[] = [];
let gw: Gateway;

before(async () => {
  sink = await startSpanSink();
  spans = sink.spans;
  gw = await startGateway({ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: sink.endpoint } });
});

after(async () => {
  await gw?.stop();
  await sink?.close();
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
    let mine: SinkSpan[] = [];
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
