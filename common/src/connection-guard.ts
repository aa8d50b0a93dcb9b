import { readFileSync } from "node:fs";
import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import type {
  Http2SecureServer,
  Http2Server,
  SecureServerOptions,
  ServerHttp2Session,
  ServerHttp2Stream,
} from "node:http2";
import type { Server as NetServer, Socket } from "node:net";
import { z } from "zod";

/**
 * Connection discipline of one listener (issue 21, finding 1). Every bound
 * runs on a timer of its own, absolute where a slow peer could otherwise keep
 * resetting it, so nothing that has not authenticated can hold a connection
 * for long or take the process to its descriptor limit.
 */
export const connectionLimitsSchema = z.object({
  /** Most open connections of the listener; beyond, new ones are closed at once. Default: 4096, at most half the open-file limit. */
  maxConnections: z.number().int().positive().optional(),
  /** Most open connections per client address (IPv4, or an IPv6 /64); beyond, new ones are closed at once. */
  maxConnectionsPerAddress: z.number().int().positive().default(256),
  /**
   * New connections a client address (IPv4, or an IPv6 /64) may open per second, on
   * average; beyond, new ones are closed at once, before any protocol work, so a flood of
   * one-request connections costs an accept and a close each, not a request. Off unless
   * set: behind NAT or an L4 load balancer every client shares one address, and a limit
   * would refuse their legitimate bursts (set it on edges that see client addresses).
   */
  newConnectionsPerAddressPerSecond: z.number().positive().optional(),
  /** Burst of new connections an address may open above that rate (default: 2 s of the rate). */
  newConnectionsBurstPerAddress: z.number().int().positive().optional(),
  /**
   * Absolute time from accepting a connection (or finishing a response on it)
   * until a request's headers are complete — TLS handshake, protocol sniffing
   * and the first HTTP/2 stream included — ms. Bytes trickling in do not extend it.
   * Each connection's deadline is drawn between 75 % and 100 % of it, so connections
   * opened together do not all expire (and reconnect) at once.
   */
  headersTimeoutMs: z.number().int().positive().default(10_000),
  /** Absolute time from a request's headers to the end of its body, ms. */
  requestTimeoutMs: z.number().int().positive().default(30_000),
  /** An HTTP/1.1 connection idle between requests is closed after this long, ms. */
  keepAliveTimeoutMs: z.number().int().positive().default(5_000),
  /** An HTTP/2 session without an open stream for this long is closed (GOAWAY), ms. */
  idleTimeoutMs: z.number().int().positive().default(30_000),
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: z.number().int().positive().default(100),
  /** HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE, bytes (also the HTTP/1.1 header limit). */
  maxHeaderListSize: z
    .number()
    .int()
    .positive()
    .default(32 * 1024),
  /** HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE, bytes: what a peer may send per stream before the server reads. */
  initialWindowSize: z
    .number()
    .int()
    .positive()
    .default(256 * 1024),
  /** Memory an HTTP/2 session may hold in nghttp2 before new streams are refused, MB. */
  maxSessionMemoryMb: z.number().int().positive().default(10),
});

/** Parsed {@link connectionLimitsSchema}. */
export type ConnectionLimits = z.infer<typeof connectionLimitsSchema>;
/** {@link connectionLimitsSchema} as written in a config file. */
export type ConnectionLimitsInput = z.input<typeof connectionLimitsSchema>;

/**
 * A connection deadline drawn between 75 % and 100 % of `ms`: connections a client opened
 * together (a slowloris opens hundreds at once) then expire spread over a quarter of the
 * deadline instead of in one burst of closes and reconnects that stalls everyone else.
 */
export function jittered(ms: number): number {
  return Math.round(ms * (0.75 + Math.random() * 0.25));
}

/** The soft open-file limit of this process (Linux), or undefined when unknown. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** The total connection cap: configured, or 4096 but never more than half the open-file limit. */
export function connectionCap(limits: Pick<ConnectionLimits, "maxConnections">): number {
  if (limits.maxConnections !== undefined) return limits.maxConnections;
  const fds = openFileLimit();
  return fds === undefined ? 4096 : Math.max(64, Math.min(4096, Math.floor(fds / 2)));
}

/** The address a per-address cap counts: IPv4 (also when mapped into IPv6), or the IPv6 /64. */
export function addressKey(address: string | undefined): string {
  if (!address) return "";
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4?.[1]) return v4[1];
  if (!address.includes(":")) return address;
  const groups = expandIpv6(address.split("%", 1)[0] ?? "");
  return `${groups.slice(0, 4).join(":").toLowerCase()}::/64`;
}

