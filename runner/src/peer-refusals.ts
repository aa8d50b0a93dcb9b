import { create } from "@bufbuild/protobuf";
import { type PeerRefusal, PeerRefusalSchema } from "@mcp-gateway/proto/runner/v1";

/** Why a connection to the runner's port was refused. */
export type PeerRefusalReason = "identity_not_allowed" | "tls_handshake_failed";

/** Refusals counted since the last report, for the edges' audit chain. */
export interface PeerRefusals {
  /** Counts one refused connection. */
  record(peer: string, identities: readonly string[], reason: PeerRefusalReason): void;
  /** Takes what was counted since the last drain (the log is empty afterwards). */
  drain(): PeerRefusal[];
  /** Puts back what a failed report took, merged with what came since. */
  restore(refusals: readonly PeerRefusal[]): void;
}

/** Peers (address, identities, reason) counted separately; more are counted under peer "*". */
const MAX_KEYS = 256;
const MAX_IDENTITIES = 8;
const MAX_FACT = 256;

const clip = (v: string) => (v.length > MAX_FACT ? `${v.slice(0, MAX_FACT)}…` : v);

/**
 * The runner's refused connections (mTLS identity or handshake), kept as counts per peer,
 * identities and reason until an edge collects them with a probe (`Info`) or a heartbeat and
 * records them in the audit chain (issue 18) — the runner has no chain of its own. Bounded:
 * at most 256 distinct keys, the rest counted under peer "*", so a flood of connections
 * costs constant memory and a bounded report.
 *
 * @example
 * const refusals = createPeerRefusals();
 * refusals.record("10.0.0.9", ["spiffe://mcp-gateway/runner/r2"], "identity_not_allowed");
 * infoResponse.refusals = refusals.drain();
 */
export function createPeerRefusals(): PeerRefusals {
  let entries = new Map<string, PeerRefusal>();

  function add(r: PeerRefusal): void {
    let key = `${r.peer}\u0000${r.identities.join(",")}\u0000${r.reason}`;
    let peer = r.peer;
    let identities = r.identities;
    if (!entries.has(key) && entries.size >= MAX_KEYS) {
      peer = "*";
      identities = [];
      key = `*\u0000\u0000${r.reason}`;
    }
    const e = entries.get(key);
    if (e) {
      e.count += r.count;
      // int64 fields are bigints (no Math.min/max).
      if (r.firstMs < e.firstMs) e.firstMs = r.firstMs;
      if (r.lastMs > e.lastMs) e.lastMs = r.lastMs;
      return;
    }
    entries.set(key, create(PeerRefusalSchema, { ...r, peer, identities: [...identities] }));
  }

  return {
    record(peer, identities, reason) {
      const now = BigInt(Date.now());
      add(
        create(PeerRefusalSchema, {
          peer: clip(peer),
          identities: identities.slice(0, MAX_IDENTITIES).map(clip),
          reason,
          count: 1,
          firstMs: now,
          lastMs: now,
        }),
      );
    },
    drain() {
      const out = [...entries.values()];
      entries = new Map();
      return out;
    },
    restore(refusals) {
      for (const r of refusals) add(create(PeerRefusalSchema, { ...r }));
    },
  };
}
