import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createPeerRefusals } from "./peer-refusals.js";

describe("peer refusals", () => {
  it("counts per peer, identities and reason, and drains", () => {
    const r = createPeerRefusals();
    r.record("10.0.0.9", ["spiffe://mcp-gateway/runner/r2"], "identity_not_allowed");
    r.record("10.0.0.9", ["spiffe://mcp-gateway/runner/r2"], "identity_not_allowed");
    r.record("10.0.0.9", [], "tls_handshake_failed");
    const out = r.drain();
    assert.equal(out.length, 2);
    const id = out.find((x) => x.reason === "identity_not_allowed");
    assert.equal(id?.count, 2);
    assert.deepEqual(id?.identities, ["spiffe://mcp-gateway/runner/r2"]);
    assert.ok((id?.firstMs ?? 0n) <= (id?.lastMs ?? 0n));
    assert.deepEqual(r.drain(), []);
  });

  it("puts back a failed report, merged with what came since", () => {
    const r = createPeerRefusals();
    r.record("10.0.0.9", [], "tls_handshake_failed");
    const taken = r.drain();
    r.record("10.0.0.9", [], "tls_handshake_failed");
    r.restore(taken);
    const out = r.drain();
    assert.equal(out.length, 1);
    assert.equal(out[0]?.count, 2);
  });

  it("stays bounded under a flood of distinct peers, counting the rest under *", () => {
    const r = createPeerRefusals();
    for (let i = 0; i < 10_000; i++)
      r.record(`10.1.${i >> 8}.${i & 255}`, [], "tls_handshake_failed");
    const out = r.drain();
    assert.ok(out.length <= 257, String(out.length));
    assert.equal(
      out.reduce((n, x) => n + x.count, 0),
      10_000,
    );
    assert.equal(out.find((x) => x.peer === "*")?.count, 10_000 - 256);
  });
});
