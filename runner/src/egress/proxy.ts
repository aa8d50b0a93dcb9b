/**
 * The egress proxy of a network "restricted" task (docs/adr/0018-egress-proxy.md): a small
 * HTTP + CONNECT proxy on node:net, listening on a unix socket that is bind-mounted into the
 * task's sandbox (the sandbox's own network namespace has no route out). It admits only the
 * hosts of the decision's egress obligation, resolves names itself, refuses addresses that
 * are loopback, private, link-local or cloud metadata unless a CIDR entry names their range,
 * caps the task's bytes and open connections, and reports every attempt.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { createServer, isIP, type Server, type Socket, connect as tcpConnect } from "node:net";
import {
  createEgressMatcher,
  type EgressMatcher,
  specialAddress,
} from "@mcp-gateway/common/egress";
import type { EgressObligation } from "@mcp-gateway/common/policy";
import type { Logger } from "pino";

/** One connection attempt, reported when it is refused or when it ends. */
export interface EgressRecord {
  /** Host as the task asked for it. */
  host: string;
  port: number;
  allowed: boolean;
  /** Why it was refused, or why an allowed connection ended early ("" otherwise). */
  reason: string;
  /** Address connected to ("" when refused before connecting). */
  address: string;
  /** Bytes from the task to the destination. */
  bytesSent: number;
  /** Bytes from the destination to the task. */
  bytesReceived: number;
  /** "connect" (CONNECT tunnel, HTTPS) or "http" (plain HTTP by absolute URL). */
  kind: "connect" | "http";
}

/** Resolves a name to its addresses (the proxy's only resolver). */
export type EgressResolver = (host: string) => Promise<string[]>;

/** Options of {@link startEgressProxy}. */
export interface EgressProxyOptions {
  /** Unix socket path to listen on (its directory is bind-mounted into the sandbox). */
  socketPath: string;
  /** The decision's egress obligation: allowlist and caps. */
  egress: EgressObligation;
  /** Called once per connection attempt. */
  onConnection: (record: EgressRecord) => void;
  /** Name resolution; default the host's resolver (dns.lookup, all addresses). */
  resolve?: EgressResolver;
  /**
   * Where to really connect for an admitted address and port (tests: the test-only resolver
   * maps documentation addresses to loopback servers). Default: the address itself.
   */
  dial?: (address: string, port: number) => { host: string; port: number };
  /** Milliseconds to wait for a request head or an upstream connection. Default 10 000. */
  timeoutMs?: number;
  logger?: Logger;
}

/** A running proxy. */
export interface EgressProxy {
  /** Bytes moved so far, both directions of all connections. */
  readonly bytes: number;
  /** Stops listening and cuts every connection. */
  close(): Promise<void>;
}

/** Connection attempts recorded per task; later ones are refused without a record each. */
export const MAX_EGRESS_ATTEMPTS = 1024;

/** Largest request head the proxy reads. */
const MAX_HEAD = 16 * 1024;

/** An HTTP response the proxy sends itself (403 on refusals), with the reason in the body. */
function reply(sock: Socket, status: number, text: string, reason: string): void {
  const body = `mcp-gateway egress proxy: ${reason}\n`;
  sock.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n` +
      `x-mcp-gateway-egress: ${reason.replace(/[\r\n]/g, " ")}\r\n\r\n${body}`,
  );
}

interface Target {
  kind: "connect" | "http";
  host: string;
  port: number;
  /** For "http": the head to send upstream (origin-form request line, Connection: close). */
  head?: Buffer;
}

/** Parses a request head into a target, or returns the reason it is refused (400). */
function parseHead(head: string): Target | string {
  const lines = head.split("\r\n");
  const [method = "", target = "", version = ""] = (lines[0] ?? "").split(" ");
  if (!/^HTTP\/1\.[01]$/.test(version)) return "not an HTTP/1.x proxy request";
  if (method === "CONNECT") {
    // A host name of letters, digits, '-' and '.', or an IP literal: never a NUL, space or '/'
    // that the allowlist and the resolver could read differently.
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]{1,253})):([0-9]{1,5})$/.exec(target);
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) return `invalid CONNECT target ${JSON.stringify(target)}`;
    return { kind: "connect", host: (m[1] ?? m[2] ?? "").toLowerCase(), port };
  }
  // Absolute form (what proxy clients send), or origin form decided by the Host header.
  const hostHeader = lines
    .slice(1)
    .find((l) => /^host:/i.test(l))
    ?.slice(5)
    .trim();
  let url: URL;
  try {
    url =
      target.startsWith("/") && hostHeader !== undefined && hostHeader !== ""
        ? new URL(`http://${hostHeader}${target}`)
        : new URL(target);
  } catch {
    return "a proxy request needs an absolute http:// URL (or CONNECT for https)";
  }
  if (url.protocol !== "http:") {
    return `scheme ${url.protocol} is not proxied: use CONNECT (https) or http://`;
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const port = url.port === "" ? 80 : Number(url.port);
  // The Host header names the checked host (no other virtual host of the same address), and
  // each connection carries one request: the next one comes on a new, checked connection.
  const headers = lines
    .slice(1)
    .filter(
      (l) =>
        l !== "" && !/^(host|proxy-connection|proxy-authorization|connection|keep-alive):/i.test(l),
    );
  const out = [
    `${method} ${url.pathname}${url.search} ${version}`,
    `host: ${url.host}`,
    ...headers,
    "connection: close",
  ];
  return { kind: "http", host, port, head: Buffer.from(`${out.join("\r\n")}\r\n\r\n`, "latin1") };
}

