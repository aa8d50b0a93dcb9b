package mcp.authz_test

import data.mcp.authz

server_principal := {"sub": "mcp-server:everything", "roles": ["mcp-server"], "tenant": "acme", "scopes": []}

# launch builds an mcp_server input for the tenant's server principal.
launch(server, command, args) := object.union(base, {
	"principal": server_principal,
	"operation": "mcp_server",
	"workspace": "mcp",
	"request": {"protocol": "runner", "trace_id": "t", "source": "edge"},
	"mcp_server": {"server": server, "command": command, "args": args, "read_only_paths": ["/opt/mcp"]},
})

test_server_principal_starts_a_server_with_its_role_limits if {
	d := authz.decision with input as launch("everything", "node", ["/opt/mcp/index.js", "stdio"])
	d.allow
	d.obligations.network == "none"
	d.obligations.limits.memory_bytes == data.gateway.roles["mcp-server"].limits.memory_bytes
	d.obligations.max_timeout_seconds == data.gateway.roles["mcp-server"].limits.max_timeout_seconds
}

test_a_server_runs_under_the_tenants_exec_rules if {
	d := authz.decision with input as launch("everything", "node", ["/opt/mcp/index.js", "stdio"])
	d.obligations.exec.denied_programs.dd
	d.obligations.exec.denied_programs.curl
	r := authz.decision with input as launch("everything", "node", ["/opt/mcp/index.js", "stdio"])
		with data.gateway.tenants.acme as {"allowed_commands": ["node"]}
	r.obligations.exec.allowed_programs == ["node"]
	r.obligations.exec.workspace_exec == false
}

test_users_cannot_start_servers if {
	d := authz.decision with input as object.union(launch("everything", "node", []), {"principal": developer})
	not d.allow
	has_reason(d, "do not allow the operation \"mcp_server\"")
	a := authz.decision with input as object.union(launch("everything", "node", []), {"principal": admin})
	not a.allow
}

test_server_role_allows_nothing_else if {
	d := authz.decision with input as object.union(base, {
		"principal": server_principal,
		"operation": "execute",
		"command": {"command": "echo", "args": [], "env": {}, "cwd": "", "timeout_seconds": 1},
	})
	not d.allow
	has_reason(d, "do not allow the operation \"execute\"")
}

test_malformed_launch_denied if {
	d := authz.decision with input as object.union(launch("everything", "", []), {})
	not d.allow
	has_reason(d, "needs the server name, a non-empty command and an argument list")
}

test_denied_program_is_refused_as_a_server if {
	d := authz.decision with input as launch("everything", "/usr/bin/sudo", ["node"])
	not d.allow
	has_reason(d, "command \"sudo\" is denied")
}

test_tenant_command_allowlist_applies if {
	restricted := object.union(server_principal, {"tenant": "example-restricted"})
	authz.decision.allow with input as object.union(launch("everything", "node", []), {"principal": restricted})
	d := authz.decision with input as object.union(launch("everything", "npx", []), {"principal": restricted})
	not d.allow
	has_reason(d, "is not in the list of commands allowed for tenant \"example-restricted\"")
}

test_host_network_needs_the_tenant_to_grant_it if {
	d := authz.decision with input as object.union(launch("everything", "node", []), {"network": "host"})
	not d.allow
	has_reason(d, "host network access is not allowed for your roles (mcp-server)")
	research := object.union(server_principal, {"tenant": "example-research"})

	# A tenant grants its servers the host network by listing the role "mcp-server".
	n := authz.decision with input as object.union(launch("everything", "node", []), {"network": "host", "principal": research})
	not n.allow
	r := authz.decision with input as object.union(launch("everything", "node", []), {"network": "host", "principal": research})
		with data.gateway.tenants["example-research"].network_host_roles as ["mcp-server"]
	r.allow
	r.obligations.network == "host"
}

test_a_server_switched_off_is_refused if {
	d := authz.decision with input as launch("everything", "node", [])
		with data.gateway.upstreams.servers.everything.launch as false
	not d.allow
	has_reason(d, "the stdio MCP server everything may not be started")
}

test_mcp_server_field_only_on_its_operation if {
	d := authz.decision with input as object.union(base, {
		"operation": "read_file",
		"file": {"path": "a", "mode": "read"},
		"mcp_server": {"server": "x", "command": "node", "args": []},
	})
	not d.allow
	has_reason(d, "must not carry a \"mcp_server\" field")
}
