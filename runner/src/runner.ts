import { createHash, randomUUID } from "node:crypto";
import { once } from "node:events";
import {
  closeSync,
  existsSync,
  fchmodSync,
  constants as fsConstants,
  fstatSync,
  mkdirSync,
  openSync,
  statSync,
} from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import type { TLSSocket } from "node:tls";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import {
  guardConnections,
  guardHttp2Sessions,
  http2ServerOptions,
} from "@mcp-gateway/common/connection-guard";
import { trackHttp2Sessions } from "@mcp-gateway/common/http2-sessions";
import { createLeanGrpcHandler } from "@mcp-gateway/common/lean-grpc";
import { createMetricsRegistry } from "@mcp-gateway/common/metrics";
import { nodeFallback } from "@mcp-gateway/common/node-fallback";
import { createPolicyEngine, type PolicyEngine } from "@mcp-gateway/common/policy";
import {
  edgeIdentity,
  ensureDevPki,
  isAllowedPeer,
  loadTlsMaterial,
  monitorIdentity,
  mtlsServerOptions,
  peerIdentities,
  type TlsFiles,
  watchTlsMaterial,
} from "@mcp-gateway/common/tls";
import { createTracing } from "@mcp-gateway/common/tracing";
import { RunnerService } from "@mcp-gateway/proto/runner/v1";
import { Hono } from "hono";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram } from "prom-client";
import type { RunnerConfig } from "./config.js";
import { createEgressStarter } from "./egress/index.js";
import { startHeartbeats } from "./heartbeat.js";
import { createMcpServerHost } from "./mcp-servers.js";
import { createPeerRefusals } from "./peer-refusals.js";
import { createSandbox, LANDLOCK_NET_ABI } from "./sandbox/index.js";
import { createRunnerService } from "./service.js";
import { createTaskManager } from "./task-manager.js";
import {
  createWorkspaceCleaner,
  createWorkspaceFs,
  createWorkspaceQuota,
  type WorkspaceFs,
  type WorkspaceQuota,
} from "./workspace/index.js";

/** A running runner agent. */
export interface Runner {
  /** https URL of the internal service. */
  url: string;
  port: number;
  policy: PolicyEngine;
  /** Kills running tasks, stops serving, closes. */
  close(): Promise<void>;
}

/**
 * Fails start-up unless the sandbox user can reach the workspace root: every
 * directory on the way must grant it search (x) permission, or bubblewrap
 * cannot bind the task's workspace.
 */
export function assertTraversable(dir: string, uid: number, gid: number): void {
  for (let d = dir; ; d = dirname(d)) {
    const st = statSync(d);
    const bit = st.uid === uid ? 0o100 : st.gid === gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      throw new Error(
        `workspace root ${dir} is not reachable by the sandbox user (uid ${uid}): ${d} has mode ` +
          `${(st.mode & 0o777).toString(8)}; run \`chmod o+x ${d}\` or set workspaceRoot elsewhere`,
      );
    }
    if (d === dirname(d)) return;
  }
}

/**
 * Lets the sandbox user traverse the gateway's own data directory when the workspaces live
 * inside it: a command that ran before the first runner (`mcp-gateway token` creates
 * `<data>/auth`) made the directory 0700, and the runner would then refuse to start. Narrow on
 * purpose: only a real directory (not a symlink; opened O_NOFOLLOW, changed through that
 * descriptor), owned by this process, of mode exactly 0700, that holds something the gateway
 * creates (auth/, pki/, audit/, gateway.db) — so a data directory pointed at /root or /var/lib
 * is left alone. Only the search bit for others is added (never read: it cannot be listed).
 * Returns whether the mode was changed.
 */
