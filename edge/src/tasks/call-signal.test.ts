import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import { callSignal } from "./task-service.js";

describe("callSignal", () => {
  it("follows the edge's shutdown while the call runs, and holds nothing on it afterwards", () => {
    const shutdown = new AbortController();
    // Many finished calls (one per task): none may stay attached to the lifetime signal.
    for (let i = 0; i < 1000; i++) {
      const call = callSignal(shutdown.signal);
      assert.equal(getEventListeners(shutdown.signal, "abort").length, 1);
      call.release();
    }
    assert.equal(getEventListeners(shutdown.signal, "abort").length, 0);

    const running = callSignal(shutdown.signal);
    shutdown.abort(new Error("edge stopping"));
    assert.equal(running.signal.aborted, true);
    assert.equal((running.signal.reason as Error).message, "edge stopping");
    running.release();

    const late = callSignal(shutdown.signal);
    assert.equal(late.signal.aborted, true, "a call made after shutdown starts aborted");
  });

  it("a released call is not aborted by a later shutdown", () => {
    const shutdown = new AbortController();
    const call = callSignal(shutdown.signal);
    call.release();
    shutdown.abort();
    assert.equal(call.signal.aborted, false);
  });
});
