import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

/** Options for {@link createBodyLimits}. */
export interface BodyLimitsOptions {
  /** Limit of every method not named in `methods`, bytes. */
  defaultBytes: number;
  /** Per-method limits by method name ("ExecuteCommand"), bytes. */
  methods: Readonly<Record<string, number>>;
  /** Absolute ceiling: no method's limit exceeds it, bytes. */
  maxBytes: number;
}

/**
 * Per-method request body limits (issue 21, finding 2): most calls carry a
 * task id or a path and get a small limit; ExecuteCommand and WriteFile name
 * theirs. The same limit applies to the body on the wire (before the body is
 * read, from `content-length`) and to each message after decompression.
 *
 * @example
 * const limitOf = createBodyLimits({ defaultBytes: 65536, methods: { WriteFile: 8 << 20 }, maxBytes: 8 << 20 });
 * limitOf("GetTaskStatus"); // 65536
 */
export function createBodyLimits(options: BodyLimitsOptions): (method: string) => number {
  return (method) =>
    Math.min(
      options.maxBytes,
      Object.hasOwn(options.methods, method)
        ? (options.methods[method] ?? options.defaultBytes)
        : options.defaultBytes,
    );
}

/**
 * Registers every method of `service` on the router with its own
 * `readMaxBytes` (the Connect router otherwise has one limit for all).
 *
 * @example
 * routes: (router) => registerWithBodyLimits(router, McpService, impl, limitOf),
 */
export function registerWithBodyLimits<S extends DescService>(
  router: ConnectRouter,
  service: S,
  impl: Partial<ServiceImpl<S>>,
  limitOf: (method: string) => number,
): void {
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName];
    const bound =
      typeof fn === "function"
        ? (fn as (...a: unknown[]) => unknown).bind(impl)
        : () => {
            throw new ConnectError(
              `${service.typeName}.${method.name} is not implemented`,
              Code.Unimplemented,
            );
          };
    router.rpc(method, bound as never, { readMaxBytes: limitOf(method.name) });
  }
}

/** Slack for tiny messages (headers of the compressed format, small bodies). */
const RATIO_SLACK_BYTES = 4096;

/**
 * gzip and brotli for `acceptCompression`, bounded by a decompression ratio:
 * a message may inflate to at most `maxRatio` × its compressed size (plus
 * 4 KiB), never past the method's `readMaxBytes`. zlib stops at the bound, so
 * a small bomb costs no more than its bound to refuse.
 *
 * @example
 * connectNodeAdapter({ routes, acceptCompression: boundedCompressions(32) });
 */
export function boundedCompressions(maxRatio: number): Compression[] {
  return [compressionGzip, compressionBrotli].map((base) => ({
    name: base.name,
    compress: (bytes: Uint8Array) => base.compress(bytes),
    async decompress(bytes: Uint8Array, readMaxBytes: number) {
      const byRatio = bytes.byteLength * maxRatio + RATIO_SLACK_BYTES;
      if (byRatio >= readMaxBytes) return base.decompress(bytes, readMaxBytes);
      try {
        return await base.decompress(bytes, byRatio);
      } catch (err) {
        const ce = ConnectError.from(err);
        if (ce.code !== Code.ResourceExhausted) throw err;
        throw new ConnectError(
          `message inflates beyond ${maxRatio}× its compressed size of ${bytes.byteLength} bytes`,
          Code.ResourceExhausted,
          undefined,
          undefined,
          err,
        );
      }
    },
  }));
}
