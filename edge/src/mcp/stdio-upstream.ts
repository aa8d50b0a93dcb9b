import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { PolicyMcpServer, SandboxLimits } from "@mcp-gateway/common/policy";
import { NetworkMode, TaskStatus } from "@mcp-gateway/proto/mcp";
import {
  type Authorization,
  type Exited,
  type McpServerRequest,
  McpServerRequestSchema,
} from "@mcp-gateway/proto/runner/v1";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "pino";
import type { RunnerHandle } from "../runners/pool.js";
import type { StdioUpstreamConfig } from "./upstream-config.js";

export { type StdioUpstreamConfig, stdioUpstreamSchema } from "./upstream-config.js";

/** What the operations layer decides before a stdio server starts (the mcp_server operation). */
export interface StdioLaunch {
  server: string;
  workspace: string;
  network: "none" | "host";
  mcpServer: PolicyMcpServer;
  /** Requested limits in the policy's form (0: the cap). */
  limits: SandboxLimits;
}

/** The caller a stdio server runs for: its tenant, and how its start is authorized. */
export interface UpstreamCaller {
  /** The caller's tenant: one process per tenant and server. */
  tenant: string;
  /** Decides and audits starting a server for this tenant; resolves to what the runner re-checks. */
  authorizeLaunch(launch: StdioLaunch): Promise<Authorization>;
}

/** The launch document of a stdio upstream (what policy sees). */
export function stdioLaunch(u: StdioUpstreamConfig): StdioLaunch {
  const l = u.limits;
  return {
    server: u.name,
    workspace: u.workspace,
    network: u.network,
    mcpServer: {
      server: u.name,
      command: u.command,
      args: [...u.args],
      read_only_paths: [...u.readOnlyPaths],
    },
    limits: {
      memory_bytes: l.memoryBytes ?? 0,
      max_processes: l.maxProcesses ?? 0,
      max_file_size_bytes: l.maxFileSizeBytes ?? 0,
      max_open_files: l.maxOpenFiles ?? 0,
      cpu_seconds: l.cpuSeconds ?? 0,
      max_output_bytes: l.maxOutputBytes ?? 0,
    },
  };
}

/** How a server's process ended, in words. */
export function describeExit(e: Exited): string {
  if (e.status === TaskStatus.TIMED_OUT) return `reached its lifetime (${e.message})`;
  if (e.status === TaskStatus.FAILED) return `failed in the sandbox: ${e.message}`;
  if (e.status === TaskStatus.CANCELLED)
    return e.message.startsWith("stopped") ? e.message : "was stopped";
  if (e.signal !== "") return `was killed by ${e.signal}`;
  return `exited with code ${e.exitCode}`;
}

/** Options of {@link RunnerStdioTransport}. */
export interface RunnerStdioTransportOptions {
  runner: RunnerHandle;
  config: StdioUpstreamConfig;
  authorization: Authorization;
  logger: Logger;
  /** Largest JSON-RPC message the server may send, bytes (default 16 MiB). */
  maxMessageBytes?: number;
}

/**
 * The MCP SDK transport of a stdio server that runs on a runner: JSON-RPC lines go to its
 * stdin and come from its stdout over the RunnerService.McpServer stream (mTLS). Closing
 * the transport ends the stream, and the runner kills the server's process tree.
 */
