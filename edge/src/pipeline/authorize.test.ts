import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
import { sampleTask } from "../store/contract.js";
import { createSqliteStore } from "../store/sqlite.js";
import type { TaskStore, WriteOptions } from "../store/types.js";
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

function rc(roles: string[] = ["developer"]): RequestContext {
  return {
    principal: { sub: "alice", roles, tenant: "acme", scopes: [] },
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    protocol: "connect",
    interface: "rpc",
    source: "127.0.0.1",
    logger,
    traceContext: ROOT_CONTEXT,
    traceparent: "",
  };
}

const execute = (command: string, args: string[]) => ({
  operation: "execute" as const,
  workspace: "default",
  command: { command, args, env: {}, cwd: "", timeout_seconds: 30 },
});

describe("pipeline.authorize", () => {
  it("allows, records the decision and returns obligations", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    const pipeline = createPipeline({
      policy,
      store,
      metrics: createEdgeMetrics(createMetricsRegistry("edge")),
      tracer,
    });
    const d = await pipeline.authorize(rc(), execute("ls", ["-la"]), { params: { command: "ls" } });
    assert.equal(d.allow, true);
    assert.ok(d.obligations.max_timeout_seconds > 0);
    const [record] = await store.listAudit({ limit: 10 });
    assert.equal(record?.decision, "allow");
    assert.equal(record?.outcome, "allowed");
    assert.equal(record?.policyRevision, policy.revision());
    assert.equal(record?.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  });

  it("denies with the policy's reasons and records the denial", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    const pipeline = createPipeline({
      policy,
      store,
      metrics: createEdgeMetrics(createMetricsRegistry("edge")),
      tracer,
    });
    await assert.rejects(
      pipeline.authorize(rc(), execute("sudo", ["id"]), { params: {} }),
      (err: unknown) => {
        const ce = ConnectError.from(err);
        return ce.code === Code.PermissionDenied && /sudo/i.test(ce.rawMessage);
      },
    );
    const [record] = await store.listAudit({ limit: 10 });
    assert.equal(record?.decision, "deny");
    assert.ok((record?.reasons.length ?? 0) > 0);
  });

  it("writes an allowed record not durable only when asked; a denial always durably", async () => {
    const inner = createSqliteStore({ path: ":memory:" });
    const writes: (WriteOptions | undefined)[] = [];
    const spy: TaskStore = {
      ...inner,
      appendAudit(entry, write) {
        writes.push(write);
        return inner.appendAudit(entry, write);
      },
    };
    const pipeline = createPipeline({
      policy,
      store: spy,
      metrics: createEdgeMetrics(createMetricsRegistry("edge")),
      tracer,
    });
    const facts = { params: {}, durable: false } as const;
    await pipeline.authorize(rc(), execute("ls", []), facts);
    await pipeline.authorize(rc(), execute("ls", []), { params: {} });
    await assert.rejects(pipeline.authorize(rc(), execute("sudo", ["id"]), facts));
    assert.deepEqual(writes, [{ durable: false }, undefined, undefined]);
  });

  it("hands a record written not durable to checkpoints and exporters only once it is synced", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mcpg-pipeline-"));
    const store = createSqliteStore({ path: join(dir, "edge.db") });
    const handed: number[] = [];
    const pipeline = createPipeline({
      policy,
      store,
      metrics: createEdgeMetrics(createMetricsRegistry("edge")),
      tracer,
      onAppend: (r) => handed.push(r.seq),
    });
    try {
      await pipeline.authorize(rc(), execute("ls", []), { params: {}, durable: false });
      // Committed (the caller's next write comes after it) but not yet handed on.
      assert.equal((await store.listAudit({ limit: 10 })).length, 1);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(handed, []);
      assert.equal(store.writeStats().syncs, 0);
      // The caller's durable write syncs it.
      await store.createTask(sampleTask("task-p"));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(handed, [1]);
      // A durable append is handed on when it resolves.
      await pipeline.authorize(rc(), execute("ls", []), { params: {} });
      assert.deepEqual(handed, [1, 2]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to act when the audit trail cannot be written", async () => {
    const inner = createSqliteStore({ path: ":memory:" });
    const broken: TaskStore = {
      ...inner,
      async appendAudit() {
        throw new Error("disk full");
      },
    };
    const pipeline = createPipeline({
      policy,
      store: broken,
      metrics: createEdgeMetrics(createMetricsRegistry("edge")),
      tracer,
    });
    await assert.rejects(
      pipeline.authorize(rc(), execute("ls", []), { params: {} }),
      (err: unknown) => {
        const ce = ConnectError.from(err);
        return ce.code === Code.Unavailable && /audit trail cannot be written/.test(ce.rawMessage);
      },
    );
  });

  it("denies everything when no policy bundle is loaded (fail closed)", async () => {
    const missing = await createPolicyEngine({
      bundlePath: "/nonexistent/bundle.tar.gz",
      logger,
      pollIntervalMs: 0,
    });
    const store = createSqliteStore({ path: ":memory:" });
    const pipeline = createPipeline({
      policy: missing,
      store,
      metrics: createEdgeMetrics(createMetricsRegistry("edge")),
      tracer,
    });
    await assert.rejects(
      pipeline.authorize(rc(["admin"]), execute("ls", []), { params: {} }),
      (err: unknown) => {
        return ConnectError.from(err).code === Code.PermissionDenied;
      },
    );
    missing.close();
    const [record] = await store.listAudit({ limit: 10 });
    assert.equal(record?.decision, "deny");
  });
});