function expandIpv6(address: string): string[] {
  const [left = "", right = ""] = address.split("::");
  const l = left === "" ? [] : left.split(":");
  const r = right === "" ? [] : right.split(":");
  return [...l, ...new Array(Math.max(0, 8 - l.length - r.length)).fill("0"), ...r];
}

/** Counts of a {@link guardConnections} gate. */
export interface ConnectionGate {
  /** Open connections now. */
  open(): number;
  /** Open connections of one address now. */
  openFrom(address: string): number;
  /** Connections refused so far (total cap, per-address cap or per-address rate). */
  refused(): number;
}

/**
 * Caps the connections of a listening server, in total and per client
 * address: past either cap a new connection is destroyed at once (before TLS
 * or any parsing), so an overload is answered fast instead of by running out
 * of descriptors. Listens on the server's own `connection` event, so it works
 * for net, TLS, HTTP and HTTP/2 servers alike.
 *
 * @example
 * guardConnections(server, { maxConnections: 4096, maxConnectionsPerAddress: 256 });
 * // optional: newConnectionsPerAddressPerSecond / newConnectionsBurstPerAddress (token bucket)
 */
export function guardConnections(
  server: NetServer,
  limits: Pick<ConnectionLimits, "maxConnections" | "maxConnectionsPerAddress"> &
    Partial<
      Pick<ConnectionLimits, "newConnectionsPerAddressPerSecond" | "newConnectionsBurstPerAddress">
    >,
  onRefused?: (socket: Socket, reason: "total" | "address" | "rate") => void,
): ConnectionGate {
  const cap = connectionCap(limits);
  const perAddress = new Map<string, number>();
  const rate = limits.newConnectionsPerAddressPerSecond;
  const admitNew = tokenBuckets(
    rate ?? Number.POSITIVE_INFINITY,
    limits.newConnectionsBurstPerAddress ?? Math.max(1, Math.ceil((rate ?? 0) * 2)),
  );
  let open = 0;
  let refused = 0;
  server.on("connection", (socket: Socket) => {
    const key = addressKey(socket.remoteAddress);
    const mine = perAddress.get(key) ?? 0;
    const reason =
      open >= cap
        ? "total"
        : mine >= limits.maxConnectionsPerAddress
          ? "address"
          : !admitNew(key)
            ? "rate"
            : "";
    if (reason !== "") {
      refused++;
      onRefused?.(socket, reason);
      socket.destroy();
      return;
    }
    open++;
    perAddress.set(key, mine + 1);
    socket.once("close", () => {
      open--;
      const n = (perAddress.get(key) ?? 1) - 1;
      if (n <= 0) perAddress.delete(key);
      else perAddress.set(key, n);
    });
  });
  return {
    open: () => open,
    openFrom: (address) => perAddress.get(addressKey(address)) ?? 0,
    refused: () => refused,
  };
}

/**
 * Per-key token buckets (`perSecond`, `burst`); entries that have refilled are dropped every
 * 10 s, and at most `maxKeys` are kept (the least recently used goes first). Returns a take:
 * true when the key had a token.
 *
 * @example
 * const take = tokenBuckets(20, 40, 10_000);
 * if (!take(addressKey(peer))) delay();
 */
export function tokenBuckets(
  perSecond: number,
  burst: number,
  maxKeys = Number.POSITIVE_INFINITY,
): (key: string) => boolean {
  if (!Number.isFinite(perSecond) || !Number.isFinite(burst)) return () => true;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refill = (b: { tokens: number; at: number }, now: number) => {
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
  };
  const prune = setInterval(() => {
    const now = performance.now();
    for (const [key, b] of buckets) {
      refill(b, now);
      if (b.tokens >= burst) buckets.delete(key);
    }
  }, 10_000);
  prune.unref();
  const bounded = Number.isFinite(maxKeys);
  return (key) => {
    const now = performance.now();
    let b = buckets.get(key);
    if (!b) {
      if (buckets.size >= maxKeys) {
        const oldest = buckets.keys().next().value;
        if (oldest !== undefined) buckets.delete(oldest);
      }
      b = { tokens: burst, at: now };
      buckets.set(key, b);
    } else {
      refill(b, now);
      if (bounded) {
        // Insertion order is recency order: the first key is the least recently used.
        buckets.delete(key);
        buckets.set(key, b);
      }
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  };
}

/**
 * HTTP/2 server options from the limits: SETTINGS (max concurrent streams,
 * header list size, initial window), session memory, and for TLS servers the
 * handshake deadline.
 */
export function http2ServerOptions(limits: ConnectionLimits): SecureServerOptions {
  return {
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderListSize,
      initialWindowSize: limits.initialWindowSize,
    },
    maxSessionMemory: limits.maxSessionMemoryMb,
    maxHeaderListPairs: 128,
    maxSettings: 32,
    maxOutstandingPings: 10,
    unknownProtocolTimeout: limits.headersTimeoutMs,
    handshakeTimeout: limits.headersTimeoutMs,
  };
}

