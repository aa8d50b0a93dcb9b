import { once } from "node:events";
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
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
}

/** A listening edge port. */
export interface DualServer {
  /** Base URL, e.g. http://127.0.0.1:8081. */
  url: string;
  port: number;
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
 */
export async function listenDual(options: ListenOptions): Promise<DualServer> {
  const sockets = new Set<Socket>();
  let server: net.Server;
  let closeSessions: () => void;
  if (options.tls) {
    const h2 = http2.createSecureServer(
      {
        cert: readFileSync(options.tls.certPath),
        key: readFileSync(options.tls.keyPath),
        allowHTTP1: true,
        minVersion: "TLSv1.2",
      },
      options.listener,
    );
    closeSessions = trackHttp2Sessions(h2);
    server = h2;
  } else {
    const h1 = http.createServer(options.listener);
    h1.keepAliveTimeout = 5000;
    const h2 = http2.createServer({}, options.listener);
    const closeH2 = trackHttp2Sessions(h2);
    closeSessions = () => {
      closeH2();
      h1.closeIdleConnections();
    };
    server = net.createServer((socket) => {
      socket.once("error", () => socket.destroy());
      // A client that never sends enough to choose a protocol does not hold the socket.
      socket.setTimeout(10_000, () => socket.destroy());
      let seen = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        const n = Math.min(seen.length, H2_PREFACE.length);
        const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
        if (isH2 && seen.length < H2_PREFACE.length) return; // need more bytes to decide
        socket.off("data", onData);
        socket.setTimeout(0);
        socket.pause();
        if (isH2) {
          // The h2 server reads a net.Socket's native handle directly and would miss
          // bytes already read here; a JS stream that replays them works (Node wraps it).
          h2.emit("connection", replaying(socket, seen));
        } else {
          socket.unshift(seen);
          h1.emit("connection", socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
    });
  }
  server.on("connection", (s: Socket) => {
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
