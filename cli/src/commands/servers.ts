import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "@mcp-gateway/common/logger";
import type { ConsoleSignInLink, EdgeConfigInput } from "@mcp-gateway/edge";
import { DEV_AUDIENCE, DEV_ISSUER, mintDevToken } from "@mcp-gateway/edge/dev-keys";
import type { RunnerConfigInput } from "@mcp-gateway/runner";
import type { Logger } from "pino";
import type { z } from "zod";
import { parse, UsageError } from "../args.js";
import { DEFAULT_POLICY_BUNDLE, defaultDataDir } from "../paths.js";

/**
 * The tiers, loaded by the commands that run them: `edge` never loads the runner's code and
 * `runner` never loads the edge's (start-up time of the release bundles, docs/PERFORMANCE.md).
 */
const edgeTier = () => import("@mcp-gateway/edge");
const runnerTier = () => import("@mcp-gateway/runner");

function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(
      `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch (err) {
    // Not V8's message: it quotes the text around the error, which may be a secret (a
    // database URL with its password), and this message is logged and audited on a reload.
    // V8 writes `Unexpected token 'p', [...]"<the text>"... is not valid JSON`: the first part.
    const kind = (err as Error).message.split(/, (?:\.\.\.)?"/)[0]?.slice(0, 80) ?? "";
    throw new UsageError(`config file ${path} is not a JSON object${kind ? ` (${kind})` : ""}`);
  }
}

/** Parses a config with its zod schema; errors name the field. */
function parseConfig<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new UsageError(`invalid ${what} configuration:\n${lines.join("\n")}`);
  }
  return r.data;
}

/**
 * Resolves at the first SIGINT or SIGTERM. Later SIGTERMs are ignored while
 * the process drains (an orchestrator escalates to SIGKILL itself); a second
 * SIGINT (Ctrl-C) exits at once.
 */
function untilSignal(logger: Logger): Promise<string> {
  return new Promise((resolve) => {
    let draining = false;
    const on = (sig: NodeJS.Signals) => {
      if (draining) {
        if (sig === "SIGINT") process.exit(130);
        logger.warn({ signal: sig }, "already shutting down");
        return;
      }
      draining = true;
      logger.info({ signal: sig }, "shutting down");
      resolve(sig);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

function port(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`--port ${value} is not a port number`);
  return n;
}

/** Settings every server takes from the standard environment. */
function fromEnvironment(): { otlpEndpoint?: string } {
  const otlp = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  return otlp ? { otlpEndpoint: otlp } : {};
}

/**
 * The edge's store from the standard environment: DATABASE_URL selects
 * PostgreSQL; MCP_GATEWAY_AUDIT_KEY_FILE names the audit key file (the same
 * variable `audit verify` reads). A config file's settings win over both.
 */
function storeFromEnvironment(): { databaseUrl?: string; auditKeyFile?: string } {
  const url = process.env.DATABASE_URL;
  const keyFile = process.env.MCP_GATEWAY_AUDIT_KEY_FILE;
  return { ...(url ? { databaseUrl: url } : {}), ...(keyFile ? { auditKeyFile: keyFile } : {}) };
}

/**
 * Runs a server's start-up; a port that is already taken becomes an error naming the port and
 * how to choose another (`hint`), instead of Node's bare "listen EADDRINUSE".
 */
async function starting<T>(start: () => Promise<T>, hint: (port: number) => string): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
    if (e?.code !== "EADDRINUSE") throw err;
    const port = e.port ?? 0;
    throw new Error(
      `port ${port}${e.address ? ` on ${e.address}` : ""} is already in use (is another gateway running?); stop it, or choose another port: ${hint(port + 1)}`,
      { cause: err },
    );
  }
}

function withoutUndefined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** `mcp-gateway edge [--config f] [--host h] [--port p] [--data-dir d] [--runner id=https://…]…` */
export async function edgeCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      config: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "data-dir": { type: "string" },
      runner: { type: "string", multiple: true },
    },
    false,
  );
  const runners = values.runner?.map((r) => {
    const i = r.indexOf("=");
    if (i <= 0) throw new UsageError(`--runner ${r}: expected id=https://host:port`);
    return { id: r.slice(0, i), url: r.slice(i + 1) };
  });
  /** The configuration from the file, the environment and the flags (read again on SIGHUP). */
  const input = (): EdgeConfigInput => ({
    dataDir: defaultDataDir(),
    policyBundle: DEFAULT_POLICY_BUNDLE,
    ...fromEnvironment(),
    ...storeFromEnvironment(),
    ...readConfigFile(values.config),
    ...withoutUndefined({
      host: values.host,
      port: port(values.port),
      dataDir: values["data-dir"],
      runners,
    }),
  });
  const { edgeConfigSchema, startEdge } = await edgeTier();
  const config = parseConfig(edgeConfigSchema, input(), "edge");
  const logger = createLogger({ name: "edge", level: config.logLevel });
  // Handlers before the port is bound and anything says "listening": a supervisor that stops
  // the edge as soon as it is up (or while it starts) gets a graceful shutdown, not SIGTERM's
  // default (found by the build's code-cache warm-up, which does exactly that).
  const signal = untilSignal(logger);
  // SIGHUP reloads the upstream list (below) once the edge serves; before that and while it
  // drains it is ignored, never the default (which would end the edge without a drain). In a
  // terminal it keeps its meaning — the session ended — and stops the edge gracefully.
  let edge: Awaited<ReturnType<typeof startEdge>> | undefined;
  let stopping = false;
  const interactive = process.stdin.isTTY === true;
  const onHangup = () => {
    if (interactive) {
      process.kill(process.pid, "SIGTERM");
      return;
    }
    if (!edge || stopping) {
      logger.warn(
        { ready: edge !== undefined, stopping },
        "SIGHUP ignored: the edge is not serving",
      );
      return;
    }
    try {
      edge.reloadUpstreams(() => {
        const next = parseConfig(edgeConfigSchema, input(), "edge");
        const { upstreams: _next, ...restNext } = next.mcp;
        const { upstreams: _now, ...restNow } = config.mcp;
        if (
          JSON.stringify({ ...next, mcp: restNext }) !== JSON.stringify({ ...config, mcp: restNow })
        ) {
          logger.warn("settings other than mcp.upstreams changed: they apply at the next restart");
        }
        return next.mcp.upstreams;
      });
    } catch {
      // logged and recorded in the audit trail by the edge; the previous list stays
    }
  };
  process.on("SIGHUP", onHangup);
  edge = await starting(
    () =>
      startEdge(config, logger, {
        onFatal: (err) => {
          process.stderr.write(`edge stopped: ${err.message}\n`);
          process.exit(1);
        },
      }),
    (p) => `mcp-gateway edge --port ${p} (or "port" in the config file)`,
  );
  process.stderr.write(
    `edge listening on ${edge.url}${edge.internalUrl ? ` (internal ${edge.internalUrl})` : ""}\n`,
  );
  await signal;
  stopping = true;
  await edge.close();
  process.off("SIGHUP", onHangup);
  return 0;
}