export class RunnerStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /** Host pid of the server on its runner (0 until started). */
  pid = 0;
  /** Why the server ended ("" while it runs). */
  ended = "";
  /** True when the gateway closed it (idle, shutdown), not the server. */
  closedByGateway = false;
  /** Last stderr bytes of the server (for error messages). */
  stderrTail = "";
  private readonly abort = new AbortController();
  private readonly outbox: McpServerRequest[] = [];
  private wakeOutbox: (() => void) | null = null;
  private outboxEnded = false;
  private closed = false;
  private readonly options: RunnerStdioTransportOptions;

  constructor(options: RunnerStdioTransportOptions) {
    this.options = options;
    const u = options.config;
    this.push({
      case: "launch",
      value: {
        server: u.name,
        authorization: options.authorization,
        readOnlyPaths: u.readOnlyPaths,
        spec: {
          command: u.command,
          args: u.args,
          env: u.env,
          cwd: "",
          timeoutMs: BigInt(u.lifetimeMs),
          workspace: u.workspace,
          network: u.network === "host" ? NetworkMode.HOST : NetworkMode.NONE,
          limits: {
            memoryBytes: BigInt(u.limits.memoryBytes ?? 0),
            maxProcesses: u.limits.maxProcesses ?? 0,
            maxFileSizeBytes: BigInt(u.limits.maxFileSizeBytes ?? 0),
            maxOpenFiles: u.limits.maxOpenFiles ?? 0,
            cpuSeconds: u.limits.cpuSeconds ?? 0,
            maxOutputBytes: BigInt(u.limits.maxOutputBytes ?? 0),
          },
        },
      },
    });
  }

  private push(message: MessageInitShape<typeof McpServerRequestSchema>["message"]): void {
    this.outbox.push(
      create(McpServerRequestSchema, { message } as MessageInitShape<
        typeof McpServerRequestSchema
      >),
    );
    this.wakeOutbox?.();
    this.wakeOutbox = null;
  }

  private async *requests(): AsyncGenerator<McpServerRequest> {
    for (;;) {
      const next = this.outbox.shift();
      if (next) yield next;
      else if (this.outboxEnded) return;
      else await new Promise<void>((r) => (this.wakeOutbox = r));
    }
  }

  /** Opens the stream; resolves once the runner reports the server running. */
  async start(): Promise<void> {
    const u = this.options.config;
    const responses = this.options.runner.client.mcpServer(this.requests(), {
      signal: this.abort.signal,
    });
    const iterator = responses[Symbol.asyncIterator]();
    let first: IteratorResult<typeof responses extends AsyncIterable<infer R> ? R : never>;
    try {
      first = await iterator.next();
    } catch (err) {
      this.finish();
      const ce = ConnectError.from(err);
      throw new Error(`runner ${this.options.runner.id} refused to start it: ${ce.rawMessage}`, {
        cause: err,
      });
    }
    if (first.done || first.value.message.case !== "started") {
      this.finish();
      throw new Error(`runner ${this.options.runner.id} did not start it`);
    }
    this.pid = first.value.message.value.pid;
    this.options.logger.info(
      { upstream: u.name, runner: this.options.runner.id, pid: this.pid },
      "stdio upstream started",
    );
    void this.pump(iterator);
  }

  private async pump(
    iterator: AsyncIterator<{ message: { case: string | undefined; value?: unknown } }>,
  ) {
    const max = this.options.maxMessageBytes ?? 16 * 1024 * 1024;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        const m = next.value.message;
        if (m.case === "stdout") {
          let data = Buffer.from(m.value as Uint8Array);
          let nl = data.indexOf(0x0a);
          while (nl >= 0) {
            const line = Buffer.concat([...pending, data.subarray(0, nl)]).toString("utf8");
            pending = [];
            pendingBytes = 0;
            data = data.subarray(nl + 1);
            this.deliver(line);
            nl = data.indexOf(0x0a);
          }
          if (data.length > 0) {
            pending.push(data);
            pendingBytes += data.length;
            if (pendingBytes > max) {
              this.ended = `sent a message over ${max} bytes`;
              break;
            }
          }
        } else if (m.case === "stderr") {
          this.stderrTail = (
            this.stderrTail + Buffer.from(m.value as Uint8Array).toString("utf8")
          ).slice(-2048);
        } else if (m.case === "exited") {
          this.ended ||= describeExit(m.value as Exited);
        }
      }
    } catch (err) {
      if (!this.closed) {
        const ce = ConnectError.from(err);
        this.ended ||= `lost its runner link (${ce.rawMessage.slice(0, 200)})`;
      }
    }
    this.ended ||= "ended";
    this.finish();
  }

  private deliver(line: string): void {
    const text = line.trim();
    if (text === "") return;
    let message: JSONRPCMessage;
    try {
      message = JSONRPCMessageSchema.parse(JSON.parse(text));
    } catch (err) {
      // Servers must write only JSON-RPC to stdout; anything else is reported, not fatal.
      this.onerror?.(
        new Error(`not a JSON-RPC message on stdout: ${text.slice(0, 120)}`, { cause: err }),
      );
      return;
    }
    this.onmessage?.(message);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) throw new Error(`the server ${this.ended || "is not running"}`);
    this.push({ case: "stdin", value: Buffer.from(`${JSON.stringify(message)}\n`, "utf8") });
  }

  /** Ends the stream: the runner kills the server's process tree. */
  async close(): Promise<void> {
    this.closedByGateway = !this.closed;
    this.ended ||= "was stopped by the gateway";
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.outboxEnded = true;
    this.wakeOutbox?.();
    this.abort.abort();
    this.onclose?.();
  }
}