/**
 * Deadlines of HTTP/2 sessions: a session must open its first stream within
 * `headersTimeoutMs` of starting and is closed (GOAWAY, then destroyed) once
 * it has had no open stream for `idleTimeoutMs`; each stream must finish
 * sending its request (half-close) within `requestTimeoutMs` of opening, or it
 * is reset. Pings and SETTINGS do not count as activity, so a silent or
 * trickling peer cannot hold a session.
 *
 * @example
 * guardHttp2Sessions(server, limits);
 */
export function guardHttp2Sessions(
  server: Http2Server | Http2SecureServer,
  limits: Pick<ConnectionLimits, "headersTimeoutMs" | "idleTimeoutMs" | "requestTimeoutMs">,
): void {
  server.on("session", (session: ServerHttp2Session) => {
    let streams = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (session.destroyed) return;
        session.close();
        // A peer that ignores GOAWAY does not keep the socket either.
        setTimeout(() => session.destroy(), 1000).unref();
      }, ms);
      timer.unref();
    };
    arm(limits.headersTimeoutMs);
    session.on("stream", (stream: ServerHttp2Stream) => {
      streams++;
      clearTimeout(timer);
      let requestTimer: NodeJS.Timeout | undefined;
      const ended = () => clearTimeout(requestTimer);
      if (!stream.readableEnded) {
        requestTimer = setTimeout(() => {
          if (!stream.destroyed && !stream.readableEnded) stream.close(0x8); // CANCEL
        }, limits.requestTimeoutMs);
        requestTimer.unref();
        stream.once("end", ended);
      }
      stream.once("close", () => {
        ended();
        streams--;
        if (streams === 0 && !session.destroyed) arm(limits.idleTimeoutMs);
      });
    });
    session.once("close", () => clearTimeout(timer));
  });
}

/** Per-connection deadlines of {@link guardHttp1}. */
export interface Http1Guard {
  /** Starts the headers deadline of a connection (call when it is handed to the HTTP/1.1 server). */
  arm(socket: Socket): void;
}

/**
 * Header, request and keep-alive deadlines for an HTTP/1.1 server that never
 * `listen()`s itself (it is fed connections with `emit("connection")`), where
 * Node's own `headersTimeout`/`requestTimeout` checks never run:
 *
 * - headers: absolute, from {@link Http1Guard.arm} (or the end of the previous
 *   response) until the next request's headers are parsed;
 * - request: absolute, from the headers until the request body ended;
 * - keep-alive: Node's own idle timer between requests (`keepAliveTimeout`).
 *
 * A connection past a deadline is destroyed. Also sets the header-count limit.
 *
 * @example
 * const guard = guardHttp1(h1, limits); guard.arm(socket); h1.emit("connection", socket);
 */
export function guardHttp1(
  server: HttpServer | Http2SecureServer,
  limits: Pick<ConnectionLimits, "headersTimeoutMs" | "requestTimeoutMs" | "keepAliveTimeoutMs">,
): Http1Guard {
  const deadlines = new WeakMap<Socket, NodeJS.Timeout>();
  const inFlight = new WeakMap<Socket, number>();
  const arm = (socket: Socket) => {
    if (!deadlines.has(socket)) socket.once("close", () => clearTimeout(deadlines.get(socket)));
    clearTimeout(deadlines.get(socket));
    const t = setTimeout(() => socket.destroy(), jittered(limits.headersTimeoutMs));
    t.unref();
    deadlines.set(socket, t);
  };
  if ("keepAliveTimeout" in server) {
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    server.maxHeadersCount = 128;
  }
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (req.httpVersionMajor !== 1) return; // HTTP/2 streams: guardHttp2Sessions
    const socket = req.socket;
    clearTimeout(deadlines.get(socket));
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    if (!req.complete) {
      const t = setTimeout(() => {
        if (!req.complete) socket.destroy();
      }, limits.requestTimeoutMs);
      t.unref();
      req.once("end", () => clearTimeout(t));
      req.once("close", () => clearTimeout(t));
    }
    res.once("finish", () => {
      const n = (inFlight.get(socket) ?? 1) - 1;
      inFlight.set(socket, n);
      if (n === 0 && !socket.destroyed) arm(socket);
    });
  });
  return { arm };
}