/**
 * The runner's identity from the environment (a VM's bootstrap finds them at boot):
 * MCP_GATEWAY_RUNNER_ID and MCP_GATEWAY_RUNNER_ADVERTISE_URL. The config file wins.
 */
function runnerFromEnvironment(): { id?: string; advertiseUrl?: string } {
  const id = process.env.MCP_GATEWAY_RUNNER_ID;
  const url = process.env.MCP_GATEWAY_RUNNER_ADVERTISE_URL;
  return { ...(id ? { id } : {}), ...(url ? { advertiseUrl: url } : {}) };
}

/** `mcp-gateway runner [--config f] [--host h] [--port p] [--data-dir d] [--id id] [--check]` */
export async function runnerCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      config: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      id: { type: "string" },
      "data-dir": { type: "string" },
      check: { type: "boolean" },
    },
    false,
  );
  const file = readConfigFile(values.config);
  const input: RunnerConfigInput = {
    dataDir: defaultDataDir(),
    policyBundle: DEFAULT_POLICY_BUNDLE,
    ...fromEnvironment(),
    ...runnerFromEnvironment(),
    ...file,
    ...withoutUndefined({
      host: values.host,
      port: port(values.port),
      id: values.id,
      dataDir: values["data-dir"],
    }),
  };
  if (values.check) return runnerCheck(input, Object.keys(file), values.config);
  const { runnerConfigSchema, startRunner } = await runnerTier();
  const config = parseConfig(runnerConfigSchema, input, "runner");
  const logger = createLogger({ name: "runner", level: config.logLevel });
  const signal = untilSignal(logger);
  const runner = await starting(
    () => startRunner(config, logger),
    (p) => `mcp-gateway runner --port ${p} (or "port" in the config file)`,
  );
  process.stderr.write(`runner ${config.id} listening on ${runner.url} (mTLS)\n`);
  await signal;
  await runner.close();
  return 0;
}

/**
 * `mcp-gateway runner --check`: validates the configuration, certificates, policy bundle,
 * bubblewrap, the seccomp helper, cgroup delegation and the edges' mTLS ports; prints one line
 * per check and exits 1 when any failed.
 */
async function runnerCheck(
  input: RunnerConfigInput,
  fileKeys: string[],
  path: string | undefined,
): Promise<number> {
  const print = (level: string, subject: string, detail: string) =>
    process.stdout.write(`${level.padEnd(5)} ${subject}: ${detail}\n`);
  process.stdout.write(`mcp-gateway runner --check${path ? ` (${path})` : ""}\n`);
  const { checkRunner, runnerConfigSchema } = await runnerTier();
  const parsed = runnerConfigSchema.safeParse(input);
  if (!parsed.success) {
    for (const i of parsed.error.issues)
      print("FAIL", "config", `${i.path.join(".") || "(root)"}: ${i.message}`);
    process.stdout.write("the configuration is invalid; nothing else was checked\n");
    return 1;
  }
  const known = new Set(Object.keys(runnerConfigSchema.shape));
  const findings = await checkRunner(parsed.data, {
    unknownKeys: fileKeys.filter((k) => !known.has(k)),
  });
  for (const f of findings) print(f.level === "fail" ? "FAIL" : f.level, f.subject, f.detail);
  const failed = findings.filter((f) => f.level === "fail").length;
  process.stdout.write(
    failed === 0
      ? "runner check passed\n"
      : `${failed} problem(s) found: the runner cannot serve as configured\n`,
  );
  return failed === 0 ? 0 : 1;
}