/** A failure of a stdio upstream, with a message fit for clients. */
export class StdioUpstreamError extends Error {
  override readonly name = "StdioUpstreamError";
}

/** A running client of one tenant's server, held for one request. */
export interface StdioLease {
  client: Client;
  transport: RunnerStdioTransport;
  /** Done with the client (counts towards its idle time from now). */
  release(): void;
}

/** The tenants' stdio server processes and their clients. */
export interface StdioClients {
  /** The tenant's client of `u`, started (decided, audited, launched) when not running. */
  acquire(u: StdioUpstreamConfig, caller: UpstreamCaller): Promise<StdioLease>;
  /** Called when a tenant's server stopped (its cached tool list is stale). */
  onStopped: ((tenant: string, server: string) => void) | undefined;
  /** Servers running now ("<tenant>/<server>" → host pid), for tests and logs. */
  running(): Map<string, number>;
  /**
   * Retires every tenant's process of `server` (its configuration changed or it was removed):
   * the next call starts a new one; a process with calls in flight stops when they end.
   */
  stop(server: string): void;
  /** Stops every server. */
  close(): Promise<void>;
}

/** Options of {@link createStdioClients}. */
export interface StdioClientsOptions {
  /** Picks the runner of a workspace (the one the tenant's tasks use). */
  pickRunner(workspace: string): RunnerHandle;
  logger: Logger;
  /** First restart delay after a crash, ms (doubled per crash in a row, up to maxBackoffMs). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** A server that ran this long before it crashed starts again without delay, ms. */
  healthyAfterMs?: number;
}

interface Entry {
  client: Promise<Client>;
  transport: RunnerStdioTransport | undefined;
  inflight: number;
  lastUsed: number;
  startedAt: number;
  idleTimeoutMs: number;
  /** Retired by {@link StdioClients.stop}: closed once its last call ends. */
  retired?: boolean;
}

/**
 * What a server's stderr says about why it stopped, for error messages: the last line that
 * names an error (a runtime's crash ends with a version banner, not the reason), else the
 * last line.
 */
function stderrHint(t: RunnerStdioTransport): string {
  const lines = t.stderrTail
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const why = lines.findLast((l) => /\b\w*(Error|Exception)\b|^error\b|: error\b/i.test(l));
  const last = lines.at(-1) ?? "";
  const hint = why && why !== last ? `${why.slice(0, 300)} … ${last.slice(0, 100)}` : last;
  return hint === "" ? "" : ` (stderr: ${hint.slice(0, 420)})`;
}

/**
 * One stdio server process per tenant and server, on the runner of its workspace: started on
 * first use, stopped after idleTimeoutMs without calls, started again after a crash with
 * exponential backoff (a call that would wait longer than its deadline fails at once, saying
 * why and when).
 */
