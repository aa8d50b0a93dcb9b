import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { Health } from "@mcp-gateway/proto/grpc/health/v1";
import {
  ExtensionRequestSchema,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflection as ServerReflectionV1,
} from "@mcp-gateway/proto/grpc/reflection/v1";
import { ServerReflection as ServerReflectionV1alpha } from "@mcp-gateway/proto/grpc/reflection/v1alpha";
import { file_mcp_mcp, McpService } from "@mcp-gateway/proto/mcp";
import { RunnerService } from "@mcp-gateway/proto/runner/v1";
import {
  createDescriptorIndex,
  createReflectionServices,
  REFLECTION_SERVICES,
} from "./reflection.js";

const PUBLIC = [McpService, Health, ...REFLECTION_SERVICES];

type Question = ServerReflectionRequest["messageRequest"];

/** Asks every question on one v1 reflection stream; resolves to the answers in order. */
async function ask(...questions: Question[]): Promise<ServerReflectionResponse[]> {
  const reflection = createReflectionServices(PUBLIC);
  const transport = createRouterTransport((router) => {
    router.service(ServerReflectionV1, reflection.v1);
    router.service(ServerReflectionV1alpha, reflection.v1alpha);
  });
  const client = createClient(ServerReflectionV1, transport);
  const out: ServerReflectionResponse[] = [];
  const requests = (async function* () {
    for (const q of questions) {
      yield create(ServerReflectionRequestSchema, { host: "h", messageRequest: q });
    }
  })();
  for await (const res of client.serverReflectionInfo(requests)) out.push(res);
  return out;
}

/** The file names in a file descriptor answer, in order. */
function fileNames(res: ServerReflectionResponse | undefined): string[] {
  assert.equal(res?.messageResponse.case, "fileDescriptorResponse", JSON.stringify(res));
  return res.messageResponse.value.fileDescriptorProto.map(
    (b) => fromBinary(FileDescriptorProtoSchema, b).name,
  );
}

function errorCode(res: ServerReflectionResponse | undefined): number {
  assert.equal(res?.messageResponse.case, "errorResponse", JSON.stringify(res));
  return res.messageResponse.value.errorCode;
}

describe("server reflection", () => {
  it("lists the public services only", async () => {
    const [res] = await ask({ case: "listServices", value: "" });
    assert.equal(res?.messageResponse.case, "listServicesResponse");
    assert.deepEqual(
      res.messageResponse.value.service.map((s) => s.name),
      [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "mcp.McpService",
      ],
    );
    assert.equal(res.validHost, "h");
    assert.equal(res.originalRequest?.messageRequest.case, "listServices");
  });

  it("answers a symbol with its file first, then its dependencies, each sent once per stream", async () => {
    const [first, second] = await ask(
      { case: "fileContainingSymbol", value: "mcp.McpService" },
      { case: "fileContainingSymbol", value: "mcp.ExecuteCommandRequest" },
    );
    assert.deepEqual(fileNames(first), ["mcp/mcp.proto", "google/protobuf/timestamp.proto"]);
    assert.deepEqual(fileNames(second), ["mcp/mcp.proto"]);
  });

  it("serves the descriptor the handlers use, byte for byte", async () => {
    const [res] = await ask({ case: "fileByFilename", value: "mcp/mcp.proto" });
    assert.equal(res?.messageResponse.case, "fileDescriptorResponse");
    assert.deepEqual(
      res.messageResponse.value.fileDescriptorProto[0],
      toBinary(FileDescriptorProtoSchema, file_mcp_mcp.proto),
    );
    const proto = fromBinary(
      FileDescriptorProtoSchema,
      res.messageResponse.value.fileDescriptorProto[0] ?? new Uint8Array(),
    );
    assert.deepEqual(proto.dependency, ["google/protobuf/timestamp.proto"]);
    assert.ok(proto.service.some((s) => s.name === "McpService"));
  });

  it("resolves methods, fields, nested and enum value symbols", async () => {
    const answers = await ask(
      { case: "fileContainingSymbol", value: "mcp.McpService.ExecuteCommand" },
      { case: "fileContainingSymbol", value: "mcp.ExecuteCommandRequest.command" },
      { case: "fileContainingSymbol", value: "mcp.TASK_STATUS_COMPLETED" },
      { case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckResponse.ServingStatus" },
      { case: "fileContainingSymbol", value: ".google.protobuf.Timestamp" },
    );
    assert.deepEqual(
      answers.map((a) => fileNames(a)[0]),
      [
        "mcp/mcp.proto",
        "mcp/mcp.proto",
        "mcp/mcp.proto",
        "grpc/health/v1/health.proto",
        "google/protobuf/timestamp.proto",
      ],
    );
  });

  it("never reveals an internal service, by symbol or by file name", async () => {
    const answers = await ask(
      { case: "fileContainingSymbol", value: RunnerService.typeName },
      { case: "fileByFilename", value: RunnerService.file.proto.name },
      { case: "fileContainingSymbol", value: "mcp.Nope" },
    );
    assert.deepEqual(
      answers.map((a) => errorCode(a)),
      [5, 5, 5],
    );
    const index = createDescriptorIndex(PUBLIC);
    assert.ok(![...index.files.keys()].some((f) => f.startsWith("mcp/runner/")));
    assert.ok(![...index.symbols.keys()].some((s) => s.startsWith("mcp.runner.")));
  });

  it("answers extension questions for known types and NOT_FOUND otherwise", async () => {
    const [numbers, unknownType, ext] = await ask(
      { case: "allExtensionNumbersOfType", value: "mcp.ExecuteCommandRequest" },
      { case: "allExtensionNumbersOfType", value: "mcp.Nope" },
      {
        case: "fileContainingExtension",
        value: create(ExtensionRequestSchema, {
          containingType: "mcp.ExecuteCommandRequest",
          extensionNumber: 100,
        }),
      },
    );
    assert.equal(numbers?.messageResponse.case, "allExtensionNumbersResponse");
    assert.deepEqual(numbers.messageResponse.value.extensionNumber, []);
    assert.equal(numbers.messageResponse.value.baseTypeName, "mcp.ExecuteCommandRequest");
    assert.equal(errorCode(unknownType), 5);
    assert.equal(errorCode(ext), 5);
  });

  it("v1alpha answers the same as v1", async () => {
    const reflection = createReflectionServices(PUBLIC);
    const client = createClient(
      ServerReflectionV1alpha,
      createRouterTransport((router) =>
        router.service(ServerReflectionV1alpha, reflection.v1alpha),
      ),
    );
    const out = [];
    for await (const res of client.serverReflectionInfo(
      (async function* () {
        yield { messageRequest: { case: "listServices" as const, value: "*" } };
        yield {
          messageRequest: { case: "fileContainingSymbol" as const, value: "mcp.McpService" },
        };
      })(),
    )) {
      out.push(res);
    }
    assert.equal(out[0]?.$typeName, "grpc.reflection.v1alpha.ServerReflectionResponse");
    assert.equal(out[0]?.messageResponse.case, "listServicesResponse");
    assert.equal(out[0]?.messageResponse.value.service.length, 4);
    assert.equal(out[1]?.messageResponse.case, "fileDescriptorResponse");
    assert.equal(out[1]?.messageResponse.value.fileDescriptorProto.length, 2);
  });
});
