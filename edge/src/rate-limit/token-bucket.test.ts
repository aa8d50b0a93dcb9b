import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRateLimiter } from "./token-bucket.js";

function fakeClock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("createRateLimiter", () => {
  it("allows a full burst, then refuses with the wait until one token refills", () => {
    const clock = fakeClock();
    const limiter = createRateLimiter({ ratePerSecond: 2, burst: 3, now: clock.now });
    assert.deepEqual(
      [limiter.take("alice"), limiter.take("alice"), limiter.take("alice")],
      [0, 0, 0],
    );
    assert.equal(limiter.take("alice"), 500, "2 tokens/s: one token takes 500 ms");
    clock.advance(499);
    assert.equal(limiter.take("alice"), 1);
    clock.advance(1);
    assert.equal(limiter.take("alice"), 0);
    assert.equal(limiter.take("alice"), 500);
  });

  it("keeps principals independent", () => {
    const clock = fakeClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 1, now: clock.now });
    assert.equal(limiter.take("alice"), 0);
    assert.equal(limiter.take("alice"), 1000);
    assert.equal(limiter.take("bob"), 0);
  });

  it("refills at the configured rate but never beyond the burst", () => {
    const clock = fakeClock();
    const limiter = createRateLimiter({ ratePerSecond: 10, burst: 5, now: clock.now });
    for (let i = 0; i < 5; i++) assert.equal(limiter.take("k"), 0);
    clock.advance(60_000);
    for (let i = 0; i < 5; i++) assert.equal(limiter.take("k"), 0);
    assert.equal(limiter.take("k"), 100);
  });

  it("charges costs and refuses without taking tokens", () => {
    const clock = fakeClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 10, now: clock.now });
    assert.equal(limiter.take("k", 8), 0);
    assert.equal(limiter.take("k", 4), 2000, "2 tokens left, 4 needed: 2 s");
    assert.equal(limiter.take("k", 2), 0, "the refused take did not consume");
    assert.throws(() => limiter.take("k", 11), RangeError);
    assert.throws(() => limiter.take("k", 0), RangeError);
  });

  it("bounds memory to maxKeys, forgetting keys unused the longest", () => {
    const clock = fakeClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 4, now: clock.now });
    assert.equal(limiter.take("a"), 0);
    assert.equal(limiter.take("b"), 0);
    assert.equal(limiter.take("c"), 0, "generation full: a, b age");
    assert.equal(limiter.take("a"), 1000, "a is still tracked (and empty), now recent again");
    assert.equal(limiter.take("d"), 0, "b is dropped with the old generation");
    assert.equal(limiter.take("a"), 1000, "a survived: it was used recently");
    assert.equal(limiter.take("b"), 0, "b was forgotten and starts full");
  });

  it("never holds more than maxKeys buckets under key churn", () => {
    const clock = fakeClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 100, now: clock.now });
    for (let i = 0; i < 10_000; i++) limiter.take(`k${i}`);
    // The last 50 keys are in the recent generation: all still empty.
    for (let i = 9_950; i < 10_000; i++) assert.equal(limiter.take(`k${i}`), 1000, `k${i} tracked`);
    // Keys from long ago were forgotten (they start full again).
    assert.equal(limiter.take("k0"), 0);
  });

  it("ignores a clock that goes backwards", () => {
    const clock = fakeClock();
    const limiter = createRateLimiter({ ratePerSecond: 1, burst: 1, now: clock.now });
    assert.equal(limiter.take("k"), 0);
    clock.advance(-10_000);
    assert.equal(limiter.take("k"), 1000);
  });

  it("refuses nonsensical options", () => {
    assert.throws(() => createRateLimiter({ ratePerSecond: 0, burst: 1 }), RangeError);
    assert.throws(() => createRateLimiter({ ratePerSecond: 1, burst: 0 }), RangeError);
    assert.throws(() => createRateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 1 }), RangeError);
  });
});
