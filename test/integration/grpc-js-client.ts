import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { McpService } from "@mcp-gateway/proto/mcp";

/**
 * A native gRPC client built with @grpc/grpc-js (an implementation independent
 * of Connect) from the McpService descriptor, for interoperability tests.
 */
export function createGrpcJsClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): grpc.Client {
  const definition: Record<
    string,
    grpc.MethodDefinition<MessageShape<DescMessage>, MessageShape<DescMessage>>
  > = {};
  for (const m of McpService.methods) {
    const input = m.input as DescMessage;
    const output = m.output as DescMessage;
    definition[m.localName] = {
      path: `/${McpService.typeName}/${m.name}`,
      requestStream: false,
      responseStream: m.methodKind === "server_streaming",
      requestSerialize: (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(input, msg)),
      requestDeserialize: (b: Buffer) => fromBinary(input, b),
      responseSerialize: (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(output, msg)),
      responseDeserialize: (b: Buffer) => fromBinary(output, b),
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(definition, "McpService");
  return new Ctor(address, credentials, { "grpc.ssl_target_name_override": "localhost" });
}

/** Calls a unary method; rejects with the grpc-js ServiceError. */
export function unary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: string,
  input: I,
  init: MessageInitShape<I>,
  token: string | undefined,
): Promise<MessageShape<O>> {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  type UnaryFn = (
    req: unknown,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res: MessageShape<O>) => void,
  ) => void;
  const fn = (client as unknown as Record<string, UnaryFn | undefined>)[method];
  if (!fn) throw new Error(`no method ${method}`);
  return new Promise((resolve, reject) => {
    fn.call(client, create(input, init), md, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Calls a server-streaming method and collects every message. */
export function serverStream<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: string,
  input: I,
  init: MessageInitShape<I>,
  token: string,
): Promise<MessageShape<O>[]> {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const fn = (
    client as unknown as Record<
      string,
      (...a: unknown[]) => grpc.ClientReadableStream<MessageShape<O>>
    >
  )[method];
  if (!fn) throw new Error(`no method ${method}`);
  return new Promise((resolve, reject) => {
    const out: MessageShape<O>[] = [];
    const call = fn.call(client, create(input, init), md);
    call.on("data", (m: MessageShape<O>) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
  });
}
