import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { edgeConfigSchema } from "../config.js";
import { DEFAULT_TASK_QUOTA, taskQuotaOf } from "./task-quotas.js";

describe("task quotas from the policy data", () => {
  const data = {
    gateway: {
      defaults: { tasks: { per_principal: 4, per_tenant: 10 } },
      tenants: { acme: { tasks: { per_tenant: 30 } }, bad: { tasks: { per_principal: -1 } } },
    },
  };

  it("takes the defaults, then the tenant's own values field by field", () => {
    assert.deepEqual(taskQuotaOf(data, "globex"), { perPrincipal: 4, perTenant: 10 });
    assert.deepEqual(taskQuotaOf(data, "acme"), { perPrincipal: 4, perTenant: 30 });
  });

  it("never reads a malformed or missing value as unlimited", () => {
    assert.deepEqual(taskQuotaOf(data, "bad"), { perPrincipal: 4, perTenant: 10 });
    assert.deepEqual(taskQuotaOf(undefined, "acme"), { ...DEFAULT_TASK_QUOTA });
    assert.deepEqual(
      taskQuotaOf(
        { gateway: { defaults: { tasks: { per_principal: "8", per_tenant: 1.5 } } } },
        "",
      ),
      { ...DEFAULT_TASK_QUOTA },
    );
  });

  it("refuses the old edge configuration key with a pointer to the data", () => {
    assert.throws(
      () => edgeConfigSchema.parse({ quotas: { tasksPerPrincipal: 2 } }),
      /quotas moved to the policy data: set gateway\.defaults\.tasks/,
    );
  });
});
