import { Code, ConnectError } from "@connectrpc/connect";
import { buildPolicyInput, type OperationInput } from "@mcp-gateway/common/authz";
import type { Decision, PolicyEngine } from "@mcp-gateway/common/policy";
import { endSpan, startSpan, type Tracer } from "@mcp-gateway/common/tracing";
import type { EdgeMetrics } from "../metrics.js";
import type { AuditEntry, AuditRecord, TaskStore, WriteOptions } from "../store/types.js";
import { boundAuditParams } from "./audit-params.js";
import { principalOf, type RequestContext } from "./context.js";

/** Options for {@link createPipeline}. */
export interface PipelineOptions {
  policy: PolicyEngine;
  store: TaskStore;
  metrics: EdgeMetrics;
  tracer: Tracer;
  /** Largest audited parameters, bytes; larger ones are kept as digests (default 16 KiB). */
  maxAuditParamsBytes?: number;
  /** Called with every record this edge appended (checkpoints, live export). */
  onAppend?: (record: AuditRecord) => void;
}

/** Audit facts of the call being authorized. */
export interface AuditFacts {
  /** Operation parameters with secrets already redacted. */
  params: Record<string, unknown>;
  /** Labels sent by the client. */
  metadata?: Record<string, string>;
  taskId?: string;
  /**
   * `false`: an allowed decision's record resolves once committed, before it is durable, because
   * the caller's very next step is a durable write of the same store, which makes it durable too,
   * and the caller acts only after that write (ExecuteCommand: the task's insert). A denial's
   * record is always durable before the caller hears of it.
   */
  durable?: false;
}

/**
 * The decide → audit steps of the pipeline (authentication ran in the
 * interceptor; the handler acts only after this resolves). Every handler that
 * acts calls {@link Pipeline.authorize} first; there is no other way to get a
 * Decision.
 */
export interface Pipeline {
  /**
   * Decides the operation with the policy and records the decision in the
   * audit chain, allowed or denied.
   * @throws ConnectError PermissionDenied with the policy's reasons;
   *   Unavailable when the decision could not be recorded.
   */
  authorize(rc: RequestContext, op: OperationInput, facts: AuditFacts): Promise<Decision>;
  /** Appends an audit record; failure throws Unavailable (no action without its record). */
  audit(entry: AuditEntry, write?: WriteOptions): Promise<AuditRecord>;
  /**
   * Finishes a task and appends its outcome's record in one store transaction
   * ({@link TaskStore.finishTask}); the record is bounded like audit()'s and goes on to
   * checkpoints and exporters once durable. A failed write throws the store's error.
   */
  finishTask: TaskStore["finishTask"];
}

/** Creates the decide → audit pipeline. */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { policy, store, metrics } = options;

  async function audit(entry: AuditEntry, write?: WriteOptions): Promise<AuditRecord> {
    const end = metrics.auditWrite.startTimer();
    let record: AuditRecord;
    try {
      // Bounded: a large request is audited as a verifiable digest, not stored whole (issue 21).
      record = await store.appendAudit(
        {
          ...entry,
          params: boundAuditParams(entry.params, options.maxAuditParamsBytes),
        },
        write,
      );
    } catch (err) {
      throw new ConnectError(
        "the audit trail cannot be written; refusing to act",
        Code.Unavailable,
        undefined,
        undefined,
        err,
      );
    } finally {
      end();
    }
    // Checkpoints and exporters take a record off the machine: only once it is durable.
    if (options.onAppend) {
      const onAppend = options.onAppend;
      // (never, if the store cannot make it durable: its writes fail from then on)
      if (write?.durable === false) {
        void store.whenDurable().then(
          () => onAppend(record),
          () => undefined,
        );
      } else onAppend(record);
    }
    return record;
  }

  return {
    audit,
    async finishTask(id, patch, condition, outcome, committed) {
      // Observed only when a record was appended (the time includes the task's patch).
      const end = metrics.auditWrite.startTimer();
      const result = await store.finishTask(
        id,
        patch,
        condition,
        (task) => {
          const entry = outcome(task);
          return {
            ...entry,
            params: boundAuditParams(entry.params, options.maxAuditParamsBytes),
          };
        },
        committed,
      );
      if (result.record) {
        end();
        options.onAppend?.(result.record);
      }
      return result;
    },
    async authorize(rc, op, facts) {
      const principal = principalOf(rc);
      const input = buildPolicyInput(principal, op, {
        protocol: rc.protocol,
        interface: rc.interface,
        ...(rc.tool ? { tool: rc.tool } : {}),
        traceId: rc.traceId,
        source: rc.source,
        metadata: facts.metadata ?? {},
      });
      const span = startSpan(options.tracer, "policy.decide", rc.traceContext, {
        "mcp.operation": op.operation,
      });
      const end = metrics.policyEval.startTimer();
      const decision = policy.decide(input);
      end();
      span.span.setAttributes({
        "mcp.policy.allow": decision.allow,
        "mcp.policy.revision": decision.revision,
      });
      endSpan(span.span);
      const result = decision.allow ? "allow" : "deny";
      metrics.policyDecisions.inc({ result, operation: op.operation });
      const auditSpan = startSpan(options.tracer, "audit.append", rc.traceContext);
      await audit(
        {
          time: Date.now(),
          traceId: rc.traceId,
          principal,
          operation: op.operation,
          params: facts.params,
          decision: result,
          reasons: [...(decision.allow ? decision.warnings : decision.denyReasons)],
          policyRevision: decision.revision,
          taskId: facts.taskId ?? "",
          runnerId: "",
          outcome: decision.allow ? "allowed" : "denied",
          details: {
            protocol: rc.protocol,
            source: rc.source,
            ...(rc.tool ? { tool: rc.tool } : {}),
            ...(rc.clientTraceparent ? { clientTraceparent: rc.clientTraceparent } : {}),
            // Network "restricted": the egress allowlist and caps this decision gave the task.
            ...(decision.allow &&
            decision.obligations.network === "restricted" &&
            decision.obligations.egress
              ? { egress: decision.obligations.egress }
              : {}),
          },
        },
        decision.allow && facts.durable === false ? { durable: false } : undefined,
      ).finally(() => endSpan(auditSpan.span));
      if (!decision.allow) {
        const reasons =
          decision.denyReasons.length > 0 ? decision.denyReasons.join("; ") : "denied by policy";
        throw new ConnectError(`permission denied: ${reasons}`, Code.PermissionDenied);
      }
      return decision;
    },
  };
}

/** Redacts environment values for the audit trail: names are kept, values are not. */
export function redactEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(env).map((k) => [k, "[redacted]"]));
}
