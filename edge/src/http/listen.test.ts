import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { connectionLimitsSchema } from "@mcp-gateway/common/connection-guard";
import { ensureDevPki } from "@mcp-gateway/common/tls";
import { type DualServer, listenDual } from "./listen.js";

/** Small limits so each deadline is observed within a test; the defaults are larger. */
const limits = connectionLimitsSchema.parse({
  maxConnections: 40,
  maxConnectionsPerAddress: 6,
  headersTimeoutMs: 400,
  requestTimeoutMs: 600,
  keepAliveTimeoutMs: 300,
  idleTimeoutMs: 500,
});

/** Longest a test waits for the server to act: far beyond every deadline above. */
const PATIENCE_MS = 8000;

const listener = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
};

interface Raw {
  socket: net.Socket;
  closed: Promise<void>;
  isClosed(): boolean;
}

function connect(port: number, localAddress = "127.0.0.1"): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    let closed = false;
    const done = new Promise<void>((r) =>
      socket.once("close", () => {
        closed = true;
        r();
      }),
    );
    socket.on("error", () => undefined);
    socket.once("connect", () => resolve({ socket, closed: done, isClosed: () => closed }));
    socket.once("error", reject);
  });
}

/**
 * Sends `bytes` one byte every `everyMs` until the server closes the
 * connection or PATIENCE_MS passed; resolves true when the server closed it
 * while bytes were still trickling in (an idle timeout would never fire).
 */
async function trickle(raw: Raw, bytes: Buffer, everyMs: number): Promise<boolean> {
  const until = Date.now() + PATIENCE_MS;
  let i = 0;
  while (!raw.isClosed() && Date.now() < until) {
    raw.socket.write(bytes.subarray(i % bytes.length, (i % bytes.length) + 1));
    i++;
    await Promise.race([raw.closed, new Promise((r) => setTimeout(r, everyMs))]);
  }
  const closed = raw.isClosed();
  raw.socket.destroy();
  return closed;
}

