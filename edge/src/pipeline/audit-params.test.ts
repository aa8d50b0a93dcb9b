import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createLogger } from "@mcp-gateway/common/logger";
import { createMetricsRegistry } from "@mcp-gateway/common/metrics";
import {
  createPolicyEngine,
  DEFAULT_BUNDLE_PATH,
  type PolicyEngine,
} from "@mcp-gateway/common/policy";
import { createTracing, ROOT_CONTEXT } from "@mcp-gateway/common/tracing";
import { createEdgeMetrics } from "../metrics.js";
import { createSqliteStore } from "../store/sqlite.js";
import { auditParamsDigest, boundAuditParams } from "./audit-params.js";
import { createPipeline } from "./authorize.js";
import type { RequestContext } from "./context.js";

const logger = createLogger({ name: "test", level: "silent" });
const tracer = createTracing({ serviceName: "test", instanceId: "t", logger }).tracer;
let policy: PolicyEngine;

before(async () => {
  assert.ok(
    existsSync(DEFAULT_BUNDLE_PATH),
    "policy bundle missing: run bash scripts/build-policy.sh",
  );
  policy = await createPolicyEngine({ bundlePath: DEFAULT_BUNDLE_PATH, logger, pollIntervalMs: 0 });
});
after(() => policy.close());

const viewer: RequestContext = {
  principal: { sub: "vera", roles: ["viewer"], tenant: "acme", scopes: [] },
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  protocol: "connect",
  interface: "rpc",
  source: "127.0.0.1",
  logger,
  traceContext: ROOT_CONTEXT,
  traceparent: "",
};

describe("audit records are bounded (issue 21, finding 3)", () => {
  it("small parameters are kept as they are", () => {
    const params = { command: "ls", args: ["-la"], workspace: "default" };
    assert.equal(boundAuditParams(params), params);
  });

  it("a denied ExecuteCommand with the largest arguments validation admits stores ~16 KiB, with a verifiable digest", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    const pipeline = createPipeline({
      policy,
      store,
      metrics: createEdgeMetrics(createMetricsRegistry("edge")),
      tracer,
    });
    // 256 args of 1,000 characters: inside the validation bounds, about 256 KB of parameters.
    const args = new Array<string>(256).fill("y".repeat(1000));
    const params = { command: "echo", args, env: {}, cwd: "", workspace: "default", timeout: 0 };
    await assert.rejects(
      pipeline.authorize(
        viewer,
        {
          operation: "execute",
          workspace: "default",
          command: { command: "echo", args, env: {}, cwd: "", timeout_seconds: 30 },
        },
        { params },
      ),
      (err: unknown) => err instanceof ConnectError && err.code === Code.PermissionDenied,
    );
    const [record] = await store.listAudit({ limit: 10 });
    assert.ok(record);
    assert.equal(record.decision, "deny");
    const stored = JSON.stringify(record);
    assert.ok(stored.length < 20 * 1024, `audit record is ${stored.length} bytes`);
    assert.ok(JSON.stringify(params).length > 250_000, "the request itself was ~256 KB");
    const p = record.params as {
      command: string;
      args: { $truncated: boolean; $count: number; $sha256: string; $head: string[] };
      $params: { $bytes: number; $sha256: string };
    };
    assert.equal(p.command, "echo", "small values are kept");
    assert.equal(p.args.$truncated, true);
    assert.equal(p.args.$count, 256);
    assert.equal(p.args.$head.length, 8);
    // Anyone holding the original request can show it is the one audited.
    assert.equal(p.$params.$sha256, auditParamsDigest(params));
    assert.notEqual(p.$params.$sha256, auditParamsDigest({ ...params, args: args.slice(1) }));
    await store.close();
  });
});