export function letSandboxTraverseDataDir(dataDir: string, workspaceRoot: string): boolean {
  const data = resolve(dataDir);
  const rel = relative(data, resolve(workspaceRoot));
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return false;
  if (!["auth", "pki", "audit", "gateway.db"].some((f) => existsSync(join(data, f)))) {
    return false;
  }
  let fd: number;
  try {
    fd = openSync(data, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const st = fstatSync(fd);
    if (st.uid !== process.getuid?.() || (st.mode & 0o7777) !== 0o700) return false;
    fchmodSync(fd, 0o701);
    return true;
  } finally {
    closeSync(fd);
  }
}

/** Where the runner's mTLS material lives (configured, or the dev PKI). */
export async function runnerTlsFiles(config: RunnerConfig): Promise<TlsFiles> {
  if (config.tls) return config.tls;
  const pki = await ensureDevPki({
    dir: join(config.dataDir, "pki"),
    edgeIds: config.allowedEdges,
    runnerIds: [config.id],
    monitorIds: config.allowedMonitors,
  });
  const mine = pki.runners[config.id];
  if (!mine) throw new Error(`dev PKI has no certificate for runner ${config.id}`);
  return { caPath: pki.caCertPath, certPath: mine.certPath, keyPath: mine.keyPath };
}

/**
 * Starts the runner agent: the internal RunnerService over mutual TLS only
 * (a client without a certificate from the configured CA is refused in the
 * handshake; a verified client whose identity is neither an allowed edge nor
 * an allowed monitor is disconnected right after it), plus `GET /metrics` and
 * `GET /health` on the same port, which monitors (`allowedMonitors`) may read
 * and nothing else (403).
 *
 * @example
 * const runner = await startRunner(runnerConfigSchema.parse({}), logger);
 */
export async function startRunner(config: RunnerConfig, logger: Logger): Promise<Runner> {
  const registry = createMetricsRegistry("runner");
  const tracing = createTracing({
    serviceName: "mcp-runner",
    instanceId: config.id,
    logger,
    ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}),
  });
  const spawnLatency = new Histogram({
    name: "mcp_sandbox_spawn_duration_seconds",
    help: "Time from spawning the sandbox to the task's process running.",
    buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const sandboxStarts = new Counter({
    name: "mcp_sandbox_starts_total",
    help: "Sandboxes started, by how: prepared-sandbox (ADR 0028), prepared-launcher (ADR 0020) or cold.",
    labelNames: ["start"],
    registers: [registry],
  });
  const runningGauge = new Gauge({
    name: "mcp_runner_tasks_running",
    help: "Sandboxed tasks running on this runner.",
    registers: [registry],
  });
  const retainedGauge = new Gauge({
    name: "mcp_runner_retained_event_bytes",
    help: "Bytes of task events held (finished, not yet released) or reserved (running).",
    registers: [registry],
  });
  const policy = await createPolicyEngine({
    bundlePath: resolve(config.policyBundle),
    logger: logger.child({ component: "policy" }),
  });
  const sandbox = createSandbox({
    ...(config.bwrapPath ? { bwrapPath: config.bwrapPath } : {}),
    ...(config.helperPath ? { helperPath: config.helperPath } : {}),
    sandboxUid: config.sandboxUid,
    sandboxGid: config.sandboxGid,
    cgroups: config.cgroups,
    requireCgroups: config.requireCgroups,
    landlock: config.landlock,
    requireLandlock: config.requireLandlock,
    totalTaskMemoryBytes: config.tasksMemoryBytes,
    preparedSandboxes: config.preparedSandboxes,
    preparedNamespaces: config.preparedNamespaces,
    logger: logger.child({ component: "sandbox" }),
  });
  // The self-check runs a real sandboxed process: do it at start and every 30 s, not per probe.
  let readiness = await sandbox.readiness();
  const recheckTimer = setInterval(() => {
    void sandbox.readiness().then((r) => {
      if (r.ready !== readiness.ready)
        logger.warn({ ready: r.ready, problem: r.problem }, "sandbox readiness changed");
      readiness = r;
    });
  }, 30_000);
  recheckTimer.unref();
  if (!readiness.ready) {
    logger.error(
      { problem: readiness.problem },
      "sandbox unavailable: tasks will be refused until it is fixed",
    );
  } else if (readiness.landlockAbi > 0 && readiness.landlockAbi < LANDLOCK_NET_ABI) {
    // Not a refusal (see connectPortsOf in sandbox/bwrap-argv.ts): the empty network namespace
    // stays the boundary of a "restricted" task; the missing second layer is said once here.
    logger.warn(
      { landlockAbi: readiness.landlockAbi },
      `Landlock ABI ${readiness.landlockAbi} has no TCP port rules (needs ${LANDLOCK_NET_ABI}, ` +
        'Linux 6.7): network "restricted" tasks may connect to any TCP port in their network ' +
        "namespace, not only the egress proxy's",
    );
  }
  const workspaceRoot = resolve(config.workspaceRoot ?? join(config.dataDir, "workspaces"));
  mkdirSync(workspaceRoot, { recursive: true, mode: 0o711 });
  if (process.getuid?.() === 0) {
    if (letSandboxTraverseDataDir(config.dataDir, workspaceRoot)) {
      logger.info(
        { dataDir: config.dataDir },
        "data directory made traversable (o+x) for the sandbox user",
      );
    }
    assertTraversable(workspaceRoot, config.sandboxUid, config.sandboxGid);
  }
  // Workspaces are per tenant: <root>/t-<sha256(tenant)>/<workspace>, so a workspace name never
  // reaches another tenant's files.
  const byTenant = new Map<string, WorkspaceFs>();
  const quotas: WorkspaceQuota[] = [];
  const quotaConfig = config.workspaceQuota;
  const workspaces = (tenant: string): WorkspaceFs => {
    let fs = byTenant.get(tenant);
    if (!fs) {
      const tenantDir = `t-${createHash("sha256").update(tenant).digest("hex").slice(0, 32)}`;
      // Images live beside the tenants' directories, never inside a workspace.
      const quota = createWorkspaceQuota({
        mode: quotaConfig.mode,
        bytes: quotaConfig.bytes,
        inodes: quotaConfig.inodes,
        imageDir: join(workspaceRoot, ".images", tenantDir),
        uid: config.sandboxUid,
        gid: config.sandboxGid,
        logger: logger.child({ component: "workspace-quota" }),
      });
      quotas.push(quota);
      fs = createWorkspaceFs({
        root: join(workspaceRoot, tenantDir),
        quota,
        maxReadBytes: config.maxFileBytes,
        maxWriteBytes: config.maxFileBytes,
        sandboxUid: config.sandboxUid,
        sandboxGid: config.sandboxGid,
        ...(config.helperPath ? { helperPath: config.helperPath } : {}),
      });
      byTenant.set(tenant, fs);
    }
    return fs;
  };
  const tasks = createTaskManager({
    sandbox,
    logger,
    maxConcurrent: config.maxConcurrentTasks,
    retentionMs: config.retentionMs,
    maxRetainedBytes: config.maxRetainedOutputBytes,
    onRetained: (bytes) => retainedGauge.set(bytes),
    onChange: (n) => runningGauge.set(n),
    onSpawned: (seconds) => spawnLatency.observe(seconds),
    onSandboxStart: (start) => sandboxStarts.inc({ start }),
    tracer: tracing.tracer,
    startEgress: createEgressStarter({
      config: config.egress,
      sandboxUid: config.sandboxUid,
      sandboxGid: config.sandboxGid,
      logger: logger.child({ component: "egress" }),
    }),
  });

  let accepting = true;
  const workspaceQuotaText =
    quotaConfig.mode === "none"
      ? "none"
      : `loop-image ${quotaConfig.bytes} bytes, ${quotaConfig.inodes} inodes`;
  const bootId = randomUUID();
  const mcpServers = createMcpServerHost({
    sandbox,
    runnerId: config.id,
    logger: logger.child({ component: "mcp-servers" }),
    readOnlyPaths: config.mcpServerReadOnlyPaths,
    protectedPaths: [
      workspaceRoot,
      resolve(config.dataDir),
      ...(config.tls ? [resolve(config.tls.keyPath)] : []),
    ],
    maxServers: config.maxMcpServers,
  });
  // Refused connections, counted until an edge collects them for its audit chain (issue 18).
  const refusals = createPeerRefusals();
  const service = createRunnerService({
    refusals,
    mcpServers,
    bootId,
    accepting: () => accepting,
    readiness: () => readiness,
    workspaceQuota: workspaceQuotaText,
    cleanWorkspace: createWorkspaceCleaner(sandbox),
    runnerId: config.id,
    tasks,
    workspaces,
    policy,
    logger,
    tracer: tracing.tracer,
  });
  const app = new Hono();
  app.get("/health", (c) =>
    c.json({ status: readiness.ready ? "ok" : "sandbox_unavailable", runner: config.id }),
  );
  // Readiness with the active limit layers: what bounds a task's memory, processes and disk here.
  app.get("/health/ready", (c) =>
    c.json(
      {
        status: readiness.ready && accepting ? "ready" : "not_ready",
        runner: config.id,
        problem: accepting ? readiness.problem : "draining",
        limit_layers: [
          ...readiness.limitLayers,
          ...(config.workspaceQuota.mode === "none" ? [] : ["workspace-quota"]),
        ],
        cgroup: readiness.cgroup,
        landlock_abi: readiness.landlockAbi,
        workspace_quota: workspaceQuotaText,
      },
      readiness.ready && accepting ? 200 : 503,
    ),
  );
  app.get("/metrics", async (c) =>
    c.body(await registry.metrics(), 200, { "content-type": registry.contentType }),
  );
  const readMaxBytes = config.maxFileBytes + 64 * 1024;
  const handler = connectNodeAdapter({
    routes: (router) => router.service(RunnerService, service),
    readMaxBytes,
    fallback: nodeFallback(getRequestListener(app.fetch)),
  });
  // The edge's unary and server-streaming calls (Execute, Release, file operations …) without
  // Connect's universal handler; everything else falls through to it (ADR 0025).
  const lean = createLeanGrpcHandler(RunnerService, service, { readMaxBytes });

  const tlsFiles = await runnerTlsFiles(config);
  const edgeIds = config.allowedEdges.map(edgeIdentity);
  const monitorIds = config.allowedMonitors.map(monitorIdentity);
  /**
   * HTTP/2 sessions whose peer is an allowed edge: full access. Every other
   * request (an allowed monitor's, or one whose session is already gone) may
   * only GET /metrics and /health: fail closed.
   */
  const edgeSessions = new WeakSet<http2.Http2Session>();
  const server = http2.createSecureServer(
    { ...http2ServerOptions(config.connections), ...mtlsServerOptions(loadTlsMaterial(tlsFiles)) },
    (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const session = req.stream?.session;
      if (!session || !edgeSessions.has(session)) {
        const path = req.url.split("?")[0];
        if (
          req.method !== "GET" ||
          (path !== "/metrics" && path !== "/health" && path !== "/health/ready")
        ) {
          res.writeHead(403, { "content-type": "text/plain; charset=utf-8" });
          res.end("monitoring clients may only GET /metrics, /health and /health/ready\n");
          return;
        }
      }
      if (!lean(req, res)) handler(req, res);
    },
  );
  // Connection discipline (issue 21): caps at accept, handshake/first-stream/idle deadlines.
  guardConnections(server, config.connections);
  guardHttp2Sessions(server, config.connections);
  server.on("secureConnection", (socket: TLSSocket) => {
    // Events are small frames: without this, Nagle holds each behind the edge's
    // delayed ACK (+40 ms per round trip; issue 13).
    socket.setNoDelay(true);
    if (!isAllowedPeer(socket, [...edgeIds, ...monitorIds])) {
      const identities = peerIdentities(socket.getPeerCertificate());
      logger.warn(
        { peer: socket.remoteAddress, identities },
        "refused a client whose certificate is not an allowed edge or monitor",
      );
      refusals.record(socket.remoteAddress ?? "", identities, "identity_not_allowed");
      socket.destroy();
    }
  });
  server.on("session", (session) => {
    // Peers that are neither edges nor allowed monitors are destroyed in secureConnection.
    if (isAllowedPeer(session.socket as TLSSocket, edgeIds)) edgeSessions.add(session);
  });
  server.on("tlsClientError", (err, socket) => {
    logger.warn({ peer: socket.remoteAddress, err: err.message }, "TLS handshake refused");
    refusals.record(socket.remoteAddress ?? "", [], "tls_handshake_failed");
  });
  const stopWatch = watchTlsMaterial(
    tlsFiles,
    (m) => {
      server.setSecureContext(mtlsServerOptions(m));
      heartbeats?.rotate(m);
      logger.info({ notAfter: m.notAfter }, "runner certificate rotated");
    },
    (err) =>
      logger.error(
        { err: err.message },
        "rotated TLS material is invalid; keeping the current one",
      ),
  );
  const closeSessions = trackHttp2Sessions(server);
  server.listen(config.port, config.host);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `https://${host}:${port}`;
  const heartbeats =
    config.edges.length === 0
      ? undefined
      : startHeartbeats({
          runnerId: config.id,
          url: config.advertiseUrl ?? url,
          edges: config.edges,
          intervalMs: config.heartbeatIntervalMs,
          tls: loadTlsMaterial(tlsFiles),
          status: () => ({
            runningTasks: tasks.running(),
            maxTasks: config.maxConcurrentTasks,
            sandboxReady: readiness.ready && accepting,
            sandboxProblem: accepting ? readiness.problem : "draining",
            policyRevision: policy.revision(),
            bootId,
          }),
          refusals,
          logger,
        });
  logger.info(
    { url, runner: config.id, sandbox: readiness, policy: policy.revision(), edges: config.edges },
    "runner listening",
  );

  return {
    url,
    port,
    policy,
    async close() {
      clearInterval(recheckTimer);
      // Drain: refuse new work, leave the edges' registries, let running tasks finish within the bound.
      accepting = false;
      await heartbeats?.stop();
      const deadline = Date.now() + config.drainTimeoutMs;
      while (tasks.running() > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      stopWatch();
      await tasks.stopAll();
      await mcpServers.stopAll();
      await sandbox.close();
      // Workspace filesystems are unmounted (their images stay: a restart mounts them again).
      for (const q of quotas) await q.detachAll();
      closeSessions();
      await new Promise<void>((r) => server.close(() => r()));
      policy.close();
      await tracing.shutdown();
    },
  };
}
