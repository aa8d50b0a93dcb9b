import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { RunnerService } from "@mcp-gateway/proto/runner/v1";
import { createLeanGrpcHandler, createLeanGrpcTransport, parseTimeout } from "./lean-grpc.js";

/** What the service saw, for the assertions. */
const seen = {
  aborted: [] as string[],
  finalized: [] as string[],
  header: "",
};

function waitForAbort(ctx: HandlerContext, id: string): Promise<never> {
  return new Promise((_, reject) => {
    ctx.signal.addEventListener("abort", () => {
      seen.aborted.push(id);
      reject(ctx.signal.reason);
    });
  });
}

const impl: Partial<ServiceImpl<typeof RunnerService>> = {
  info(_req, ctx) {
    seen.header = ctx.requestHeader.get("x-probe") ?? "";
    return { runnerId: "r1", version: seen.header };
  },
  async release(req, ctx) {
    if (req.taskId === "full") {
      throw new ConnectError("runner r1 is full: 4/4 tasks «100 %»", Code.ResourceExhausted);
    }
    if (req.taskId === "plain") throw new Error("something broke");
    if (req.taskId === "slow") await waitForAbort(ctx, req.taskId);
    return { released: true };
  },
  writeFile() {
    return {};
  },
  readFile() {
    const content = new Uint8Array(8 * 1024 * 1024);
    for (let i = 0; i < content.length; i += 4096) content[i] = (i / 4096) % 251;
    return { content };
  },
  async *execute(req, ctx) {
    try {
      for (let seq = 1n; seq <= 3n; seq++) {
        yield { event: { seq, event: { case: "output", value: { data: new Uint8Array([65]) } } } };
        if (req.taskId === "fail-mid") throw new ConnectError("sandbox died", Code.Internal);
        if (req.taskId === "endless") await waitForAbort(ctx, req.taskId);
      }
      if (req.taskId === "many") {
        for (let seq = 4n; seq < 1004n; seq++) {
          yield {
            event: { seq, event: { case: "output", value: { data: new Uint8Array(4096) } } },
          };
        }
      }
    } finally {
      seen.finalized.push(req.taskId);
    }
  },
};

/** A client on the lean transport, with Connect's gRPC transport on the same connection as fallback. */
function leanClient(url: string, readMaxBytes?: number) {
  const sm = new Http2SessionManager(url);
  const transport = createLeanGrpcTransport({
    baseUrl: url,
    sessionManager: sm,
    fallback: createGrpcTransport({ baseUrl: url, sessionManager: sm }),
    ...(readMaxBytes === undefined ? {} : { readMaxBytes }),
  });
  return { sm, client: createClient(RunnerService, transport) };
}

