package mcp.authz_test

import data.mcp.authz

test_deny_missing_principal if {
	d := authz.decision with input as object.remove(exec("ls", []), ["principal"])
	not d.allow
	has_reason(d, "no valid principal")
}

test_deny_empty_subject if {
	p := {"sub": "", "roles": ["developer"], "tenant": "acme", "scopes": []}
	d := authz.decision with input as object.union(exec("ls", []), {"principal": p})
	not d.allow
	has_reason(d, "no valid principal")
}

test_default_limits_for_developer if {
	d := authz.decision with input as exec("ls", [])
	d.obligations.max_timeout_seconds == 300
	d.obligations.limits.memory_bytes == 536870912
	d.obligations.limits.max_processes == 64
	d.obligations.network == "none"
}

test_admin_gets_larger_limits if {
	d := authz.decision with input as object.union(exec("ls", []), {"principal": admin})
	d.allow
	d.obligations.max_timeout_seconds == 3600
	d.obligations.limits.memory_bytes == 4294967296
}

test_most_generous_role_wins if {
	p := {"sub": "ada", "roles": ["developer", "admin"], "tenant": "acme", "scopes": []}
	d := authz.decision with input as object.union(exec("ls", []), {"principal": p})
	d.obligations.limits.max_processes == 512
}

test_tenant_caps_clamp_role_limits if {
	p := {"sub": "ada", "roles": ["admin"], "tenant": "example-restricted", "scopes": []}
	d := authz.decision with input as object.union(exec("ls", []), {"principal": p})
	d.obligations.max_timeout_seconds == 60
	d.obligations.limits.memory_bytes == 268435456
	d.obligations.limits.max_processes == 16

	# limits the tenant does not cap keep the role's value
	d.obligations.limits.max_open_files == 4096
}

test_unknown_tenant_uses_tenant_defaults if {
	p := {"sub": "z", "roles": ["developer"], "tenant": "nobody-configured-this", "scopes": []}
	authz.tenant == data.gateway.tenant_defaults with input as object.union(exec("ls", []), {"principal": p})
}

test_roles_text_lists_known_roles_sorted if {
	p := {"sub": "ada", "roles": ["viewer", "admin", "ghost"], "tenant": "acme", "scopes": []}
	authz.roles_text == "admin, viewer" with input as object.union(exec("ls", []), {"principal": p})
}

# effective_limit's shortcuts must equal the general rule.
test_role_limit_below_default_keeps_default if {
	d := authz.decision with input as object.union(exec("ls", []), {"principal": admin})
		with data.gateway.roles.admin.limits.max_processes as 1
	d.obligations.limits.max_processes == 64
	d.obligations.limits.memory_bytes == 4294967296
}

test_role_limit_unknown_to_defaults_is_ignored if {
	d := authz.decision with input as object.union(exec("ls", []), {"principal": admin})
		with data.gateway.roles.admin.limits.gpu_count as 8
	not d.obligations.limits.gpu_count
	d.obligations.max_timeout_seconds == 3600
}

test_two_roles_granting_limits_take_the_largest if {
	p := {"sub": "ada", "roles": ["admin", "developer"], "tenant": "acme", "scopes": []}
	d := authz.decision with input as object.union(exec("ls", []), {"principal": p})
		with data.gateway.roles.developer.limits as {"max_processes": 1024, "cpu_seconds": 10}
	d.obligations.limits.max_processes == 1024
	d.obligations.limits.cpu_seconds == 3600
	d.obligations.limits.max_open_files == 4096
}
