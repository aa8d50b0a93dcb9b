import {
  type Context,
  isSpanContextValid,
  type Link,
  context as otelContext,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  TraceFlags,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import {
  type ExportResult,
  ExportResultCode,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  RandomIdGenerator,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import type { Logger } from "pino";

/**
 * The OTLP/HTTP exporter, loaded on first use: the exporter and its protobuf serializers are a
 * large part of a process's code, and most processes export no traces (start-up time).
 */
class LazyOtlpExporter implements SpanExporter {
  readonly #exporter: Promise<SpanExporter>;

  constructor(url: string) {
    this.#exporter = import("@opentelemetry/exporter-trace-otlp-http").then(
      (m) => new m.OTLPTraceExporter({ url }),
    );
    this.#exporter.catch(() => {}); // reported by export()
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#exporter.then(
      (e) => e.export(spans, done),
      (error: Error) => done({ code: ExportResultCode.FAILED, error }),
    );
  }

  async shutdown(): Promise<void> {
    await (await this.#exporter).shutdown();
  }

  async forceFlush(): Promise<void> {
    await (await this.#exporter).forceFlush?.();
  }
}

/** Options for {@link createTracing}. */
export interface TracingOptions {
  /** `service.name` of the spans ("mcp-edge", "mcp-runner"). */
  serviceName: string;
  /** OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); no export when absent. */
  otlpEndpoint?: string;
  /** Service instance id (edge or runner id). */
  instanceId: string;
  logger: Logger;
}

/** A process's tracing: its own provider, no global registration. */
export interface Tracing {
  tracer: Tracer;
  /** Flushes pending spans and stops exporting. */
  shutdown(): Promise<void>;
}

/**
 * Creates the process's tracer. Spans always get real W3C ids (so trace ids
 * appear in logs and audit records); they are exported over OTLP/HTTP only
 * when an endpoint is configured. Contexts are passed explicitly
 * (`trace.setSpan(parent, span)`), not through a global context manager.
 *
 * @example
 * const tracing = createTracing({ serviceName: "mcp-edge", instanceId: "edge-1", logger });
 * const span = tracing.tracer.startSpan("authn", {}, parentContext);
 */
export function createTracing(options: TracingOptions): Tracing {
  const spanProcessors: SpanProcessor[] = [];
  if (options.otlpEndpoint) {
    spanProcessors.push(
      new BatchSpanProcessor(new LazyOtlpExporter(options.otlpEndpoint), {
        scheduledDelayMillis: 500,
        maxQueueSize: 4096,
      }),
    );
    options.logger.info({ endpoint: options.otlpEndpoint }, "exporting traces over OTLP/HTTP");
  }
  if (spanProcessors.length === 0) {
    // Nothing is exported: spans that record attributes, events and timings would be built and
    // dropped on every call (2.5 % of the edge's busy time under the GetTaskStatus load).
    // Non-recording spans still carry real W3C ids for logs, audit records and propagation.
    return { tracer: new IdOnlyTracer(), shutdown: async () => {} };
  }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      "service.name": options.serviceName,
      "service.instance.id": options.instanceId,
    }),
    spanProcessors,
  });
  return {
    tracer: provider.getTracer("mcp-gateway"),
    async shutdown() {
      await provider
        .shutdown()
        .catch((err: unknown) => options.logger.warn({ err }, "trace export failed at shutdown"));
    },
  };
}

/**
 * The tracer of a process that exports nothing: every span is a non-recording span with fresh
 * ids (the parent's trace id when the context has a valid span), sampled as the SDK's default
 * sampler would mark it, so what is propagated and logged is the same as with an exporter.
 */
class IdOnlyTracer implements Tracer {
  readonly #ids = new RandomIdGenerator();

  startSpan(_name: string, _options?: SpanOptions, context?: Context): Span {
    const parent = context === undefined ? undefined : trace.getSpanContext(context);
    const inherit = parent !== undefined && isSpanContextValid(parent);
    return trace.wrapSpanContext({
      traceId: inherit ? parent.traceId : this.#ids.generateTraceId(),
      spanId: this.#ids.generateSpanId(),
      traceFlags: inherit ? parent.traceFlags : TraceFlags.SAMPLED,
    });
  }

  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    ...rest: unknown[]
  ): ReturnType<F> {
    const fn = rest.at(-1) as F;
    const options = (rest.length > 1 ? rest[0] : undefined) as SpanOptions | undefined;
    const parent = (rest.length > 2 ? rest[1] : otelContext.active()) as Context;
    const span = this.startSpan(name, options, parent);
    return otelContext.with(trace.setSpan(parent, span), () => fn(span)) as ReturnType<F>;
  }
}

const propagator = new W3CTraceContextPropagator();
const getter: TextMapGetter<Record<string, string>> = {
  keys: (c) => Object.keys(c),
  get: (c, k) => c[k],
};
const setter: TextMapSetter<Record<string, string>> = {
  set: (c, k, v) => {
    c[k] = v;
  },
};

/** The context carried by a W3C `traceparent` value ("" or invalid: the root context). */
export function contextFromTraceparent(traceparent: string | null | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, getter);
}

/** The W3C `traceparent` of a span, to propagate to another process. */
export function traceparentOf(span: Span): string {
  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
  return carrier.traceparent ?? "";
}

/** A caller's trace as the edge keeps it: linked, never adopted. */
export interface ClientTrace {
  /** The caller's `traceparent`, normalized, or "" when absent or malformed. */
  traceparent: string;
  /** Its trace id, or "". */
  traceId: string;
  /** A span link to the caller's span (empty without a valid traceparent). */
  links: Link[];
}

/** Largest `traceparent` header looked at (version 00 is 55 characters). */
const MAX_TRACEPARENT_LENGTH = 256;

/**
 * Reads a caller's `traceparent` for a span link. Untrusted callers must not
 * choose the gateway's trace ids (they end up in audit records), so public
 * entry points start their own root trace and link the caller's.
 */
export function clientTraceLink(traceparent: string | null | undefined): ClientTrace {
  const none: ClientTrace = { traceparent: "", traceId: "", links: [] };
  if (!traceparent || traceparent.length > MAX_TRACEPARENT_LENGTH) return none;
  const spanContext = trace.getSpanContext(
    propagator.extract(ROOT_CONTEXT, { traceparent: traceparent.trim() }, getter),
  );
  if (!spanContext || !isSpanContextValid(spanContext)) return none;
  const flags = spanContext.traceFlags.toString(16).padStart(2, "0");
  return {
    traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`,
    traceId: spanContext.traceId,
    links: [{ context: spanContext, attributes: { "mcp.link": "client" } }],
  };
}

/** Starts a child span of `parent` (with optional links) and returns it with its context. */
export function startSpan(
  tracer: Tracer,
  name: string,
  parent: Context,
  attributes: Record<string, string | number | boolean> = {},
  kind: SpanKind = SpanKind.INTERNAL,
  links: Link[] = [],
): { span: Span; context: Context } {
  const span = tracer.startSpan(name, { kind, attributes, links }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends a span, marking it as an error when `err` is given. */
export function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: err instanceof Error ? err.message : String(err),
    });
  }
  span.end();
}

export { type Context, ROOT_CONTEXT, type Span, SpanKind, type Tracer };