/**
 * `mcp-gateway dev`: one runner and the edge in one process, on embedded defaults; `--config`
 * adds an edge configuration file's settings (e.g. `mcp.upstreams`) on top of them.
 */
export async function devCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      config: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "data-dir": { type: "string" },
    },
    false,
  );
  const file = readConfigFile(values.config);
  // What ties the edge to the local runner and to the dev keys is dev's own: its data directory
  // (CA, signing key), the runner and the mTLS to it, the token issuer, the policy bundle both
  // tiers load, and serving at once.
  for (const key of ["dataDir", "runners", "runnerTls", "auth", "policyBundle", "standby"]) {
    if (key in file) {
      throw new UsageError(
        `config file ${values.config}: "${key}" is set by dev itself (use --data-dir, or run mcp-gateway edge)`,
      );
    }
  }
  const [{ consoleSignInUrl, edgeConfigSchema, startEdge }, { runnerConfigSchema, startRunner }] =
    await Promise.all([edgeTier(), runnerTier()]);
  const dataDir = values["data-dir"] ?? defaultDataDir();
  const runnerConfig = parseConfig(
    runnerConfigSchema,
    { dataDir, policyBundle: DEFAULT_POLICY_BUNDLE, port: 0, ...fromEnvironment() },
    "runner",
  );
  const edgeInput = (runnerUrl: string) => ({
    dataDir,
    policyBundle: DEFAULT_POLICY_BUNDLE,
    ...fromEnvironment(),
    ...storeFromEnvironment(),
    ...file,
    runners: [{ id: runnerConfig.id, url: runnerUrl }],
    ...withoutUndefined({ host: values.host, port: port(values.port) }),
  });
  // A bad file is said before anything starts (the runner's URL is known only once it listens).
  parseConfig(edgeConfigSchema, edgeInput("https://127.0.0.1:1"), "edge");
  const runnerLogger = createLogger({ name: "runner", level: runnerConfig.logLevel });
  const signal = untilSignal(runnerLogger);
  const runner = await startRunner(runnerConfig, runnerLogger);
  const edgeConfig = parseConfig(edgeConfigSchema, edgeInput(runner.url), "edge");
  const logger = createLogger({ name: "edge", level: edgeConfig.logLevel });
  // The console's one-time sign-in link: a random code the edge exchanges once, within an hour,
  // for a dev token (developer + auditor, 8 h) handed to the browser in the URL fragment.
  const consoleSignInLink: ConsoleSignInLink = {
    code: randomBytes(32).toString("base64url"),
    expiresAt: Date.now() + 3600_000,
    mint: () =>
      mintDevToken(join(dataDir, "auth"), {
        sub: "dev-user",
        roles: ["developer", "auditor"],
        ttlSeconds: 8 * 3600,
        issuer: DEV_ISSUER,
        audience: DEV_AUDIENCE,
      }),
  };
  const edge = await starting(
    () => startEdge(edgeConfig, logger, { consoleSignInLink }),
    (p) => `npm start -- --port ${p} (or mcp-gateway dev --port ${p})`,
  ).catch(async (err: unknown) => {
    await runner.close();
    throw err;
  });
  process.stderr.write(
    [
      "",
      `  MCP Security Gateway (dev) listening on ${edge.url}`,
      `  runner ${runnerConfig.id} on ${runner.url} (mTLS, dev CA in ${dataDir}/pki)`,
      "",
      `  Console: ${edge.url}/console/`,
      `    sign in once with: ${consoleSignInUrl(edge.url, consoleSignInLink.code)}`,
      "    (one-time link, valid for an hour; or paste a token from npx mcp-gateway token)",
      "",
      "  Try it:",
      "    TOKEN=$(npx mcp-gateway token --sub dev-user --roles developer --ttl 1h)",
      `    curl -s -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
      `      -d '{"command":"echo","args":["hello world"],"timeout":30}' ${edge.url}/mcp.McpService/ExecuteCommand`,
      "",
      `  MCP (agents): ${edge.url}/mcp with "Authorization: Bearer $TOKEN"`,
      `    claude mcp add --transport http mcp-gateway ${edge.url}/mcp --header "Authorization: Bearer $TOKEN"`,
      "    stdio clients: npx mcp-gateway mcp   (docs/mcp.md)",
      "",
    ].join("\n"),
  );
  await signal;
  await edge.close();
  await runner.close();
  return 0;
}
