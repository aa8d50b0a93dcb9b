import { once } from "node:events";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  type ConnectionLimits,
  connectionLimitsSchema,
  guardConnections,
  guardHttp2Sessions,
  http2ServerOptions,
} from "@mcp-gateway/common/connection-guard";
import { trackHttp2Sessions } from "@mcp-gateway/common/http2-sessions";
import {
  isAllowedPeer,
  mtlsServerOptions,
  peerIdentities,
  runnerIdentity,
  type TlsMaterial,
  TRUST_DOMAIN,
} from "@mcp-gateway/common/tls";
import { type PeerRefusal, RegistryService } from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import type { RunnerRegistry } from "../store/open.js";

/** URI SANs of the calling runner's certificate. */
const peerIdsKey = createContextKey<string[]>([], { description: "peer identities" });

/** Options for {@link startRegistryServer}. */
export interface RegistryServerOptions {
  host: string;
  port: number;
  /** The edge's certificate (serverAuth) and the CA that signs runner certificates. */
  tls: TlsMaterial;
  registry: RunnerRegistry;
  /** Interval the edge asks runners to heartbeat at, ms. */
  heartbeatIntervalMs: number;
  /** Connection caps, deadlines and HTTP/2 settings (default: `connectionLimitsSchema` defaults). */
  limits?: ConnectionLimits;
  logger: Logger;
  /**
   * Called when a client is refused for its identity: a certificate that is not a runner's, or a
   * runner speaking for another runner (recorded as a security event in the audit chain).
   */
  onRefused?: (peer: string, identities: readonly string[], reason: string) => void;
  /** Hears of the connections a runner refused at its own port, reported with its heartbeat. */
  onRunnerRefusals?: (runnerId: string, refusals: readonly PeerRefusal[]) => void;
}

/** The edge's internal mTLS port. */
export interface RegistryServer {
  url: string;
  /** Installs rotated certificates. */
  rotate(tls: TlsMaterial): void;
  close(): Promise<void>;
}

/**
 * Serves RegistryService on the edge's internal port, over mutual TLS only:
 * only clients whose certificate names a runner connect, and a runner may
 * register only the id its certificate names.
 */
export async function startRegistryServer(options: RegistryServerOptions): Promise<RegistryServer> {
  const { registry, logger } = options;
  const allowed = [`spiffe://${TRUST_DOMAIN}/runner/*`];
  const assertSpeaksFor = (ids: string[], runnerId: string) => {
    if (!ids.includes(runnerIdentity(runnerId))) {
      options.onRefused?.("", ids, `speaks for runner ${runnerId}`);
      throw new ConnectError(
        `certificate identity ${ids.join(", ") || "(none)"} may not speak for runner ${runnerId}`,
        Code.PermissionDenied,
      );
    }
  };
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(RegistryService, {
        async heartbeat(req, ctx) {
          assertSpeaksFor(ctx.values.get(peerIdsKey), req.runnerId);
          let url: URL;
          try {
            url = new URL(req.url);
          } catch {
            throw new ConnectError(
              `url "${req.url.slice(0, 100)}" is not a URL`,
              Code.InvalidArgument,
            );
          }
          if (url.protocol !== "https:")
            throw new ConnectError("runner url must be https://", Code.InvalidArgument);
          const max = Math.max(1, req.maxTasks);
          await registry.heartbeat({
            id: req.runnerId,
            url: url.toString().replace(/\/$/, ""),
            load: Math.min(1, req.runningTasks / max),
            healthy: req.sandboxReady,
            bootId: req.bootId,
          });
          if (req.refusals.length > 0) options.onRunnerRefusals?.(req.runnerId, req.refusals);
          return { intervalMs: options.heartbeatIntervalMs };
        },
        async deregister(req, ctx) {
          assertSpeaksFor(ctx.values.get(peerIdsKey), req.runnerId);
          await registry.remove(req.runnerId);
          logger.info({ runner: req.runnerId }, "runner deregistered");
          return {};
        },
      }),
    contextValues: (req) => {
      const socket = req.socket as TLSSocket;
      const cert =
        typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
      return createContextValues().set(
        peerIdsKey,
        cert && Object.keys(cert).length > 0 ? peerIdentities(cert) : [],
      );
    },
  });
  const limits = options.limits ?? connectionLimitsSchema.parse({});
  const server = http2.createSecureServer(
    { ...http2ServerOptions(limits), ...mtlsServerOptions(options.tls) },
    handler,
  );
  // Connection discipline (issue 21): caps at accept, handshake/first-stream/idle deadlines.
  guardConnections(server, limits);
  guardHttp2Sessions(server, limits);
  server.on("secureConnection", (socket: TLSSocket) => {
    if (!isAllowedPeer(socket, allowed)) {
      const cert = socket.getPeerCertificate();
      options.onRefused?.(
        socket.remoteAddress ?? "",
        cert && Object.keys(cert).length > 0 ? peerIdentities(cert) : [],
        "not a runner identity",
      );
      logger.warn(
        { peer: socket.remoteAddress },
        "internal port: refused a client that is not a runner",
      );
      socket.destroy();
    }
  });
  const closeSessions = trackHttp2Sessions(server);
  server.listen(options.port, options.host);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `https://${host}:${port}`,
    rotate(tls) {
      server.setSecureContext(mtlsServerOptions(tls));
    },
    async close() {
      closeSessions();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
