# Workspace ownership.
#
# A workspace name refers to a directory of the principal by default: one
# member of a tenant cannot plant code (a git hook, core.fsmonitor, a script
# named like a program) that another member's next command runs, because the
# other member never sees that directory. A tenant shares a workspace between
# its members only by naming it in its `shared_workspaces` list; the decision's
# workspace_scope tells the runner which directory to use (docs/adr/0014).
package mcp.authz

default workspace_scope := "principal"

workspace_scope := "tenant" if {
	is_string(input.workspace)
	input.workspace in object.get(tenant, "shared_workspaces", [])
}
