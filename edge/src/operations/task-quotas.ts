import { Code, ConnectError } from "@connectrpc/connect";
import type { PrincipalRecord, TaskStore } from "../store/types.js";

/** Concurrent-task quotas of one tenant: tasks queued or running at once. */
export interface TaskQuota {
  /** Per principal (tenant + subject). */
  perPrincipal: number;
  /** Per tenant, all its principals together. */
  perTenant: number;
}

/** The quotas when the policy data names none (a bundle older than `tasks`). */
export const DEFAULT_TASK_QUOTA: Readonly<TaskQuota> = Object.freeze({
  perPrincipal: 8,
  perTenant: 16,
});

const isQuota = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
const field = (o: unknown, k: string): unknown =>
  typeof o === "object" && o !== null ? (o as Record<string, unknown>)[k] : undefined;

/**
 * A tenant's task quotas from the policy bundle's data: `gateway.defaults.tasks`
 * (`per_principal`, `per_tenant`), overridden field by field by
 * `gateway.tenants.<tenant>.tasks`. A missing or malformed value falls back to the
 * level above it, then to {@link DEFAULT_TASK_QUOTA} (never to "unlimited").
 *
 * @example
 * taskQuotaOf(engine.data(), "acme"); // { perPrincipal: 8, perTenant: 16 }
 */
export function taskQuotaOf(data: unknown, tenant: string): TaskQuota {
  const gateway = field(data, "gateway");
  const defaults = field(field(gateway, "defaults"), "tasks");
  const own = field(field(field(gateway, "tenants"), tenant), "tasks");
  const pick = (name: string, fallback: number): number => {
    const t = field(own, name);
    if (isQuota(t)) return t;
    const d = field(defaults, name);
    return isQuota(d) ? d : fallback;
  };
  return {
    perPrincipal: pick("per_principal", DEFAULT_TASK_QUOTA.perPrincipal),
    perTenant: pick("per_tenant", DEFAULT_TASK_QUOTA.perTenant),
  };
}

/**
 * Fair share (issue 21, finding 4): refuses a new task with ResourceExhausted
 * naming the tenant or principal and the limit when it already has that many
 * tasks queued or running — before anything is decided, audited or stored —
 * instead of letting one caller fill every runner slot while another tenant's
 * task waits 30 s and fails. Counted from the store, so edges sharing
 * PostgreSQL share the count (two simultaneous submissions may both pass the
 * last free slot: the bound is exact to within the concurrency of one caller).
 *
 * @example
 * await checkTaskQuota(store, principal, taskQuotaOf(policy.data(), principal.tenant));
 */
export async function checkTaskQuota(
  store: Pick<TaskStore, "countActiveTasks">,
  principal: PrincipalRecord,
  quota: TaskQuota,
): Promise<void> {
  const { perPrincipal, perTenant } = quota;
  const { tenant, principal: mine } = await store.countActiveTasks(principal.tenant, principal.sub);
  const who = principal.tenant === "" ? "the default tenant" : `tenant ${principal.tenant}`;
  if (tenant >= perTenant) {
    throw new ConnectError(
      `${who} has ${tenant} tasks queued or running, its limit of ${perTenant}; retry when one finishes`,
      Code.ResourceExhausted,
      { "retry-after": "5" },
    );
  }
  if (mine >= perPrincipal) {
    throw new ConnectError(
      `${principal.sub} (${who}) has ${mine} tasks queued or running, the per-principal limit of ${perPrincipal}; retry when one finishes`,
      Code.ResourceExhausted,
      { "retry-after": "5" },
    );
  }
}