describe("lean gRPC handler and transport (ADR 0025)", () => {
  let server: http2.Http2Server;
  let url: string;
  let leanCalls = 0;
  let lean: Client<typeof RunnerService>;
  let connectGrpc: Client<typeof RunnerService>;
  let connectJson: Client<typeof RunnerService>;
  let sessions: Http2SessionManager[];

  before(async () => {
    const handler = createLeanGrpcHandler(RunnerService, impl, { readMaxBytes: 1024 });
    const connect = connectNodeAdapter({
      routes: (router) => router.service(RunnerService, impl),
      readMaxBytes: 1024,
    });
    server = http2.createServer((req, res) => {
      if (handler(req, res)) leanCalls++;
      else connect(req, res);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const main = leanClient(url, 9 * 1024 * 1024);
    const sm2 = new Http2SessionManager(url);
    const sm3 = new Http2SessionManager(url);
    sessions = [main.sm, sm2, sm3];
    lean = main.client;
    connectGrpc = createClient(
      RunnerService,
      createGrpcTransport({ baseUrl: url, sessionManager: sm2 }),
    );
    connectJson = createClient(
      RunnerService,
      createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: sm3 }),
    );
  });

  after(() => {
    for (const sm of sessions) sm.abort();
    server.close();
  });

  it("answers unary calls from either client, and passes request headers", async () => {
    const before = leanCalls;
    const a = await lean.info({}, { headers: { "x-probe": "lean" } });
    assert.equal(a.runnerId, "r1");
    assert.equal(a.version, "lean");
    const b = await connectGrpc.info({}, { headers: { "x-probe": "connect" } });
    assert.equal(b.version, "connect");
    assert.equal(leanCalls - before, 2, "both gRPC calls were served by the lean handler");
    assert.deepEqual(await lean.release({ taskId: "t" }), {
      $typeName: "mcp.runner.v1.ReleaseResponse",
      released: true,
    });
  });

  it("leaves the Connect protocol, client streams and unknown methods to Connect", async () => {
    const before = leanCalls;
    assert.equal((await connectJson.info({})).runnerId, "r1");
    await assert.rejects(
      async () => {
        for await (const _ of lean.mcpServer((async function* () {})())) {
          // nothing arrives
        }
      },
      (err: ConnectError) => err.code === Code.Unimplemented,
    );
    await assert.rejects(lean.cancel({ taskId: "x" }), (err: ConnectError) => {
      assert.equal(err.code, Code.Unimplemented);
      return true;
    });
    assert.equal(leanCalls, before, "none of these went through the lean handler");
  });

  it("carries error codes and messages, percent-encoded, both ways", async () => {
    for (const client of [lean, connectGrpc]) {
      await assert.rejects(client.release({ taskId: "full" }), (err: ConnectError) => {
        assert.equal(err.code, Code.ResourceExhausted);
        assert.equal(err.rawMessage, "runner r1 is full: 4/4 tasks «100 %»");
        return true;
      });
      await assert.rejects(client.release({ taskId: "plain" }), (err: ConnectError) => {
        assert.equal(err.code, Code.Unknown);
        assert.equal(err.rawMessage, "something broke");
        return true;
      });
    }
  });

  it("streams messages in order, then an error that follows them", async () => {
    for (const client of [lean, connectGrpc]) {
      const seqs: bigint[] = [];
      for await (const res of client.execute({ taskId: "ok" })) seqs.push(res.event?.seq ?? 0n);
      assert.deepEqual(seqs, [1n, 2n, 3n]);
      const got: bigint[] = [];
      await assert.rejects(
        async () => {
          for await (const res of client.execute({ taskId: "fail-mid" })) {
            got.push(res.event?.seq ?? 0n);
          }
        },
        (err: ConnectError) => err.code === Code.Internal && err.rawMessage === "sandbox died",
      );
      assert.deepEqual(got, [1n]);
    }
  });

  it("keeps a slow consumer's stream whole (flow control, no loss)", async () => {
    let count = 0;
    let bytes = 0;
    for await (const res of lean.execute({ taskId: "many" })) {
      count++;
      if (res.event?.event.case === "output") bytes += res.event.event.value.data.length;
      if (count % 100 === 0) await sleep(5);
    }
    assert.equal(count, 1003);
    assert.equal(bytes, 3 + 1000 * 4096);
  });

  it("receives an 8 MiB message whole (many HTTP/2 chunks, joined once)", async () => {
    const res = await lean.readFile({ path: "big" });
    assert.equal(res.content.length, 8 * 1024 * 1024);
    for (let i = 0; i < res.content.length; i += 4096) {
      assert.equal(res.content[i], (i / 4096) % 251, `byte ${i}`);
    }
  });

  it("aborts the handler's signal and ends its generator when the client cancels", async () => {
    const controller = new AbortController();
    const got: bigint[] = [];
    await assert.rejects(
      async () => {
        for await (const res of lean.execute(
          { taskId: "endless" },
          { signal: controller.signal },
        )) {
          got.push(res.event?.seq ?? 0n);
          controller.abort();
        }
      },
      (err: ConnectError) => err.code === Code.Canceled,
    );
    assert.deepEqual(got, [1n]);
    for (let i = 0; i < 100 && !seen.finalized.includes("endless"); i++) await sleep(10);
    assert.ok(seen.aborted.includes("endless"), "the server saw the cancellation");
    assert.ok(seen.finalized.includes("endless"), "the generator's finally ran");
  });

  it("enforces deadlines on both sides", async () => {
    for (const client of [lean, connectGrpc]) {
      seen.aborted = [];
      await assert.rejects(
        client.release({ taskId: "slow" }, { timeoutMs: 50 }),
        (err: ConnectError) => err.code === Code.DeadlineExceeded,
      );
      for (let i = 0; i < 100 && seen.aborted.length === 0; i++) await sleep(10);
      assert.deepEqual(seen.aborted, ["slow"], "the handler's signal fired at the deadline");
    }
  });

  it("refuses a request message larger than readMaxBytes", async () => {
    await assert.rejects(
      lean.writeFile({ path: "f", content: new Uint8Array(4096) }),
      (err: ConnectError) =>
        err.code === Code.ResourceExhausted && /readMaxBytes 1024/.test(err.rawMessage),
    );
    assert.equal(
      (await lean.writeFile({ path: "f", content: new Uint8Array(512) })).$typeName,
      "mcp.runner.v1.WriteFileResponse",
    );
  });

  it("answers malformed gRPC requests with a clear status, never a hang", async () => {
    const session = http2.connect(url);
    try {
      const call = async (body: Buffer, extra: http2.OutgoingHttpHeaders = {}) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/mcp.runner.v1.RunnerService/Info",
          "content-type": "application/grpc",
          ...extra,
        });
        stream.end(body);
        const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
        let trailers: http2.IncomingHttpHeaders = headers;
        stream.on("trailers", (t) => {
          trailers = t;
        });
        stream.resume();
        await once(stream, "close");
        return { status: trailers["grpc-status"], message: trailers["grpc-message"] };
      };
      assert.deepEqual(await call(Buffer.alloc(0)), {
        status: String(Code.Unimplemented),
        message: encodeURIComponent("protocol error: missing input message for unary method"),
      });
      const two = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      assert.equal((await call(two)).status, String(Code.Unimplemented));
      assert.equal(
        (await call(Buffer.from([0, 0, 0, 0, 9, 1]))).status,
        String(Code.InvalidArgument),
      );
      assert.equal((await call(Buffer.from([1, 0, 0, 0, 0]))).status, String(Code.Internal));
      assert.equal(
        (await call(Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]))).status,
        String(Code.InvalidArgument),
        "an unparsable message",
      );
      assert.equal(
        (await call(Buffer.from([0, 0, 0, 0, 0]), { "grpc-timeout": "soon" })).status,
        String(Code.InvalidArgument),
      );
    } finally {
      session.close();
    }
  });

  it("parses grpc-timeout as the gRPC spec writes it", () => {
    assert.equal(parseTimeout("1S"), 1000);
    assert.equal(parseTimeout("250m"), 250);
    assert.equal(parseTimeout("2M"), 120_000);
    assert.equal(parseTimeout("1500u"), 1.5);
    assert.equal(parseTimeout("123456789m"), undefined, "at most 8 digits");
    assert.equal(parseTimeout("-1m"), undefined);
    assert.equal(parseTimeout("10"), undefined);
  });

  it("keeps the deadline and the signal while the connection is still being made", {
    timeout: 10_000,
  }, async () => {
    // A peer that accepts TCP and never answers the TLS handshake.
    const open: Socket[] = [];
    const silent = createNetServer((socket) => open.push(socket));
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    const stuckUrl = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const { sm, client } = leanClient(stuckUrl);
    try {
      await assert.rejects(
        client.info({}, { timeoutMs: 200 }),
        (err: ConnectError) => err.code === Code.DeadlineExceeded,
      );
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      await assert.rejects(
        client.info({}, { signal: controller.signal }),
        (err: ConnectError) => err.code === Code.Canceled,
      );
    } finally {
      sm.abort();
      silent.close();
      for (const socket of open) socket.destroy();
    }
  });

  it("reports a refused connection as Unavailable with its cause", async () => {
    const closed = http2.createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    closed.close();
    await once(closed, "close");
    const { sm, client } = leanClient(deadUrl);
    await assert.rejects(client.info({}), (err: ConnectError) => {
      assert.equal(err.code, Code.Unavailable);
      const codes: unknown[] = [];
      for (let c: unknown = err.cause; c instanceof Error; c = (c as { cause?: unknown }).cause) {
        codes.push((c as NodeJS.ErrnoException).code);
      }
      assert.ok(codes.includes("ECONNREFUSED"), `cause chain ${codes.join(",")}`);
      return true;
    });
    sm.abort();
  });
});
