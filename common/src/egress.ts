/**
 * Egress allowlist entries of network "restricted" (issue 15, docs/security/sandbox.md
 * "Egress"): parsing (the edge refuses a malformed entry with InvalidArgument naming it) and
 * matching (the runner's egress proxy). The policy (policies/mcp/authz/network.rego) accepts
 * exactly the same syntax.
 */
import { BlockList, isIP } from "node:net";
import { GatewayError } from "./errors.js";

/** One parsed allowlist entry. */
export interface EgressEntry {
  /** The entry as written (lower-cased). */
  text: string;
  /** "name" (exact), "wildcard" (`*.domain`: any name below it), "ip" or "cidr". */
  kind: "name" | "wildcard" | "ip" | "cidr";
  /** Name, `*.domain`, IP address or `address/prefix` (IPv6 without brackets). */
  host: string;
  /** Port, or null: any port. */
  port: number | null;
}

/** Most entries in one list. */
export const MAX_EGRESS_ENTRIES = 64;

const ENTRY =
  /^(?:\[([0-9a-f:.]+(?:\/[0-9]{1,3})?)\]|([a-z0-9*.-]+(?:\/[0-9]{1,2})?))(?::([0-9]{1,5}))?$/;
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const WILDCARD = /^\*(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
const IPV4 = /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/;

function validIp(host: string): 4 | 6 | 0 {
  if (IPV4.test(host)) return host.split(".").every((o) => Number(o) <= 255) ? 4 : 0;
  return host.includes(":") && isIP(host) === 6 ? 6 : 0;
}

/**
 * Parses one entry: `host`, `host:port`, `*.domain[:port]`, an IPv4 literal or range
 * (`203.0.113.7`, `10.0.0.0/8`), an IPv6 literal or range in brackets (`[2001:db8::1]:443`,
 * `[fd00::/8]`). Case-insensitive.
 *
 * @example
 * parseEgressEntry("*.example.com:443"); // { kind: "wildcard", host: "*.example.com", port: 443, ... }
 * @throws GatewayError invalid_argument naming the entry
 */
export function parseEgressEntry(raw: string): EgressEntry {
  const text = raw.toLowerCase();
  const bad = () =>
    new GatewayError(
      "invalid_argument",
      `invalid allow_hosts entry ${JSON.stringify(raw)}: use host, host:port, *.domain[:port], an IP literal or a CIDR range`,
    );
  const m = ENTRY.exec(text);
  if (!m) throw bad();
  const host = m[1] ?? m[2] ?? "";
  const port = m[3] === undefined ? null : Number(m[3]);
  if (port !== null && (port < 1 || port > 65535)) throw bad();
  if (host.includes("/")) {
    const [addr = "", bits = ""] = host.split("/");
    const family = validIp(addr);
    const prefix = Number(bits);
    if (family === 0 || !Number.isInteger(prefix) || prefix > (family === 4 ? 32 : 128)) {
      throw bad();
    }
    return { text, kind: "cidr", host, port };
  }
  if (validIp(host) !== 0) return { text, kind: "ip", host, port };
  if (/^[0-9.]+$/.test(host)) throw bad();
  if (NAME.test(host) && host.length <= 253) return { text, kind: "name", host, port };
  if (WILDCARD.test(host) && !/^[0-9.*]+$/.test(host))
    return { text, kind: "wildcard", host, port };
  throw bad();
}

/**
 * Parses a request's list (at most {@link MAX_EGRESS_ENTRIES}).
 *
 * @throws GatewayError invalid_argument naming the first malformed entry
 */
export function parseEgressList(list: readonly string[]): EgressEntry[] {
  if (list.length > MAX_EGRESS_ENTRIES) {
    throw new GatewayError(
      "invalid_argument",
      `allow_hosts has ${list.length} entries; at most ${MAX_EGRESS_ENTRIES} are allowed`,
    );
  }
  return list.map(parseEgressEntry);
}

/** Decides single connections against one allowlist (the egress proxy's view). */
export interface EgressMatcher {
  /**
   * The entry admitting a connection to `host` (a name or an IP literal) on `port`, or null.
   * IP literals are admitted only by "ip" or "cidr" entries.
   */
  admits(host: string, port: number): EgressEntry | null;
  /** True when a CIDR entry (for `port`) names the range of a resolved address. */
  rangeAllows(address: string, port: number): boolean;
}

function portOk(entry: EgressEntry, port: number): boolean {
  return entry.port === null || entry.port === port;
}

/**
 * Builds the matcher of an allowlist.
 *
 * @example
 * const m = createEgressMatcher(["*.example.com:443", "10.0.0.0/8"]);
 * m.admits("a.example.com", 443); // the wildcard entry
 * m.admits("a.example.com", 80);  // null
 * m.rangeAllows("10.1.2.3", 80);  // true
 */
export function createEgressMatcher(list: readonly string[]): EgressMatcher {
  const entries = list.map(parseEgressEntry);
  const ranges = entries.filter((e) => e.kind === "cidr" || e.kind === "ip");
  function inRange(entry: EgressEntry, address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    const block = new BlockList();
    const type = family === 4 ? "ipv4" : "ipv6";
    if (entry.kind === "ip") {
      if (isIP(entry.host) !== family) return false;
      block.addAddress(entry.host, type);
    } else {
      const [addr = "", bits = "0"] = entry.host.split("/");
      if (isIP(addr) !== family) return false;
      block.addSubnet(addr, Number(bits), type);
    }
    return block.check(address, type);
  }
  return {
    admits(rawHost, port) {
      const host = rawHost
        .toLowerCase()
        .replace(/^\[(.*)\]$/, "$1")
        .replace(/\.$/, "");
      const literal = isIP(host) !== 0;
      // Only a well-formed name is matched: a NUL, space or slash would pass a suffix test here
      // and be cut or read differently by the resolver ("1.2.3.4\0.example.com").
      if (!literal && !(host.length <= 253 && NAME.test(host))) return null;
      for (const e of entries) {
        if (!portOk(e, port)) continue;
        if (literal) {
          if ((e.kind === "ip" || e.kind === "cidr") && inRange(e, host)) return e;
          continue;
        }
        if (e.kind === "name" && e.host === host) return e;
        if (e.kind === "wildcard" && host.endsWith(e.host.slice(1))) return e;
      }
      return null;
    },
    rangeAllows(address, port) {
      return ranges.some((e) => e.kind === "cidr" && portOk(e, port) && inRange(e, address));
    },
  };
}

const SPECIAL_V4: readonly [string, number, string][] = [
  ["0.0.0.0", 8, "this network"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "carrier-grade NAT"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local (cloud metadata)"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "IETF protocol assignments"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];
const SPECIAL_V6: readonly [string, number, string][] = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["::ffff:0:0", 96, "IPv4-mapped"],
  ["64:ff9b::", 96, "NAT64"],
  ["fc00::", 7, "unique local (private; fd00:ec2::254 is cloud metadata)"],
  ["fe80::", 10, "link-local"],
  ["ff00::", 8, "multicast"],
];

/**
 * Why an address is not a public unicast address (loopback, private, link-local and cloud
 * metadata, multicast ...), or null when it is public.
 *
 * @example
 * specialAddress("169.254.169.254"); // "link-local (cloud metadata)"
 * specialAddress("203.0.113.10");    // null
 */
export function specialAddress(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return "not an IP address";
  const table = family === 4 ? SPECIAL_V4 : SPECIAL_V6;
  const type = family === 4 ? "ipv4" : "ipv6";
  for (const [net, bits, why] of table) {
    const block = new BlockList();
    block.addSubnet(net, bits, type);
    if (block.check(address, type)) return why;
  }
  return null;
}