async function within(p: Promise<unknown>, ms = PATIENCE_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    p.then(() => true),
    new Promise<boolean>((res) => {
      timer = setTimeout(() => res(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return r;
}

function get(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: "/", localAddress, agent: false },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
  });
}

/** Waits until the server holds no connection (earlier tests' sockets are gone). */
async function drained(server: DualServer): Promise<void> {
  const until = Date.now() + PATIENCE_MS;
  while (server.connections.open() > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("listenDual plaintext: connection discipline (issue 21, finding 1)", () => {
  let server: DualServer;
  before(async () => {
    server = await listenDual({ host: "127.0.0.1", port: 0, listener, limits });
  });
  after(async () => {
    await server.close(100);
  });

  it("closes a half-sent HTTP/1.1 request (slowloris) even while bytes keep trickling in", async () => {
    const raw = await connect(server.port);
    raw.socket.write("POST /mcp.McpService/ExecuteCommand HTTP/1.1\r\nHost: x\r\n");
    assert.ok(await trickle(raw, Buffer.from("X-Slow: aaaaaaaa\r\n"), 50), "server closed it");
  });

  it("closes a connection whose protocol preface trickles in one byte at a time", async () => {
    const raw = await connect(server.port);
    assert.ok(await trickle(raw, Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r"), 60));
  });

  it("closes an HTTP/1.1 request whose body never arrives (request deadline)", async () => {
    const raw = await connect(server.port);
    raw.socket.write("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    assert.ok(await trickle(raw, Buffer.from("a"), 50));
  });

  it("closes an idle keep-alive connection after a response", async () => {
    const raw = await connect(server.port);
    let response = "";
    raw.socket.on("data", (d: Buffer) => (response += d.toString()));
    raw.socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.ok(await within(raw.closed), "closed after the keep-alive timeout");
    assert.match(response, /^HTTP\/1\.1 200/);
  });

  it("closes an h2c session that sends the preface and SETTINGS, then nothing", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    const closed = new Promise<void>((r) => session.once("close", () => r()));
    const goaway = new Promise<void>((r) => session.once("goaway", () => r()));
    assert.ok(await within(closed), "session closed by the server");
    assert.ok(await within(goaway, 10), "with a GOAWAY first");
  });

  it("keeps an h2c session with an open stream, then closes it once idle", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    const closed = new Promise<void>((r) => session.once("close", () => r()));
    const req = session.request({ ":method": "POST", ":path": "/" });
    req.on("error", () => undefined);
    req.resume();
    // The body is sent slowly but the stream completes within the request deadline.
    req.write("a");
    await new Promise((r) => setTimeout(r, limits.headersTimeoutMs + 100));
    const status = new Promise<number>((r) => req.once("response", (h) => r(Number(h[":status"]))));
    req.end("b");
    assert.equal(await status, 200, "a stream open past the first-stream deadline is not cut");
    assert.ok(await within(closed), "the idle session is closed afterwards");
  });

  it("resets an h2 stream whose request body never ends", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    const req = session.request({ ":method": "POST", ":path": "/" });
    req.on("error", () => undefined);
    req.write("a");
    const closed = new Promise<number>((r) => req.once("close", () => r(req.rstCode)));
    assert.ok(await within(closed), "stream closed by the server");
    assert.equal(await closed, http2.constants.NGHTTP2_CANCEL);
    session.destroy();
  });

  it("caps connections per address; other addresses are still served", async () => {
    await drained(server);
    const raws = await Promise.all(
      Array.from({ length: 10 }, () => connect(server.port, "127.0.0.2")),
    );
    // Refused connections are destroyed at accept: wait for the server to have seen all ten.
    const deadline = Date.now() + PATIENCE_MS;
    while (raws.filter((r) => r.isClosed()).length < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(raws.filter((r) => !r.isClosed()).length, limits.maxConnectionsPerAddress);
    assert.equal(server.connections.openFrom("127.0.0.2"), limits.maxConnectionsPerAddress);
    assert.equal(await get(server.port, "127.0.0.3"), 200);
    for (const r of raws) r.socket.destroy();
  });

  it("caps connections in total and refuses new ones fast instead of running out of descriptors", async () => {
    await drained(server);
    const raws: Raw[] = [];
    for (let a = 10; a < 20; a++) {
      for (let i = 0; i < 5; i++) raws.push(await connect(server.port, `127.0.0.${a}`));
    }
    const deadline = Date.now() + PATIENCE_MS;
    while (raws.filter((r) => r.isClosed()).length < 10 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(server.connections.open() <= (limits.maxConnections ?? 0));
    assert.equal(raws.filter((r) => !r.isClosed()).length, limits.maxConnections);
    for (const r of raws) r.socket.destroy();
    // Freed slots serve again.
    await drained(server);
    assert.equal(await get(server.port, "127.0.0.3"), 200);
  });
});

describe("listenDual: new connections per address per second (issue 21, flood)", () => {
  it("closes an address's connections past its rate and burst at once; other addresses are served", async () => {
    const server = await listenDual({
      host: "127.0.0.1",
      port: 0,
      listener,
      limits: connectionLimitsSchema.parse({
        newConnectionsPerAddressPerSecond: 1,
        newConnectionsBurstPerAddress: 4,
      }),
    });
    try {
      const raws = [];
      for (let i = 0; i < 7; i++) raws.push(await connect(server.port, "127.0.0.5"));
      const deadline = Date.now() + PATIENCE_MS;
      while (raws.filter((r) => r.isClosed()).length < 3 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(raws.filter((r) => !r.isClosed()).length, 4, "the burst is served");
      assert.equal(server.connections.refused(), 3);
      assert.equal(await get(server.port, "127.0.0.6"), 200, "another address is not affected");
      for (const r of raws) r.socket.destroy();
    } finally {
      await server.close(100);
    }
  });
});

describe("listenDual with TLS: connection discipline", () => {
  let server: DualServer;
  let dir: string;
  let ca: Buffer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "mcp-listen-"));
    const pki = await ensureDevPki({ dir, edgeIds: ["e1"], runnerIds: [] });
    const edge = pki.edges.e1;
    assert.ok(edge);
    ca = (await import("node:fs")).readFileSync(pki.caCertPath);
    server = await listenDual({
      host: "127.0.0.1",
      port: 0,
      listener,
      limits,
      tls: { certPath: edge.certPath, keyPath: edge.keyPath },
    });
  });
  after(async () => {
    await server.close(100);
    rmSync(dir, { recursive: true, force: true });
  });

  it("closes a connection that never completes the TLS handshake", async () => {
    const raw = await connect(server.port);
    assert.ok(await trickle(raw, Buffer.from([0x16, 0x03, 0x01]), 50));
  });

  it("closes a half-sent HTTP/1.1 request over TLS while bytes trickle in", async () => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: server.port,
      ca,
      servername: "localhost",
      ALPNProtocols: ["http/1.1"],
    });
    socket.on("error", () => undefined);
    await new Promise<void>((r) => socket.once("secureConnect", () => r()));
    let closed = false;
    const done = new Promise<void>((r) =>
      socket.once("close", () => {
        closed = true;
        r();
      }),
    );
    socket.write("POST / HTTP/1.1\r\nHost: x\r\n");
    const raw = { socket: socket as unknown as net.Socket, closed: done, isClosed: () => closed };
    assert.ok(await trickle(raw, Buffer.from("X-Slow: a\r\n"), 50));
  });

  it("closes an idle h2 session over TLS", async () => {
    const session = http2.connect(`https://localhost:${server.port}`, { ca });
    session.on("error", () => undefined);
    const closed = new Promise<void>((r) => session.once("close", () => r()));
    assert.ok(await within(closed));
  });
});
