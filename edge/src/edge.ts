import { randomUUID } from "node:crypto";
import { accessSync, constants as fsConstants } from "node:fs";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { join, resolve } from "node:path";
import { createContextValues } from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import { createMetricsRegistry } from "@mcp-gateway/common/metrics";
import { nodeFallback } from "@mcp-gateway/common/node-fallback";
import {
  createPolicyEngine,
  type PolicyEngine,
  type ReloadResult,
} from "@mcp-gateway/common/policy";
import {
  ensureDevPki,
  loadTlsMaterial,
  type TlsFiles,
  watchTlsMaterial,
} from "@mcp-gateway/common/tls";
import { createTracing } from "@mcp-gateway/common/tracing";
import { VERSION } from "@mcp-gateway/common/version";
import { McpService } from "@mcp-gateway/proto/mcp";
import type { Logger } from "pino";
import { defaultAuditKeyPath, ensureAuditKeys, loadAuditKeys } from "./audit/keys.js";
import { requestFacts } from "./audit/security-events.js";
import { createAuditTrail } from "./audit/trail.js";
import { createAuthenticator } from "./auth/authenticator.js";
import { ensureDevSigningKey } from "./auth/dev-keys.js";
import type { EdgeConfig } from "./config.js";
import { type ConsoleSignInLink, registerConsole } from "./console/routes.js";
import { createStandardGrpcServices } from "./grpc/standard.js";
import { createUnimplementedFallback } from "./grpc/unimplemented.js";
import { createHttpApp } from "./http/app.js";
import {
  boundedCompressions,
  createBodyLimits,
  registerWithBodyLimits,
} from "./http/body-limits.js";
import { isFetchServable, mountConnect, nodeIncoming } from "./http/connect-fetch.js";
import { handleCors } from "./http/cors.js";
import { type DualServer, listenDual } from "./http/listen.js";
import { createAuthFailurePacer, createPreAuth } from "./http/pre-auth.js";
import type { McpEndpoint } from "./mcp/endpoint.js";
import { MCP_PATH, RESOURCE_METADATA_PATH } from "./mcp/paths.js";
import { createEdgeMetrics, registerStoreWriteMetrics } from "./metrics.js";
import { createOperations } from "./operations/operations.js";
import { settleUpstreamOutcomes } from "./operations/upstream-tools.js";
import { createPipeline } from "./pipeline/authorize.js";
import {
  createEdgeInterceptor,
  peerAddressKey,
  preAuthenticatedKey,
  procedureName,
} from "./pipeline/interceptor.js";
import { principalKey } from "./rate-limit/keys.js";
import { createRateLimiter } from "./rate-limit/token-bucket.js";
import { type RegistryServer, startRegistryServer } from "./registry/server.js";
import { createMcpService } from "./rpc/mcp-service.js";
import { createRunnerPool } from "./runners/pool.js";
import { openStore } from "./store/open.js";
import { startOutputRetention } from "./store/retention.js";
import type { TaskStore } from "./store/types.js";
import { createTaskEvents } from "./tasks/events.js";
import { createTaskService } from "./tasks/task-service.js";

/** A running edge. */
export interface Edge {
  /** Base URL of the public port. */
  url: string;
  /** https URL of the internal mTLS port (runner registration), when enabled. */
  internalUrl: string | undefined;
  store: TaskStore;
  policy: PolicyEngine;
  /**
   * Applies a new list of upstream MCP servers (`mcp.upstreams` of a configuration `read`
   * reads and validates) without a restart; says what changed. Refused, with the previous list
   * kept, when `read` throws, MCP is off or the edge started without upstreams; the outcome is
   * logged and recorded in the audit trail either way.
   */
  reloadUpstreams(read: () => EdgeConfig["mcp"]["upstreams"]): {
    added: string[];
    removed: string[];
    changed: string[];
  };
  /** Readiness goes 503, new calls are refused, in-flight work drains within the bound, then everything closes. */
  close(): Promise<void>;
}

