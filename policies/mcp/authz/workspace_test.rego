package mcp.authz_test

import data.mcp.authz

test_workspaces_are_per_principal_by_default if {
	d := authz.decision with input as exec("ls", [])
	d.workspace_scope == "principal"
	f := authz.decision with input as file_op("read_file", "a", "read")
	f.workspace_scope == "principal"
}

test_tenant_shares_named_workspaces if {
	d := authz.decision with input as exec("ls", [])
		with data.gateway.tenants.acme as {"shared_workspaces": ["ws-1"]}
	d.workspace_scope == "tenant"
	o := authz.decision with input as object.union(exec("ls", []), {"workspace": "ws-2"})
		with data.gateway.tenants.acme as {"shared_workspaces": ["ws-1"]}
	o.workspace_scope == "principal"
}

test_reset_workspace_is_for_admins if {
	inp := object.union(base, {"operation": "reset_workspace", "workspace": "ws-1"})
	authz.decision.allow with input as object.union(inp, {"principal": admin})
	d := authz.decision with input as inp
	not d.allow
	has_reason(d, "do not allow the operation \"reset_workspace\"")
}

test_git_read_only_is_a_tenant_setting if {
	d := authz.decision with input as exec("git", ["status"])
	d.obligations.exec.git_read_only == false
	r := authz.decision with input as exec("git", ["status"])
		with data.gateway.tenants.acme as {"git_read_only": true}
	r.obligations.exec.git_read_only == true
}
