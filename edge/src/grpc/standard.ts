import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { Health } from "@mcp-gateway/proto/grpc/health/v1";
import { procedureName } from "../pipeline/interceptor.js";
import { createHealthService } from "./health.js";
import { createReflectionServices, REFLECTION_SERVICES } from "./reflection.js";

/**
 * Who may use server reflection: anyone (`public`, the default: it reveals
 * only the public schema), only callers with a valid token
 * (`authenticated`), or nobody (`off`: the reflection services are not
 * served, calls get UNIMPLEMENTED).
 */
export type ReflectionMode = "public" | "authenticated" | "off";

/** Options for {@link createStandardGrpcServices}. */
export interface StandardGrpcOptions {
  /** The application services served on the port (mcp.McpService): health reports on them, reflection describes them. */
  services: readonly DescService[];
  /** See {@link ReflectionMode}. */
  reflection: ReflectionMode;
  /** The edge's readiness (problems, empty when ready) — what `/health/ready` answers. */
  readiness: () => Promise<readonly string[]>;
  /** How often Watch re-evaluates readiness while anyone watches, ms (default 1000). */
  healthWatchIntervalMs?: number;
}

/** The standard gRPC services of the public port, ready to register. */
export interface StandardGrpcServices {
  /** Registers grpc.health.v1.Health and, unless off, both reflection versions. */
  register(router: ConnectRouter): void;
  /** Procedures callable without credentials ("grpc.health.v1.Health/Check" …): health always, reflection when public. */
  publicProcedures: readonly string[];
  /** Every service the port serves (application + standard), for the UNIMPLEMENTED fallback's messages. */
  serviceNames: ReadonlySet<string>;
}

/**
 * What every mainstream gRPC server offers, so gRPC tools work with no proto
 * files: standard health checking (`grpc.health.v1.Health`, public, from the
 * edge's readiness) and server reflection (`grpc.reflection.v1` and
 * `v1alpha`) listing the application services, health and reflection — never
 * an internal service, because reflection only knows the services given here.
 *
 * @example
 * const standard = createStandardGrpcServices({ services: [McpService], reflection: "public", readiness });
 * connectNodeAdapter({ routes: (r) => { r.service(McpService, impl); standard.register(r); } });
 */
export function createStandardGrpcServices(options: StandardGrpcOptions): StandardGrpcServices {
  const health = createHealthService({
    services: options.services.map((s) => s.typeName),
    readiness: options.readiness,
    ...(options.healthWatchIntervalMs === undefined
      ? {}
      : { watchIntervalMs: options.healthWatchIntervalMs }),
  });
  const served: DescService[] = [...options.services, Health];
  if (options.reflection !== "off") served.push(...REFLECTION_SERVICES);
  const reflection = options.reflection === "off" ? undefined : createReflectionServices(served);
  const open: DescService[] = [Health];
  if (options.reflection === "public") open.push(...REFLECTION_SERVICES);
  return {
    register(router) {
      router.service(Health, health);
      if (reflection) {
        router.service(REFLECTION_SERVICES[0], reflection.v1);
        router.service(REFLECTION_SERVICES[1], reflection.v1alpha);
      }
    },
    publicProcedures: open.flatMap((s) => s.methods.map(procedureName)),
    serviceNames: new Set(served.map((s) => s.typeName)),
  };
}