/** Process-level hooks for {@link startEdge}. */
export interface StartEdgeOptions {
  /** Called when the edge must stop at once (lost the active lease); the CLI exits. */
  onFatal?: (err: Error) => void;
  /** A one-time sign-in link for the console (`mcp-gateway dev` only). */
  consoleSignInLink?: ConsoleSignInLink;
}

/** Where the edge's mTLS client material lives (configured, or the dev PKI). */
export async function edgeTlsFiles(config: EdgeConfig): Promise<TlsFiles> {
  if (config.runnerTls) return config.runnerTls;
  const pki = await ensureDevPki({
    dir: join(config.dataDir, "pki"),
    edgeIds: [config.id],
    runnerIds: config.runners.map((r) => r.id),
  });
  const mine = pki.edges[config.id];
  if (!mine) throw new Error(`dev PKI has no certificate for edge ${config.id}`);
  return { caPath: pki.caCertPath, certPath: mine.certPath, keyPath: mine.keyPath };
}

/**
 * Starts the edge: store, policy, identity, runner pool, and the one public
 * port serving gRPC, gRPC-Web, Connect, /health and /metrics.
 *
 * @example
 * const edge = await startEdge(edgeConfigSchema.parse({ runners }), logger);
 */
export async function startEdge(
  config: EdgeConfig,
  logger: Logger,
  options: StartEdgeOptions = {},
): Promise<Edge> {
  const startedAt = Date.now();
  const shutdown = new AbortController();
  /** Serving RPCs: false while a standby waits for the active lease, and while draining. */
  let accepting = !config.standby;
  /** Fencing token of the active lease (active-passive); 0 in active-active. */
  let activeToken = 0n;
  let draining = false;
  const notServing = () => (draining ? "draining" : "standby");

  const registry = createMetricsRegistry("edge");
  const metrics = createEdgeMetrics(registry);
  // A configured key file must exist (a missing shared key must not fork the chain
  // into per-edge keys); the embedded default is created on first start.
  // With PostgreSQL several edges write one chain: they must share a configured key,
  // never each create their own.
  if (config.databaseUrl && !config.auditKeyFile) {
    throw new Error(
      "auditKeyFile is required with PostgreSQL (databaseUrl): every edge of one database must sign the audit chain with the same key file (create one: (umask 077; head -c 32 /dev/urandom | base64 > audit.key))",
    );
  }
  // Start-up phases, ms since the process started (logged with "edge listening").
  const startup: Record<string, number> = {};
  const mark = (phase: string) => {
    startup[phase] = Math.round(performance.now());
  };
  mark("modules");
  // The policy bundle's wasm compiles off the main thread while the store opens; its
  // (re)load results wait for the audit trail (the first load is a security event too).
  const earlyReloads: ReloadResult[] = [];
  let onPolicyReload = (r: ReloadResult) => {
    earlyReloads.push(r);
  };
  const policyReady = createPolicyEngine({
    bundlePath: resolve(config.policyBundle),
    logger: logger.child({ component: "policy" }),
    onReload: (r) => onPolicyReload(r),
  });
  policyReady.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  const auditKeys = config.auditKeyFile
    ? await loadAuditKeys(config.auditKeyFile)
    : await ensureAuditKeys(defaultAuditKeyPath(config.dataDir));
  logger.info({ auditKeyId: auditKeys[0]?.id }, "audit chain keyed (HMAC-SHA256)");
  const opened = await openStore(
    { ...config, auditKey: auditKeys[0] },
    logger.child({ component: "store" }),
  );
  const store = opened.store;
  if ("writeStats" in store && typeof store.writeStats === "function") {
    const writeStats = store.writeStats as () => { commits: number; syncs: number };
    registerStoreWriteMetrics(registry, () => writeStats.call(store));
  }
  // Task output retention (age and total size), pruned in the background; audit is never pruned.
  const stopRetention = startOutputRetention({
    store,
    ...config.outputRetention,
    logger: logger.child({ component: "retention" }),
  });
  // Security events, signed checkpoints outside the store, live export (docs/security/audit.md).
  const trail = await createAuditTrail({
    config,
    store,
    signingKeyId: auditKeys[0]?.id ?? "",
    logger,
  });
  const events = createTaskEvents({ publish: opened.publish });
  const unsubscribe = await opened.subscribe((taskId) => events.wakeLocal(taskId));
  const leases = opened.leases;
  if (config.standby && !leases) {
    throw new Error(
      "standby mode needs PostgreSQL (databaseUrl / DATABASE_URL) to hold the active lease",
    );
  }
  const holder = `${config.id}/${randomUUID()}`;

  mark("store");
  onPolicyReload = (r) => {
    metrics.policyReloads.inc({ result: r.ok ? "ok" : "error" });
    trail.policyReloaded(r);
  };
  for (const r of earlyReloads.splice(0)) onPolicyReload(r);
  const policy = await policyReady;
  mark("policy");

  const tlsFiles = await edgeTlsFiles(config);
  const edgeTls = loadTlsMaterial(tlsFiles);
  const runners = createRunnerPool({
    onRunnerRefusals: trail.runnerRefusals,
    targets: config.runners,
    registry: opened.registry,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    tls: edgeTls,
    probeIntervalMs: config.runnerProbeIntervalMs,
    logger,
    metrics,
  });
  // The first probe of the configured runners (mTLS handshake, Info) runs while the rest
  // is set up; ready waits for it.
  const probed = runners.probe();
  /** The internal registration port, started once the public port is up (see below). */
  let internal: RegistryServer | undefined;
  const stopTlsWatch = watchTlsMaterial(
    tlsFiles,
    (m) => {
      runners.rotate(m);
      internal?.rotate(m);
      trail.configReloaded("runnerTls");
    },
    (err) => {
      logger.error({ err }, "rotated runner TLS material is invalid; keeping the current one");
      trail.configReloaded("runnerTls", err);
    },
  );

  const jwks = config.auth.jwksUrl
    ? { url: config.auth.jwksUrl }
    : {
        file:
          config.auth.jwksFile ??
          (await ensureDevSigningKey(join(config.dataDir, "auth"))).jwksPath,
      };
  const authenticator = createAuthenticator({
    jwks,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    algorithms: config.auth.algorithms,
    clockToleranceSec: config.auth.clockToleranceSec,
    maxLifetimeSec: config.auth.maxTokenLifetimeSec,
    tokenTypes: config.auth.tokenTypes,
    requireTokenType: config.auth.requireTokenType,
    extraAudiences: config.auth.extraAudiences,
    verifiedTokenCacheSize: config.auth.verifiedTokenCacheSize,
    verifiedTokenTtlMs: config.auth.verifiedTokenTtlMs,
    claims: {
      roles: config.auth.rolesClaim,
      tenant: config.auth.tenantClaim,
      scopes: config.auth.scopesClaim,
    },
  });
  const limiter = createRateLimiter({
    ratePerSecond: config.rateLimit.ratePerSecond,
    burst: config.rateLimit.burst,
    maxKeys: 100_000,
  });
  /** Every door authenticates and rate-limits with these; refusals go to the audit chain. */
  const authenticate = trail.recordAuthFailures((h: string | null) =>
    authenticator.authenticate(h),
  );
  const rateLimit = trail.recordRateLimits((p) =>
    limiter.take(principalKey(config.auth.issuer, p)),
  );
  /** One budget of authentication failures per client address, for every door (issue 21). */
  const failurePacer = createAuthFailurePacer(
    {
      perSecond: config.authFailures.perAddressPerSecond,
      burst: config.authFailures.burstPerAddress,
      delayMs: config.authFailures.failureDelayMs,
    },
    metrics,
  );

  const tracing = createTracing({
    serviceName: "mcp-edge",
    instanceId: config.id,
    logger,
    ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}),
  });
  const tracer = tracing.tracer;
  const pipeline = createPipeline({ policy, store, metrics, tracer, onAppend: trail.appended });
  const tasks = createTaskService({
    store,
    runners,
    events,
    logger,
    metrics,
    audit: (e) => pipeline.audit(e),
    finishTask: pipeline.finishTask,
    signal: shutdown.signal,
    tracer,
    edgeId: config.id,
    queueTimeoutMs: config.queueTimeoutMs,
    fencingToken: () => activeToken,
    ...(leases ? { isEdgeAlive: (id: string) => leases.held(`edge:${id}`) } : {}),
  });

  // The MCP SDK is loaded only where MCP is used (cold start, issue 17): for upstreams now,
  // for the /mcp endpoint on its first request.
  const upstreams =
    config.mcp.enabled && config.mcp.upstreams.length > 0
      ? (await import("./mcp/upstreams.js")).createUpstreams({
          upstreams: config.mcp.upstreams,
          logger: logger.child({ component: "mcp-upstreams" }),
          // stdio servers run on the runner of their workspace, like the tenant's tasks.
          pickRunner: (workspace) => runners.pick(workspace),
        })
      : undefined;
  const operations = createOperations({
    config,
    pipeline,
    store,
    upstreams,
    policySeesDescriptions: config.mcp.policySeesDescriptions,
    auditArguments: config.mcp.auditArguments,
    tasks,
    runners,
    startedAt,
    tracer,
    fencingToken: () => activeToken,
    status: () => (accepting ? "ok" : notServing()),
    policyData: () => policy.data(),
  });
  const service = createMcpService(operations);
  /** What /health/ready and grpc.health.v1.Health answer: the problems, empty when ready. */
  const readiness = async (): Promise<string[]> => {
    if (!accepting) return [notServing()];
    const problems: string[] = [];
    await store.ping().catch(() => problems.push("store unreachable"));
    if (policy.revision() === "") problems.push("no policy bundle loaded");
    if (!runners.all().some((r) => r.healthy)) problems.push("no runner available");
    return problems;
  };
  const app = createHttpApp({
    version: VERSION,
    startedAt,
    registry,
    ready: () => accepting,
    notServing,
    readiness,
  });
  // grpc.health.v1.Health (from the same readiness) and server reflection.
  const standardGrpc = createStandardGrpcServices({
    services: [McpService],
    reflection: config.grpcReflection,
    readiness,
  });
  /** Procedures callable without a token, service-qualified ("mcp.McpService/Health"). */
  const publicProcedures = new Set([
    procedureName(McpService.method.health),
    ...standardGrpc.publicProcedures,
  ]);
  const corsOrigins = new Set(config.corsOrigins);
  /** The upstream list in force (replaced by a reload). */
  let mcpUpstreams = config.mcp.upstreams;
  /** The MCP endpoint, loaded on first use (cold start); undefined when MCP is off. */
  let mcp: (() => Promise<McpEndpoint>) | undefined;
  /** The MCP endpoint once loaded (its standing streams end when the edge stops). */
  let endpoint: Promise<McpEndpoint> | undefined;
  if (config.mcp.enabled) {
    mcp = () =>
      (endpoint ??= import("./mcp/endpoint.js").then(({ createMcpEndpoint }) =>
        createMcpEndpoint({
          ops: operations,
          authenticate,
          rateLimit,
          ...(failurePacer ? { failurePacer } : {}),
          allowedOrigins: corsOrigins,
          onOriginRefused: trail.originRefused,
          requiredScopes: config.mcp.requiredScopes,
          scopesSupported: config.mcp.scopesSupported ?? config.mcp.requiredScopes,
          authorizationServers: config.mcp.authorizationServers,
          publicUrl: config.mcp.publicUrl,
          maxBodyBytes: config.mcp.maxBodyBytes,
          maxResultBytes: config.mcp.maxResultBytes,
          toolSeparator: config.mcp.toolSeparator,
          unprefixedUpstream: () => mcpUpstreams.find((u) => !u.namespace)?.name,
          accepting: () => accepting,
          metrics,
          logger,
          tracer,
        }),
      ));
    const peerOf = (env: unknown) =>
      (env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket
        ?.remoteAddress ?? "";
    const load = mcp;
    app.all(MCP_PATH, async (c) =>
      (await load()).handle(c.req.raw, peerOf(c.env), nodeIncoming(c.env)),
    );
    app.get(RESOURCE_METADATA_PATH, async (c) => (await load()).resourceMetadata(c.req.raw));
    app.get(`${RESOURCE_METADATA_PATH}${MCP_PATH}`, async (c) =>
      (await load()).resourceMetadata(c.req.raw),
    );
  }
  // The web console at /console: static assets; it calls the RPCs above over gRPC-Web (ADR 0011).
  registerConsole(app, {
    ...(options.consoleSignInLink ? { signInLink: options.consoleSignInLink } : {}),
    warn: (m) => logger.warn(m),
  });
  // Authenticate, rate-limit and check the declared size before any body is read (issue 21).
  const bodyLimit = createBodyLimits({
    defaultBytes: config.requestLimits.defaultBytes,
    methods: config.requestLimits.methods,
    maxBytes: config.maxRequestBytes,
  });
  const preAuth = createPreAuth({
    services: new Set([McpService.typeName]),
    publicProcedures: new Set([procedureName(McpService.method.health)]),
    authenticate,
    rateLimit,
    bodyLimit,
    metrics,
    logger,
    ...(failurePacer ? { failurePacer } : {}),
  });
  const rpcOptions = {
    routes: (router) => {
      registerWithBodyLimits(router, McpService, service, bodyLimit);
      standardGrpc.register(router);
    },
    interceptors: [
      createEdgeInterceptor({
        authenticate,
        rateLimit,
        publicMethods: publicProcedures,
        metrics,
        logger,
        tracer,
      }),
    ],
    readMaxBytes: config.maxRequestBytes,
    acceptCompression: boundedCompressions(config.requestLimits.maxDecompressionRatio),
    shutdownSignal: shutdown.signal,
    contextValues: (req) =>
      createContextValues()
        .set(peerAddressKey, req.socket.remoteAddress ?? "")
        .set(preAuthenticatedKey, preAuth.principalOf(req)),
    // Unknown services and methods get UNIMPLEMENTED in their protocol; plain HTTP goes to the app.
    fallback: createUnimplementedFallback({
      knownServices: standardGrpc.serviceNames,
      next: nodeFallback(getRequestListener(app.fetch)),
    }),
  } satisfies ConnectNodeAdapterOptions;
  // Native gRPC (HTTP/2 trailers) on Node; Connect and gRPC-Web also through app.fetch, from
  // the same routes and interceptors, so any fetch runtime can serve them (ADR 0007).
  const rpc = connectNodeAdapter(rpcOptions);
  const fetchPaths = mountConnect(app, rpcOptions, {
    contextValues: (c) => {
      const incoming = nodeIncoming(c.env);
      return incoming ? rpcOptions.contextValues(incoming) : createContextValues();
    },
  });
  const appListener = nodeFallback(getRequestListener(app.fetch));
  /**
   * With rpcPath "fetch": Connect and gRPC-Web calls of known procedures served by app.fetch, as
   * on a fetch runtime. By default the Node adapter serves them: a fetch Request and Response
   * per call (undici, web streams, Hono) cost 11–34 % more CPU per request (issue 13).
   */
  const viaFetch = (req: IncomingMessage | Http2ServerRequest) =>
    config.rpcPath === "fetch" &&
    fetchPaths.has(req.url?.split("?", 1)[0] ?? "") &&
    isFetchServable(req.method ?? "", req.headers["content-type"]);
  const server: DualServer = await listenDual({
    host: config.host,
    port: config.port,
    ...(config.publicTls ? { tls: config.publicTls } : {}),
    limits: config.connections,
    listener: (req, res) => {
      const peer = req.socket?.remoteAddress ?? "";
      requestFacts.enterWith({ peer }); // who is refused, for the security events of this request
      if (handleCors(corsOrigins, req, res, (o) => trail.originRefused(o, peer))) return;
      if (!accepting && req.url?.startsWith("/mcp.")) {
        res.writeHead(503, { "content-type": "application/json", "retry-after": "1" });
        res.end(JSON.stringify({ code: "unavailable", message: `edge is ${notServing()}` }));
        return;
      }
      const route = () =>
        preAuth.admit(req, res).then(
          (admitted) => admitted && (viaFetch(req) ? appListener(req, res) : rpc(req, res)),
          () => res.destroy(),
        );
      // POST /mcp on Node's request (issue 14): a tools/call is answered without the fetch
      // adaption; anything else continues on the usual route with its body already read.
      if (mcp && req.method === "POST" && req.url?.split("?", 1)[0] === MCP_PATH) {
        mcp()
          .then((endpoint) => endpoint.handleNode(req, res, peer, () => void route()))
          .catch((err: unknown) => {
            logger.error({ err }, "mcp request failed");
            if (res.headersSent) res.destroy();
            else {
              res.writeHead(500, { "content-type": "application/json" });
              res.end(
                JSON.stringify({
                  jsonrpc: "2.0",
                  id: null,
                  error: { code: -32603, message: "internal error" },
                }),
              );
            }
          });
        return;
      }
      void route();
    },
  });

  internal =
    config.internalPort === undefined
      ? undefined
      : await startRegistryServer({
          host: config.internalHost ?? config.host,
          port: config.internalPort,
          tls: edgeTls,
          registry: opened.registry,
          heartbeatIntervalMs: config.heartbeatIntervalMs,
          limits: config.connections,
          logger,
          onRefused: trail.mtlsRefused,
          onRunnerRefusals: trail.runnerRefusals,
        });

  // HA with PostgreSQL: a liveness lease per edge (its tasks are adopted by
  // others once it lapses), a periodic adoption pass, and in standby mode the
  // active lease whose fencing token runners check.
  let lostActive = false;
  const haTimers: NodeJS.Timeout[] = [];
  if (leases) {
    const renewEdge = async () => {
      await leases
        .acquire(`edge:${config.id}`, holder, config.edgeLeaseTtlMs)
        .catch((err: unknown) =>
          logger.warn({ err: String(err) }, "edge liveness lease not renewed"),
        );
    };
    await renewEdge();
    haTimers.push(setInterval(() => void renewEdge(), Math.max(250, config.edgeLeaseTtlMs / 4)));
  }
  // The adoption pass also picks up this edge's own tasks that nobody follows any more (a
  // follow loop that failed on a store error), with or without other edges.
  haTimers.push(
    setInterval(
      () => {
        if (accepting && !shutdown.signal.aborted) {
          tasks
            .recover()
            .catch((err: unknown) => logger.warn({ err: String(err) }, "adoption pass failed"));
        }
      },
      leases ? 1000 : 5000,
    ),
  );
  if (config.standby && leases) {
    const contend = async () => {
      if (shutdown.signal.aborted || lostActive) return;
      try {
        const r = await leases.acquire("edge-active", holder, config.activeLeaseTtlMs);
        if (r.acquired && activeToken === 0n) {
          activeToken = r.token;
          accepting = true;
          logger.info({ fencingToken: String(r.token) }, "became the active edge");
          await tasks.recover();
        } else if (!r.acquired && activeToken !== 0n) {
          // Another edge holds the lease now: stop at once; runners refuse our stale token anyway.
          lostActive = true;
          accepting = false;
          shutdown.abort();
          logger.fatal(
            { holder: r.holder },
            "lost the active lease; stopping (restart as standby)",
          );
          options.onFatal?.(new Error("lost the active lease"));
        } else if (r.acquired && r.token !== activeToken) {
          activeToken = r.token;
        }
      } catch (err) {
        logger.warn({ err: String(err) }, "active lease not renewed");
      }
    };
    await contend();
    haTimers.push(setInterval(() => void contend(), Math.max(200, config.activeLeaseTtlMs / 5)));
  }
  for (const t of haTimers) t.unref();

  mark("listening");
  await probed;
  mark("probed");
  const recovered = accepting ? await tasks.recover() : 0;
  mark("ready");
  logger.info(
    {
      url: server.url,
      internalUrl: internal?.url,
      runners: config.runners.map((r) => r.id),
      policy: policy.revision(),
      store: opened.kind,
      standby: config.standby && !accepting,
      recovered,
      startup,
    },
    "edge listening",
  );

  return {
    url: server.url,
    internalUrl: internal?.url,
    store,
    policy,
    reloadUpstreams(read) {
      try {
        const next = read();
        if (!config.mcp.enabled) throw new Error("MCP is off (mcp.enabled: false)");
        if (!upstreams) {
          throw new Error(
            "the edge started without upstreams: restart it to add the first (the MCP client code is loaded at start only when upstreams are configured)",
          );
        }
        // The environment is the one the edge started with: a credential a new or changed
        // upstream names must be there now, or the reload is refused (not its first call).
        for (const u of next) {
          if (u.kind !== "http" || !u.credential) continue;
          const c = u.credential;
          if (c.fromEnv && !process.env[c.fromEnv]) {
            throw new Error(
              `upstream ${u.name}: the environment variable ${c.fromEnv} is not set in the edge's environment (read at start; restart the edge to change it)`,
            );
          }
          if (c.fromFile) {
            try {
              accessSync(c.fromFile, fsConstants.R_OK);
            } catch (err) {
              throw new Error(
                `upstream ${u.name}: the credential file ${c.fromFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
              );
            }
          }
        }
        const changes = upstreams.replace(next);
        mcpUpstreams = next;
        // Where each new or changed server is reached: a new upstream is a new trust boundary.
        const targets = Object.fromEntries(
          next
            .filter((u) => changes.added.includes(u.name) || changes.changed.includes(u.name))
            .map((u) => [
              u.name,
              u.kind === "http"
                ? (() => {
                    const url = new URL(u.url);
                    return `${url.origin}${url.pathname}`; // no user info, no query
                  })()
                : `stdio: ${u.command}`,
            ]),
        );
        logger.info(
          { ...changes, targets, upstreams: next.map((u) => u.name) },
          "mcp upstreams reloaded",
        );
        trail.configReloaded("mcp.upstreams", undefined, { ...changes, targets });
        return changes;
      } catch (err) {
        logger.error({ err: String(err) }, "mcp upstreams not reloaded");
        trail.configReloaded("mcp.upstreams", err);
        throw err;
      }
    },
    async close() {
      draining = true;
      accepting = false;
      await tasks.drain(config.drainTimeoutMs);
      shutdown.abort();
      // Standing MCP streams never end by themselves: ended here, so that the clients reconnect
      // elsewhere and the server closes without waiting for them.
      (await endpoint?.catch(() => undefined))?.close();
      await server.close(Math.min(config.drainTimeoutMs, 2000));
      await internal?.close();
      for (const t of haTimers) clearInterval(t);
      if (leases && activeToken !== 0n && !lostActive) {
        await leases.release("edge-active", holder, activeToken).catch(() => false);
      }
      stopTlsWatch();
      await upstreams?.close();
      // Outcome records of upstream calls are appended after their answers: before the store closes.
      await settleUpstreamOutcomes();
      runners.close();
      policy.close();
      await tracing.shutdown();
      await unsubscribe();
      await trail.close();
      await stopRetention();
      await store.close();
    },
  };
}
