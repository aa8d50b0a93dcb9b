import { isIP } from "node:net";
import { type PeerCertificate, connect as tlsConnect } from "node:tls";
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createLeanGrpcTransport } from "./lean-grpc.js";
import type { TlsMaterial } from "./tls/material.js";

/** Options for {@link createMtlsTransport}. */
export interface MtlsTransportOptions {
  /** https URL of the peer. */
  baseUrl: string;
  /** This party's certificate and key, and the CA bundle that verifies the peer. */
  tls: TlsMaterial;
  /** Checks the peer's identity after its chain verified (e.g. checkRunnerIdentity). */
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
  /** HTTP/2 keep-alive pings, so a dead peer is noticed (default 10 s). */
  pingIntervalMs?: number;
}

/**
 * A gRPC transport for the internal edge ↔ runner links: HTTP/2 over TLS 1.3
 * with a client certificate and a peer identity check, one connection per
 * transport (keep-alive pings, closed after 60 s idle). Rebuild it when the
 * certificates rotate.
 */
export function createMtlsTransport(options: MtlsTransportOptions): Transport {
  const ping = options.pingIntervalMs ?? 10_000;
  const tls = {
    ca: options.tls.ca,
    cert: options.tls.cert,
    key: options.tls.key,
    minVersion: "TLSv1.3" as const,
    checkServerIdentity: options.checkServerIdentity,
  };
  const sessionManager = new Http2SessionManager(
    options.baseUrl,
    { pingIntervalMs: ping, pingTimeoutMs: ping, idleConnectionTimeoutMs: 60_000 },
    {
      ...tls,
      // What http2.connect does for https, plus TCP_NODELAY: requests and events are
      // small frames, and Nagle held each behind the peer's delayed ACK (+40 ms per
      // round trip; issue 13). tls.connect has no noDelay option of its own.
      createConnection: (authority: URL) => {
        const host = authority.hostname.replace(/^\[|\]$/g, "");
        const socket = tlsConnect({
          ...tls,
          host,
          port: Number(authority.port) || 443,
          ALPNProtocols: ["h2"],
          ...(isIP(host) ? {} : { servername: host }),
        });
        socket.setNoDelay(true);
        return socket;
      },
    },
  );
  // Unary and server-streaming calls go straight onto HTTP/2 streams (ADR 0025); client and
  // bidirectional streams (McpServer) through Connect's transport, on the same connection.
  return createLeanGrpcTransport({
    baseUrl: options.baseUrl,
    sessionManager,
    fallback: createGrpcTransport({ baseUrl: options.baseUrl, sessionManager }),
  });
}