async function defaultResolve(host: string): Promise<string[]> {
  const all = await lookup(host, { all: true, verbatim: true });
  return all.map((a) => a.address);
}

/**
 * Starts a task's egress proxy on `socketPath`.
 *
 * @example
 * const proxy = await startEgressProxy({
 *   socketPath: join(dir, "proxy.sock"),
 *   egress: { allow_hosts: ["pypi.org"], max_bytes: 1 << 28, max_connections: 32 },
 *   onConnection: (r) => log.info(r, "egress"),
 * });
 * // ... run the task with the socket's directory bound into its sandbox ...
 * await proxy.close();
 * @throws Error when the socket cannot be listened on (the task must not start)
 */
export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const matcher: EgressMatcher = createEgressMatcher(options.egress.allow_hosts);
  const resolve = options.resolve ?? defaultResolve;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const { max_bytes: maxBytes, max_connections: maxConnections } = options.egress;
  const sockets = new Set<Socket>();
  let open = 0;
  let bytes = 0;
  let attempts = 0;
  let closed = false;

  const report = (r: EgressRecord) => {
    try {
      options.onConnection(r);
    } catch (err) {
      options.logger?.warn({ err }, "egress onConnection threw");
    }
  };

  /** The address to connect to, or the refusal reason. */
  async function admit(host: string, port: number): Promise<{ address: string } | string> {
    const entry = matcher.admits(host, port);
    if (entry === null) {
      return isIP(host) !== 0
        ? `IP address ${host} port ${port} is not in the egress allowlist (IP literals must be listed)`
        : `host ${host} port ${port} is not in the egress allowlist`;
    }
    // An IP literal admitted by an "ip"/"cidr" entry: the policy named it explicitly.
    if (isIP(host) !== 0) return { address: host };
    let addresses: string[];
    try {
      addresses = await resolve(host);
    } catch (err) {
      return `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
    const refused: string[] = [];
    for (const address of addresses) {
      const special = specialAddress(address);
      if (special === null || matcher.rangeAllows(address, port)) return { address };
      refused.push(`${address} (${special})`);
    }
    if (refused.length === 0) return `cannot resolve ${host}: no address`;
    return `host ${host} resolves to ${refused.join(", ")}, which the egress allowlist does not name (add the range to allow it)`;
  }

  function handle(client: Socket): void {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    client.setTimeout(timeoutMs, () => client.destroy());
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > MAX_HEAD) {
          client.off("data", onData);
          reply(client, 431, "Request Header Fields Too Large", "the request head is too large");
        }
        return;
      }
      client.off("data", onData);
      client.pause();
      const rest = buf.subarray(end + 4);
      void route(client, buf.subarray(0, end).toString("latin1"), rest);
    };
    client.on("data", onData);
  }

  async function route(client: Socket, head: string, rest: Buffer): Promise<void> {
    const target = parseHead(head);
    if (typeof target === "string") {
      reply(client, 400, "Bad Request", target);
      return;
    }
    const record: EgressRecord = {
      host: target.host,
      port: target.port,
      allowed: false,
      reason: "",
      address: "",
      bytesSent: 0,
      bytesReceived: 0,
      kind: target.kind,
    };
    // The task's event log is bounded: past MAX_EGRESS_ATTEMPTS one last record says so.
    if (++attempts > MAX_EGRESS_ATTEMPTS) {
      if (attempts === MAX_EGRESS_ATTEMPTS + 1) {
        report({
          ...record,
          reason: `the task's cap of ${MAX_EGRESS_ATTEMPTS} connection attempts is reached; later attempts are refused unrecorded`,
        });
      }
      reply(
        client,
        403,
        "Forbidden",
        `denied: the task's cap of ${MAX_EGRESS_ATTEMPTS} connection attempts is reached`,
      );
      return;
    }
    const deny = (status: number, text: string, reason: string) => {
      record.reason = reason;
      report(record);
      reply(client, status, text, `denied: ${reason}`);
    };
    if (open >= maxConnections) {
      deny(403, "Forbidden", `the task's cap of ${maxConnections} open connections is reached`);
      return;
    }
    if (bytes >= maxBytes) {
      deny(403, "Forbidden", `the task's cap of ${maxBytes} bytes is used up`);
      return;
    }
    open++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        open--;
      }
    };
    const verdict = await admit(target.host, target.port);
    if (typeof verdict === "string" || closed || client.destroyed) {
      release();
      deny(403, "Forbidden", typeof verdict === "string" ? verdict : "the task ended");
      return;
    }
    record.allowed = true;
    record.address = verdict.address;
    const dest = options.dial?.(verdict.address, target.port) ?? {
      host: verdict.address,
      port: target.port,
    };
    const upstream = tcpConnect({ host: dest.host, port: dest.port });
    sockets.add(upstream);
    let connected = false;
    let done = false;
    const finish = (reason: string) => {
      if (done) return;
      done = true;
      if (record.reason === "") record.reason = reason;
      release();
      client.destroy();
      upstream.destroy();
      report(record);
    };
    upstream.setTimeout(timeoutMs, () => {
      if (!connected) {
        if (!done) {
          done = true;
          release();
          record.reason = `connecting to ${verdict.address}:${target.port} timed out`;
          report(record);
          upstream.destroy();
          reply(client, 504, "Gateway Timeout", record.reason);
        }
      }
    });
    upstream.on("error", (err: NodeJS.ErrnoException) => {
      if (!connected) {
        if (done) return;
        done = true;
        release();
        record.reason = `connecting to ${verdict.address}:${target.port} failed: ${err.code ?? err.message}`;
        report(record);
        reply(client, 502, "Bad Gateway", record.reason);
        return;
      }
      finish(`the connection failed: ${err.code ?? err.message}`);
    });
    upstream.on("close", () => sockets.delete(upstream));
    upstream.on("connect", () => {
      connected = true;
      upstream.setTimeout(0);
      client.setTimeout(0);
      // The task gave up while the proxy was connecting: free the slot now.
      if (client.destroyed) {
        finish("the task closed the connection before it was established");
        return;
      }
      const count = (n: number, dir: "bytesSent" | "bytesReceived"): boolean => {
        record[dir] += n;
        bytes += n;
        if (bytes > maxBytes) {
          finish(`the task's cap of ${maxBytes} bytes was reached`);
          return false;
        }
        return true;
      };
      const pump = (from: Socket, to: Socket, dir: "bytesSent" | "bytesReceived") => {
        from.on("data", (chunk: Buffer) => {
          if (!count(chunk.length, dir)) return;
          if (!to.write(chunk)) {
            from.pause();
            to.once("drain", () => from.resume());
          }
        });
        from.on("end", () => to.end());
      };
      let ends = 0;
      const ended = () => {
        if (++ends === 2) finish("");
      };
      client.on("close", () => finish(""));
      upstream.on("close", () => finish(""));
      client.on("end", ended);
      upstream.on("end", ended);
      pump(client, upstream, "bytesSent");
      pump(upstream, client, "bytesReceived");
      if (target.kind === "connect") {
        client.write("HTTP/1.1 200 Connection established\r\n\r\n");
      } else if (target.head) {
        if (!count(target.head.length, "bytesSent")) return;
        upstream.write(target.head);
      }
      if (rest.length > 0 && count(rest.length, "bytesSent")) upstream.write(rest);
      client.resume();
    });
  }

  const server: Server = createServer({ allowHalfOpen: true }, handle);
  await new Promise<void>((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => {
      server.off("error", reject);
      resolvePromise();
    });
  });
  server.on("error", (err) => options.logger?.warn({ err }, "egress proxy error"));
  return {
    get bytes() {
      return bytes;
    },
    async close() {
      closed = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
