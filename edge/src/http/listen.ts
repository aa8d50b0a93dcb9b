import { once } from "node:events";
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
import {
  type ConnectionGate,
  type ConnectionLimits,
  connectionLimitsSchema,
  guardConnections,
  guardHttp1,
  guardHttp2Sessions,
  http2ServerOptions,
  jittered,
} from "@mcp-gateway/common/connection-guard";
import { trackHttp2Sessions } from "@mcp-gateway/common/http2-sessions";

/** A request listener for both HTTP/1.1 and HTTP/2. */
export type DualListener = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

/** Options for {@link listenDual}. */
export interface ListenOptions {
  host: string;
  port: number;
  /** With TLS: h2 and HTTP/1.1 negotiated by ALPN. Without: h2c (prior knowledge) and HTTP/1.1 on one port. */
  tls?: { certPath: string; keyPath: string };
  listener: DualListener;
  /** Connection discipline (caps, deadlines, HTTP/2 settings); defaults from `connectionLimitsSchema`. */
  limits?: ConnectionLimits;
}

/** A listening edge port. */
export interface DualServer {
  /** Base URL, e.g. http://127.0.0.1:8081. */
  url: string;
  port: number;
  /** Open and refused connection counts. */
  connections: ConnectionGate;
  /** Stops accepting connections, closes idle ones, resolves when all are closed or after timeoutMs. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * A duplex stream over `socket` that first yields `head` (bytes already read
 * from it), then everything else the socket receives. Exposes the socket's
 * addresses so request handlers still see the peer.
 */
function replaying(socket: Socket, head: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  duplex.push(head);
  socket.on("data", (d: Buffer) => {
    if (!duplex.push(d)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("close", () => duplex.destroy());
  socket.on("error", (e) => duplex.destroy(e));
  for (const key of [
    "remoteAddress",
    "remotePort",
    "remoteFamily",
    "localAddress",
    "localPort",
  ] as const) {
    Object.defineProperty(duplex, key, { get: () => socket[key] });
  }
  return duplex;
}

/** The client preface every HTTP/2 connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves one port for gRPC (HTTP/2 with trailers), gRPC-Web and Connect
 * (HTTP/1.1 or HTTP/2). In plaintext it peeks at the first bytes of each
 * connection: the HTTP/2 preface goes to the h2c server, anything else to the
 * HTTP/1.1 server — so `curl` and `grpcurl -plaintext` both work.
 *
 * Every path runs the same connection discipline (issue 21): total and
 * per-address caps at accept, an absolute deadline for the TLS handshake or
 * the sniff and then for the first request's headers, request-body and
 * keep-alive deadlines for HTTP/1.1 (implemented here: the HTTP/1.1 server is
 * fed with `emit("connection")` and never listens, so Node's own
 * `headersTimeout`/`requestTimeout` checks never run), and HTTP/2 SETTINGS,
 * first-stream, idle-session and request deadlines.
 */
export async function listenDual(options: ListenOptions): Promise<DualServer> {
  const limits = options.limits ?? connectionLimitsSchema.parse({});
  const sockets = new Set<Socket>();
  let server: net.Server;
  let closeSessions: () => void;
  if (options.tls) {
    const h2 = http2.createSecureServer(
      {
        ...http2ServerOptions(limits),
        cert: readFileSync(options.tls.certPath),
        key: readFileSync(options.tls.keyPath),
        allowHTTP1: true,
        minVersion: "TLSv1.2",
        // No Nagle delay on small frames (issue 13).
        noDelay: true,
      },
      options.listener,
    );
    guardHttp2Sessions(h2, limits);
    const h1 = guardHttp1(h2, limits);
    // The handshake has its own deadline (handshakeTimeout); then HTTP/1.1 gets the headers deadline.
    h2.on("secureConnection", (s: Socket & { alpnProtocol?: string | false }) => {
      if (s.alpnProtocol !== "h2") h1.arm(s);
    });
    closeSessions = trackHttp2Sessions(h2);
    server = h2;
  } else {
    const h1 = http.createServer({ maxHeaderSize: limits.maxHeaderListSize }, options.listener);
    const h1Guard = guardHttp1(h1, limits);
    const h2 = http2.createServer(http2ServerOptions(limits), options.listener);
    guardHttp2Sessions(h2, limits);
    const closeH2 = trackHttp2Sessions(h2);
    closeSessions = () => {
      closeH2();
      h1.closeIdleConnections();
    };
    server = net.createServer((socket) => {
      // Small gRPC/Connect frames must not wait for the peer's delayed ACK (Nagle:
      // +40 ms per exchange; issue 13). The h2 server only sees a JS stream here.
      socket.setNoDelay(true);
      socket.once("error", () => socket.destroy());
      // An absolute deadline to send enough to choose a protocol: a byte every few
      // seconds does not extend it (an idle timeout would be reset by each).
      const sniffDeadline = setTimeout(() => socket.destroy(), jittered(limits.headersTimeoutMs));
      sniffDeadline.unref();
      socket.once("close", () => clearTimeout(sniffDeadline));
      let seen = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        const n = Math.min(seen.length, H2_PREFACE.length);
        const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
        if (isH2 && seen.length < H2_PREFACE.length) return; // need more bytes to decide
        socket.off("data", onData);
        clearTimeout(sniffDeadline);
        socket.pause();
        if (isH2) {
          // The h2 server reads a net.Socket's native handle directly and would miss
          // bytes already read here; a JS stream that replays them works (Node wraps it).
          h2.emit("connection", replaying(socket, seen));
        } else {
          socket.unshift(seen);
          h1Guard.arm(socket);
          h1.emit("connection", socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
    });
  }
  // Registered before the protocol handlers see the socket's data: refused sockets never reach them.
  const connections = guardConnections(server, limits);
  server.on("connection", (s: Socket) => {
    if (s.destroyed) return;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.listen(options.port, options.host);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `${options.tls ? "https" : "http"}://${host}:${port}`,
    port,
    connections,
    async close(timeoutMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      closeSessions();
      const timer = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, timeoutMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
