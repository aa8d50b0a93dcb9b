import assert from "node:assert/strict";
import { setMaxListeners } from "node:events";
import { describe, it } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@mcp-gateway/proto/grpc/health/v1";
import { createHealthService } from "./health.js";

/** A Health client over an in-memory transport, with readiness problems the test sets. */
function setup() {
  const state = { problems: [] as string[], checks: 0 };
  const transport = createRouterTransport((router) =>
    router.service(
      Health,
      createHealthService({
        services: ["mcp.McpService"],
        readiness: async () => {
          state.checks++;
          return state.problems;
        },
        watchIntervalMs: 20,
      }),
    ),
  );
  return { state, client: createClient(Health, transport) };
}

describe("grpc.health.v1.Health", () => {
  it("Check answers SERVING when ready and NOT_SERVING with any readiness problem", async () => {
    const { state, client } = setup();
    assert.equal((await client.check({})).status, ServingStatus.SERVING);
    assert.equal((await client.check({ service: "mcp.McpService" })).status, ServingStatus.SERVING);
    state.problems = ["draining"];
    assert.equal((await client.check({})).status, ServingStatus.NOT_SERVING);
    assert.equal(
      (await client.check({ service: "mcp.McpService" })).status,
      ServingStatus.NOT_SERVING,
    );
  });

  it("Check fails with NOT_FOUND for a service it does not report on (an internal one too)", async () => {
    const { client } = setup();
    for (const service of ["nope", "mcp.runner.v1.RunnerService"]) {
      await assert.rejects(
        client.check({ service }),
        (err: unknown) => ConnectError.from(err).code === Code.NotFound,
      );
    }
  });

  it("List reports the server and every listed service", async () => {
    const { state, client } = setup();
    state.problems = ["standby"];
    const res = await client.list({});
    assert.deepEqual(Object.keys(res.statuses).sort(), ["", "mcp.McpService"]);
    for (const s of Object.values(res.statuses)) assert.equal(s.status, ServingStatus.NOT_SERVING);
  });

  it("Watch sends the status at once, then each change, and stops when the call ends", async () => {
    const { state, client } = setup();
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const stream = client.watch({ service: "mcp.McpService" }, { signal: abort.signal });
    const done = (async () => {
      for await (const res of stream) {
        seen.push(res.status);
        if (seen.length === 1) state.problems = ["draining"];
        if (seen.length === 2) state.problems = [];
        if (seen.length === 3) abort.abort();
      }
    })();
    await assert.rejects(done, (err: unknown) => ConnectError.from(err).code === Code.Canceled);
    assert.deepEqual(seen, [
      ServingStatus.SERVING,
      ServingStatus.NOT_SERVING,
      ServingStatus.SERVING,
    ]);
    // The shared poll stops once nobody watches.
    const checks = state.checks;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(state.checks <= checks + 1, `readiness still polled: ${state.checks - checks} more`);
  });

  it("Watch of an unknown service answers SERVICE_UNKNOWN and keeps the stream open", async () => {
    const { client } = setup();
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const done = (async () => {
      for await (const res of client.watch({ service: "nope" }, { signal: abort.signal })) {
        seen.push(res.status);
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen, [ServingStatus.SERVICE_UNKNOWN]);
    abort.abort();
    await assert.rejects(done, (err: unknown) => ConnectError.from(err).code === Code.Canceled);
  });

  it("many watchers share one readiness poll", async () => {
    const { state, client } = setup();
    const abort = new AbortController();
    setMaxListeners(50, abort.signal);
    const streams = Array.from({ length: 20 }, () =>
      (async () => {
        for await (const _ of client.watch({}, { signal: abort.signal })) {
          // keep watching
        }
      })().catch(() => undefined),
    );
    await new Promise((r) => setTimeout(r, 50));
    const before = state.checks;
    await new Promise((r) => setTimeout(r, 200));
    const polls = state.checks - before;
    abort.abort();
    await Promise.all(streams);
    // ~10 intervals of 20 ms: one check each, not one per watcher (that would be ~200).
    assert.ok(polls > 0 && polls <= 15, `readiness checked ${polls} times for 20 watchers`);
  });
});
