import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type ServiceImpl,
} from "@connectrpc/connect";
import { createLogger } from "@mcp-gateway/common/logger";
import { createMetricsRegistry } from "@mcp-gateway/common/metrics";
import { createTracing } from "@mcp-gateway/common/tracing";
import {
  Health,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@mcp-gateway/proto/grpc/health/v1";
import {
  GetTaskStatusResponseSchema,
  HealthResponseSchema,
  McpService,
} from "@mcp-gateway/proto/mcp";
import { createEdgeMetrics } from "../metrics.js";
import { createEdgeInterceptor, procedureName } from "./interceptor.js";

const logger = createLogger({ name: "test", level: "silent" });
const tracer = createTracing({ serviceName: "test", instanceId: "t", logger }).tracer;

/** Clients of McpService and Health behind the edge interceptor with the given public procedures. */
function setup(publicMethods: string[]) {
  const authenticated: string[] = [];
  const mcp: Partial<ServiceImpl<typeof McpService>> = {
    health: () => create(HealthResponseSchema, { status: "ok" }),
    getTaskStatus: () => create(GetTaskStatusResponseSchema, {}),
  };
  const health: Partial<ServiceImpl<typeof Health>> = {
    check: () =>
      create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }),
  };
  const transport = createRouterTransport(
    (router) => {
      router.service(McpService, mcp);
      router.service(Health, health);
    },
    {
      router: {
        interceptors: [
          createEdgeInterceptor({
            authenticate: async (authorization) => {
              authenticated.push(authorization ?? "");
              if (authorization !== "Bearer good") {
                throw new ConnectError("authentication required", Code.Unauthenticated);
              }
              return { sub: "alice", roles: [], tenant: "acme", scopes: [] };
            },
            rateLimit: () => 0,
            publicMethods: new Set(publicMethods),
            metrics: createEdgeMetrics(createMetricsRegistry("edge")),
            logger,
            tracer,
          }),
        ],
      },
    },
  );
  return {
    authenticated,
    mcp: createClient(McpService, transport),
    health: createClient(Health, transport),
  };
}

const unauthenticated = (err: unknown) => ConnectError.from(err).code === Code.Unauthenticated;

describe("edge interceptor: public procedures", () => {
  it("names procedures by service and method", () => {
    assert.equal(procedureName(McpService.method.health), "mcp.McpService/Health");
    assert.equal(procedureName(Health.method.check), "grpc.health.v1.Health/Check");
  });

  it("lets public procedures through without credentials and authenticates every other", async () => {
    const c = setup([procedureName(McpService.method.health), procedureName(Health.method.check)]);
    assert.equal((await c.mcp.health({})).status, "ok");
    assert.equal((await c.health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
    assert.deepEqual(c.authenticated, []);
    await assert.rejects(c.mcp.getTaskStatus({ taskId: "t" }), unauthenticated);
    await c.mcp.getTaskStatus({ taskId: "t" }, { headers: { authorization: "Bearer good" } });
    assert.equal(c.authenticated.length, 2);
  });

  it("a method is public only under its own service", async () => {
    // grpc.health.v1.Health/Check public does not make any other service's method public,
    // and the old unqualified key ("Health") makes nothing public.
    const c = setup([procedureName(Health.method.check), "Health", "GetTaskStatus"]);
    await assert.rejects(c.mcp.health({}), unauthenticated);
    await assert.rejects(c.mcp.getTaskStatus({ taskId: "t" }), unauthenticated);
    assert.equal((await c.health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
  });
});