export function createStdioClients(options: StdioClientsOptions): StdioClients {
  const entries = new Map<string, Entry>();
  const crashes = new Map<string, { count: number; at: number; reason: string }>();
  const base = options.backoffMs ?? 500;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  const healthyAfter = options.healthyAfterMs ?? 60_000;
  const { logger } = options;

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [key, e] of entries) {
      if (e.inflight === 0 && e.transport && now - e.lastUsed > e.idleTimeoutMs) {
        logger.info(
          { upstream: key.split("\0")[1], pid: e.transport.pid },
          "stdio upstream idle: stopped",
        );
        entries.delete(key);
        void e.client.then((c) => c.close()).catch(() => undefined);
      }
    }
  }, 250);
  sweep.unref();

  async function start(u: StdioUpstreamConfig, caller: UpstreamCaller, key: string, e: Entry) {
    const crash = crashes.get(key);
    if (crash) {
      const wait = crash.at + Math.min(base * 2 ** (crash.count - 1), maxBackoff) - Date.now();
      if (wait > u.timeoutMs) {
        throw new StdioUpstreamError(
          `the server ${crash.reason}; it is started again in ${Math.ceil(wait / 1000)} s (backoff after ${crash.count} crashes in a row)`,
        );
      }
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const authorization = await caller.authorizeLaunch(stdioLaunch(u));
    const runner = options.pickRunner(u.workspace);
    const transport = new RunnerStdioTransport({
      runner,
      config: u,
      authorization,
      logger,
    });
    e.transport = transport;
    transport.onerror = (err) =>
      logger.debug({ upstream: u.name, err: err.message }, "stdio upstream");
    const client = new Client({ name: "mcp-security-gateway", version: "1" });
    client.onclose = () => {
      if (entries.get(key) === e) entries.delete(key);
      // A retired process (its configuration was reloaded): what it does now says nothing
      // about its successor, whose list and backoff are not touched.
      if (e.retired) return;
      clients.onStopped?.(caller.tenant, u.name);
      if (transport.closedByGateway) return;
      const prev = crashes.get(key);
      const count =
        e.startedAt > 0 && Date.now() - e.startedAt > healthyAfter ? 1 : (prev?.count ?? 0) + 1;
      const reason = `${transport.ended}${stderrHint(transport)}`;
      crashes.set(key, { count, at: Date.now(), reason });
      logger.warn(
        { upstream: u.name, pid: transport.pid, reason, crashes: count },
        "stdio upstream crashed",
      );
    };
    try {
      await client.connect(transport, { timeout: u.timeoutMs });
    } catch (err) {
      await client.close().catch(() => undefined);
      const why =
        transport.ended && !transport.closedByGateway
          ? `the server ${transport.ended}${stderrHint(transport)}`
          : err instanceof Error
            ? err.message
            : String(err);
      throw new StdioUpstreamError(`could not be started: ${why.slice(0, 500)}`, { cause: err });
    }
    e.startedAt = Date.now();
    return client;
  }

  const clients: StdioClients = {
    onStopped: undefined,
    async acquire(u, caller) {
      const key = `${caller.tenant}\0${u.name}`;
      let e = entries.get(key);
      if (!e) {
        const entry: Entry = {
          client: Promise.resolve(undefined as unknown as Client),
          transport: undefined,
          inflight: 0,
          lastUsed: Date.now(),
          startedAt: 0,
          idleTimeoutMs: u.idleTimeoutMs,
        };
        entry.client = start(u, caller, key, entry);
        entry.client.catch(() => {
          if (entries.get(key) === entry) entries.delete(key);
        });
        entries.set(key, entry);
        e = entry;
      }
      const held = e;
      held.inflight++;
      let client: Client;
      try {
        client = await held.client;
      } catch (err) {
        held.inflight--;
        throw err;
      }
      let released = false;
      return {
        client,
        transport: held.transport as RunnerStdioTransport,
        release() {
          if (released) return;
          released = true;
          held.inflight--;
          held.lastUsed = Date.now();
          if (held.retired && held.inflight === 0) {
            void held.client.then((c) => c.close()).catch(() => undefined);
          }
        },
      };
    },
    running() {
      const out = new Map<string, number>();
      for (const [key, e] of entries)
        if (e.transport?.pid) out.set(key.replace("\0", "/"), e.transport.pid);
      return out;
    },
    stop(server) {
      for (const [key, e] of entries) {
        if (key.split("\0")[1] !== server) continue;
        entries.delete(key);
        crashes.delete(key);
        e.retired = true;
        if (e.inflight === 0) void e.client.then((c) => c.close()).catch(() => undefined);
      }
      for (const key of crashes.keys()) if (key.split("\0")[1] === server) crashes.delete(key);
    },
    async close() {
      clearInterval(sweep);
      const all = [...entries.values()];
      entries.clear();
      await Promise.all(all.map((e) => e.client.then((c) => c.close()).catch(() => undefined)));
    },
  };
  return clients;
}
