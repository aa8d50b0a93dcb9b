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
