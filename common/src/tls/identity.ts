import type { PeerCertificate, TLSSocket } from "node:tls";
import { checkServerIdentity } from "node:tls";

/** Trust domain of every identity the gateway issues or accepts. */
export const TRUST_DOMAIN = "mcp-gateway";

/** The URI SAN naming an edge: `spiffe://mcp-gateway/edge/<id>`. */
export function edgeIdentity(id: string): string {
  return `spiffe://${TRUST_DOMAIN}/edge/${id}`;
}

/**
 * The URI SAN naming a monitoring client (e.g. Prometheus):
 * `spiffe://mcp-gateway/monitor/<id>`. Runners let it read /metrics and
 * /health, nothing else.
 */
export function monitorIdentity(id: string): string {
  return `spiffe://${TRUST_DOMAIN}/monitor/${id}`;
}

/** The URI SAN naming a runner: `spiffe://mcp-gateway/runner/<id>`. */
export function runnerIdentity(id: string): string {
  return `spiffe://${TRUST_DOMAIN}/runner/${id}`;
}

/**
 * Splits Node's `subjectaltname` text (`URI:spiffe://…, DNS:localhost, IP Address:127.0.0.1`)
 * into entries like `URI:spiffe://…`. Node JSON-quotes values that contain
 * separators; those are unquoted, so a value with an embedded `, URI:` cannot
 * smuggle in a second entry.
 */
export function parseSubjectAltName(text: string): string[] {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      current += ch;
      if (ch === "\\") {
        current += text[i + 1] ?? "";
        i++;
      } else if (ch === '"') {
        quoted = false;
      }
    } else if (ch === '"') {
      quoted = true;
      current += ch;
    } else if (ch === "," && text[i + 1] === " ") {
      out.push(unquoteEntry(current));
      current = "";
      i++;
    } else {
      current += ch;
    }
  }
  if (current !== "") out.push(unquoteEntry(current));
  return out;
}

function unquoteEntry(entry: string): string {
  const colon = entry.indexOf(":");
  if (colon < 0) return entry;
  const value = entry.slice(colon + 1);
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    try {
      return `${entry.slice(0, colon)}:${JSON.parse(value) as string}`;
    } catch {
      return entry;
    }
  }
  return entry;
}

/**
 * The URI SANs of a peer certificate as Node reports it
 * (`tls.PeerCertificate.subjectaltname`). Empty when there are none.
 */
export function peerIdentities(cert: PeerCertificate): string[] {
  const san = (cert as { subjectaltname?: string }).subjectaltname;
  if (typeof san !== "string" || san === "") return [];
  return parseSubjectAltName(san)
    .filter((entry) => entry.startsWith("URI:"))
    .map((entry) => entry.slice("URI:".length));
}

/** Options of {@link checkRunnerIdentity}. */
export interface CheckRunnerIdentityOptions {
  /**
   * Also run Node's standard hostname check against the DNS/IP SANs (default
   * true). Set false for a PKI that issues only SPIFFE URI SANs; the URI SAN
   * check is always done.
   */
  checkHostname?: boolean;
}

/**
 * A `checkServerIdentity` for TLS clients that call a runner: the runner's
 * certificate must carry exactly the expected URI SAN (e.g.
 * `runnerIdentity("a")`). By default the usual hostname check is done as well
 * (defence in depth; the dev PKI puts the hosts into runner certificates). Node
 * only calls this after the chain verified against the configured CA.
 *
 * @example
 * https.request(url, { ca, cert, key, checkServerIdentity: checkRunnerIdentity(runnerIdentity("a")) });
 */
export function checkRunnerIdentity(
  expected: string,
  options: CheckRunnerIdentityOptions = {},
): (host: string, cert: PeerCertificate) => Error | undefined {
  const checkHostname = options.checkHostname ?? true;
  return (host, cert) => {
    const ids = peerIdentities(cert);
    if (!ids.includes(expected)) {
      const err = new Error(
        `runner certificate identity mismatch: expected ${expected}, got ${ids.length === 0 ? "no URI SAN" : ids.join(", ")}`,
      ) as Error & { code: string; reason: string; host: string };
      err.code = "ERR_TLS_CERT_ALTNAME_INVALID";
      err.reason = "runner identity mismatch";
      err.host = host;
      return err;
    }
    return checkHostname ? checkServerIdentity(host, cert) : undefined;
  };
}

/**
 * True when the TLS socket's peer presented a certificate that verified
 * against the CA (`socket.authorized`) and carries a URI SAN in `allowed`.
 * An entry ending in `/*` allows any one final path segment, e.g.
 * `spiffe://mcp-gateway/edge/*` allows every edge but not `…/edge/a/b`.
 */
export function isAllowedPeer(socket: TLSSocket, allowed: string[]): boolean {
  if (!socket.authorized) return false;
  const cert = socket.getPeerCertificate();
  if (cert === null || typeof cert !== "object" || Object.keys(cert).length === 0) return false;
  const ids = peerIdentities(cert);
  return ids.some((id) => allowed.some((pattern) => identityMatches(pattern, id)));
}

function identityMatches(pattern: string, id: string): boolean {
  if (pattern.endsWith("/*")) {
    const prefix = pattern.slice(0, -1);
    const rest = id.slice(prefix.length);
    return id.startsWith(prefix) && rest.length > 0 && !rest.includes("/");
  }
  return pattern === id;
}
