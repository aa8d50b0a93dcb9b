import { Code, ConnectError } from "@connectrpc/connect";
import type { PrincipalRecord, TaskStore } from "../store/types.js";

/** Concurrent-task quotas: tasks queued or running at once. */
export interface TaskQuotas {
  /** Per principal (tenant + subject). */
  tasksPerPrincipal: number;
  /** Per tenant, all its principals together. */
  tasksPerTenant: number;
  /** Overrides by tenant name. */
  tenants: Readonly<
    Record<string, { tasksPerPrincipal?: number | undefined; tasksPerTenant?: number | undefined }>
  >;
}

/** Most active tasks looked at per check (the sum of all tenants' quotas in practice). */
const SCAN_LIMIT = 10_000;

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
 * await checkTaskQuota(store, principal, { tasksPerPrincipal: 8, tasksPerTenant: 16, tenants: {} });
 */
export async function checkTaskQuota(
  store: Pick<TaskStore, "listTasksInStates">,
  principal: PrincipalRecord,
  quotas: TaskQuotas,
): Promise<void> {
  const own = quotas.tenants[principal.tenant] ?? {};
  const perPrincipal = own.tasksPerPrincipal ?? quotas.tasksPerPrincipal;
  const perTenant = own.tasksPerTenant ?? quotas.tasksPerTenant;
  const active = await store.listTasksInStates(["created", "queued", "running"], SCAN_LIMIT);
  let tenant = 0;
  let mine = 0;
  for (const t of active) {
    if (t.principal.tenant !== principal.tenant) continue;
    tenant++;
    if (t.principal.sub === principal.sub) mine++;
  }
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
