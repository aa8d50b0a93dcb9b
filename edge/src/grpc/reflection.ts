import {
  create,
  type DescEnum,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import {
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
  ServerReflection as ServerReflectionV1,
} from "@mcp-gateway/proto/grpc/reflection/v1";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as V1alphaRequestSchema,
  ServerReflectionResponseSchema as V1alphaResponseSchema,
} from "@mcp-gateway/proto/grpc/reflection/v1alpha";

/** Both versions of the reflection service; their messages are identical on the wire. */
export const REFLECTION_SERVICES = [ServerReflectionV1, ServerReflectionV1alpha] as const;

/** What reflection can answer about: the listed services and every file they need. */
export interface DescriptorIndex {
  /** Fully-qualified names of the services `list` answers, sorted. */
  services: readonly string[];
  /** Files by name (e.g. "mcp/mcp.proto"). */
  files: ReadonlyMap<string, DescFile>;
  /** The file defining each fully-qualified symbol (services, methods, messages, fields, enums, values …). */
  symbols: ReadonlyMap<string, DescFile>;
  /** Message types by fully-qualified name, for extension questions. */
  messages: ReadonlyMap<string, DescMessage>;
  /** Every extension defined in the indexed files. */
  extensions: readonly DescExtension[];
}

/** Visits `file` and everything it imports, dependencies first, each file once. */
function withDependencies(file: DescFile, seen: Map<string, DescFile>): void {
  if (seen.has(file.proto.name)) return;
  for (const dep of file.dependencies) withDependencies(dep, seen);
  seen.set(file.proto.name, file);
}

/**
 * Indexes the files of `services` and their transitive imports — only those:
 * a file no listed service needs (e.g. the internal runner service's) is not
 * in the index, so reflection cannot reveal it by name or by symbol.
 *
 * @example
 * const index = createDescriptorIndex([McpService, Health]);
 */
export function createDescriptorIndex(services: readonly DescService[]): DescriptorIndex {
  const files = new Map<string, DescFile>();
  for (const s of services) withDependencies(s.file, files);
  const symbols = new Map<string, DescFile>();
  const messages = new Map<string, DescMessage>();
  const extensions: DescExtension[] = [];
  const addEnum = (e: DescEnum, file: DescFile) => {
    symbols.set(e.typeName, file);
    // Enum values are scoped like C++ enumerators: siblings of the enum, not its children.
    const scope = e.typeName.slice(0, Math.max(0, e.typeName.lastIndexOf(".")));
    for (const v of e.values) symbols.set(scope ? `${scope}.${v.name}` : v.name, file);
  };
  const addMessage = (m: DescMessage, file: DescFile) => {
    symbols.set(m.typeName, file);
    messages.set(m.typeName, m);
    for (const f of m.fields) symbols.set(`${m.typeName}.${f.name}`, file);
    for (const o of m.oneofs) symbols.set(`${m.typeName}.${o.name}`, file);
    for (const n of m.nestedMessages) addMessage(n, file);
    for (const e of m.nestedEnums) addEnum(e, file);
    for (const x of m.nestedExtensions) {
      symbols.set(x.typeName, file);
      extensions.push(x);
    }
  };
  for (const file of files.values()) {
    for (const m of file.messages) addMessage(m, file);
    for (const e of file.enums) addEnum(e, file);
    for (const x of file.extensions) {
      symbols.set(x.typeName, file);
      extensions.push(x);
    }
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const m of s.methods) symbols.set(`${s.typeName}.${m.name}`, file);
    }
  }
  return {
    services: services.map((s) => s.typeName).sort(),
    files,
    symbols,
    messages,
    extensions,
  };
}

type ResponseInit = MessageInitShape<typeof ServerReflectionResponseSchema>;
type Answer = NonNullable<ResponseInit["messageResponse"]>;

/**
 * One reflection stream's state: which files it has already sent, so that a
 * dependency goes over the stream once (the requested file itself always
 * comes first in its answer, as grpc-go does).
 */
