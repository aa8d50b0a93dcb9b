import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createMtlsTransport } from "@mcp-gateway/common/mtls-transport";
import { peerIdentities, type TlsMaterial, TRUST_DOMAIN } from "@mcp-gateway/common/tls";
import { RegistryService } from "@mcp-gateway/proto/runner/v1";
import type { Logger } from "pino";
import type { PeerRefusals } from "./peer-refusals.js";

/** What the runner reports with each heartbeat. */
export interface RunnerStatus {
  runningTasks: number;
  maxTasks: number;
  sandboxReady: boolean;
  sandboxProblem: string;
  policyRevision: string;
  bootId: string;
}

/** Options for {@link startHeartbeats}. */
export interface HeartbeatOptions {
  runnerId: string;
  /** URL edges dial to reach this runner. */
  url: string;
  /** Internal mTLS URLs of the edges. */
  edges: readonly string[];
  intervalMs: number;
  tls: TlsMaterial;
  status: () => RunnerStatus;
  /** Refused connections, reported with the next heartbeat (put back when it fails). */
  refusals?: PeerRefusals;
  logger: Logger;
}

/** Running heartbeats. */
export interface Heartbeats {
  /** Installs rotated certificates. */
  rotate(tls: TlsMaterial): void;
  /** Stops heartbeating and deregisters from every edge (bounded). */
  stop(): Promise<void>;
}

const EDGE_ID = new RegExp(`^spiffe://${TRUST_DOMAIN}/edge/[^/]+$`);

/** TLS check for the edges' internal port: a verified chain, the host name, and an edge identity. */
function checkEdgeIdentity(host: string, cert: PeerCertificate): Error | undefined {
  if (!peerIdentities(cert).some((id) => EDGE_ID.test(id))) {
    return new Error(`the server at ${host} does not present an edge identity`);
  }
  return checkServerIdentity(host, cert);
}

/**
 * Registers the runner with every configured edge and keeps it registered
 * with heartbeats over mTLS; a runner that stops heartbeating is taken out by
 * the edges within their heartbeat timeout.
 */
export function startHeartbeats(options: HeartbeatOptions): Heartbeats {
  const { logger } = options;
  let tls = options.tls;
  let interval = options.intervalMs;
  const clientFor = (url: string): Client<typeof RegistryService> =>
    createClient(
      RegistryService,
      createMtlsTransport({ baseUrl: url, tls, checkServerIdentity: checkEdgeIdentity }),
    );
  let clients = options.edges.map((url) => ({ url, client: clientFor(url), ok: true }));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const beat = async () => {
    const s = options.status();
    // Refusals go to one edge (the first that answers; every edge writes the same chain).
    let refusals = options.refusals?.drain() ?? [];
    await Promise.all(
      clients.map(async (c) => {
        const mine = refusals;
        refusals = [];
        try {
          const res = await c.client.heartbeat(
            {
              runnerId: options.runnerId,
              url: options.url,
              runningTasks: s.runningTasks,
              maxTasks: s.maxTasks,
              sandboxReady: s.sandboxReady,
              sandboxProblem: s.sandboxProblem,
              policyRevision: s.policyRevision,
              bootId: s.bootId,
              refusals: mine,
            },
            { timeoutMs: Math.max(500, interval) },
          );
          if (res.intervalMs > 0) interval = res.intervalMs;
          if (!c.ok) logger.info({ edge: c.url }, "registered with edge again");
          c.ok = true;
        } catch (err) {
          options.refusals?.restore(mine);
          if (c.ok)
            logger.warn(
              { edge: c.url, err: ConnectError.from(err).rawMessage },
              "heartbeat to edge failed",
            );
          c.ok = false;
        }
      }),
    );
  };
  const loop = async () => {
    if (stopped) return;
    await beat();
    if (!stopped) timer = setTimeout(() => void loop(), interval);
  };
  void loop();

  return {
    rotate(next) {
      tls = next;
      clients = clients.map((c) => ({ ...c, client: clientFor(c.url) }));
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await Promise.all(
        clients.map((c) =>
          c.client
            .deregister({ runnerId: options.runnerId }, { timeoutMs: 1000 })
            .catch(() => undefined),
        ),
      );
    },
  };
}
