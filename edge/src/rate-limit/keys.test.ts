import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { principalKey } from "./keys.js";
import { createRateLimiter } from "./token-bucket.js";

describe("rate-limit key (issue 21, finding 6)", () => {
  it("alice of one tenant or issuer does not throttle alice of another", () => {
    let t = 0;
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 2, now: () => t });
    const acme = { sub: "alice", tenant: "acme" };
    const globex = { sub: "alice", tenant: "globex" };
    const take = (iss: string, p: typeof acme) => limiter.take(principalKey(iss, p));
    assert.equal(take("idp-1", acme), 0);
    assert.equal(take("idp-1", acme), 0);
    assert.ok(take("idp-1", acme) > 0, "acme's alice is out of tokens");
    assert.equal(take("idp-1", globex), 0, "globex's alice has her own bucket");
    assert.equal(take("idp-2", acme), 0, "another issuer's alice has her own bucket");
    t += 1000;
    assert.equal(take("idp-1", acme), 0, "refills");
  });

  it("no choice of claim values makes two triples collide", () => {
    const keys = new Set([
      principalKey("a", { tenant: "b\u0000c", sub: "d" }),
      principalKey("a", { tenant: "b", sub: "c\u0000d" }),
      principalKey("a\u0000b", { tenant: "c", sub: "d" }),
      principalKey("a", { tenant: 'b","c', sub: "d" }),
      principalKey("a", { tenant: "b", sub: 'c","d' }),
    ]);
    assert.equal(keys.size, 5);
  });
});
