import type { Obligations } from "@mcp-gateway/common/policy";
import type { SandboxExecPolicy } from "./sandbox/index.js";

/**
 * The sandbox's execution policy (Landlock) from an execute decision's obligations, with
 * the reasons a refused execution is reported with. undefined when the decision carries no
 * exec obligation (a bundle older than the Landlock layer): then only the sandbox's own
 * rules apply (writes confined to the workspace and /tmp).
 *
 * @example
 * const exec = execPolicyOf(decision.obligations, "acme");
 * // { allowedPrograms: null, deniedPrograms: { dd: "…" }, workspaceExec: true, … }
 */
export function execPolicyOf(
  obligations: Readonly<Obligations>,
  tenant: string,
): SandboxExecPolicy | undefined {
  const e = obligations.exec;
  if (e === undefined) return undefined;
  return {
    allowedPrograms: e.allowed_programs.length > 0 ? [...e.allowed_programs] : null,
    notAllowedReason: `the program is not in the list of commands allowed for tenant "${tenant}"`,
    deniedPrograms: { ...e.denied_programs },
    deniedPrefixes: { ...e.denied_prefixes },
    workspaceExec: e.workspace_exec,
    tmpExec: e.workspace_exec,
    noexecReason: `programs written to the workspace or /tmp may not be executed in tenant "${tenant}" (policy: workspace_exec)`,
    ...(e.git_read_only === true ? { gitReadOnly: true } : {}),
  };
}