function createAnswerer(index: DescriptorIndex) {
  const bytes = new Map<string, Uint8Array>();
  const serialized = (file: DescFile): Uint8Array => {
    let b = bytes.get(file.proto.name);
    if (!b) {
      // The descriptor protobuf-es embedded in the generated code: the one the handlers use.
      b = toBinary(FileDescriptorProtoSchema, file.proto);
      bytes.set(file.proto.name, b);
    }
    return b;
  };
  const sent = new Set<string>();
  const fileAnswer = (file: DescFile): Answer => {
    const ordered = new Map<string, DescFile>();
    withDependencies(file, ordered);
    const out = [serialized(file)];
    sent.add(file.proto.name);
    for (const dep of ordered.values()) {
      if (sent.has(dep.proto.name)) continue;
      sent.add(dep.proto.name);
      out.push(serialized(dep));
    }
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  };
  const error = (code: Code, message: string): Answer => ({
    case: "errorResponse",
    value: { errorCode: code, errorMessage: message },
  });
  return (req: ServerReflectionRequest): ServerReflectionResponse => {
    const r = req.messageRequest;
    let answer: Answer;
    switch (r.case) {
      case "listServices":
        answer = {
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        };
        break;
      case "fileByFilename": {
        const file = index.files.get(r.value);
        answer = file ? fileAnswer(file) : error(Code.NotFound, `file not found: ${r.value}`);
        break;
      }
      case "fileContainingSymbol": {
        const file = index.symbols.get(r.value.replace(/^\./, ""));
        answer = file ? fileAnswer(file) : error(Code.NotFound, `symbol not found: ${r.value}`);
        break;
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = r.value;
        const ext = index.extensions.find(
          (x) => x.extendee.typeName === containingType && x.number === extensionNumber,
        );
        answer = ext
          ? fileAnswer(ext.file)
          : error(Code.NotFound, `extension not found: ${containingType} ${extensionNumber}`);
        break;
      }
      case "allExtensionNumbersOfType": {
        const type = r.value.replace(/^\./, "");
        answer = index.messages.has(type)
          ? {
              case: "allExtensionNumbersResponse",
              value: {
                baseTypeName: type,
                extensionNumber: index.extensions
                  .filter((x) => x.extendee.typeName === type)
                  .map((x) => x.number),
              },
            }
          : error(Code.NotFound, `type not found: ${r.value}`);
        break;
      }
      default:
        answer = error(Code.InvalidArgument, "empty reflection request");
    }
    return create(ServerReflectionResponseSchema, {
      validHost: req.host,
      originalRequest: req,
      messageResponse: answer,
    });
  };
}

/** The two reflection service implementations of {@link createReflectionServices}. */
export interface ReflectionServices {
  /** grpc.reflection.v1.ServerReflection. */
  v1: ServiceImpl<typeof ServerReflectionV1>;
  /** grpc.reflection.v1alpha.ServerReflection (grpcurl and older tools still ask it first or only). */
  v1alpha: ServiceImpl<typeof ServerReflectionV1alpha>;
}

/**
 * gRPC server reflection, `grpc.reflection.v1` and `v1alpha`, answered from
 * the descriptors protobuf-es embeds in the generated code — the same ones
 * the handlers decode with — for exactly the services given and the files
 * they import. Internal services (the runner and registry services) are never
 * given, so they can be neither listed nor looked up.
 *
 * @example
 * const reflection = createReflectionServices([McpService, Health, ...REFLECTION_SERVICES]);
 * router.service(ServerReflectionV1, reflection.v1);
 */
export function createReflectionServices(services: readonly DescService[]): ReflectionServices {
  const index = createDescriptorIndex(services);
  return {
    v1: {
      async *serverReflectionInfo(requests) {
        const answer = createAnswerer(index);
        for await (const req of requests) yield answer(req);
      },
    },
    v1alpha: {
      async *serverReflectionInfo(requests) {
        // v1alpha and v1 are the same messages under another package: convert on the wire.
        const answer = createAnswerer(index);
        for await (const req of requests) {
          const v1 = fromBinary(ServerReflectionRequestSchema, toBinary(V1alphaRequestSchema, req));
          yield fromBinary(
            V1alphaResponseSchema,
            toBinary(ServerReflectionResponseSchema, answer(v1)),
          );
        }
      },
    },
  };
}
