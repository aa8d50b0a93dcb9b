package mcp.authz_test

import data.mcp.authz

research_dev := {"sub": "r", "roles": ["developer"], "tenant": "example-research", "scopes": []}

research_viewer := {"sub": "v", "roles": ["viewer"], "tenant": "example-research", "scopes": []}

test_network_none_by_default if {
	d := authz.decision with input as exec("ls", [])
	d.allow
	d.obligations.network == "none"
}

test_network_none_when_requested_none if {
	d := authz.decision with input as object.union(exec("ls", []), {"principal": research_dev, "network": "none"})
	d.allow
	d.obligations.network == "none"
}

test_deny_host_network_for_tenant_without_it if {
	d := authz.decision with input as object.union(exec("ls", []), {"network": "host"})
	not d.allow
	has_reason(d, "host network access is not allowed for your roles (developer) in tenant \"acme\"")
}

test_deny_host_network_for_role_without_it if {
	inp := object.union(file_op("read_file", "a", "read"), {"principal": research_viewer, "network": "host"})
	d := authz.decision with input as inp
	not d.allow
	has_reason(d, "host network access is not allowed")
}

test_allow_host_network_for_configured_role_and_tenant if {
	d := authz.decision with input as object.union(exec("ls", []), {"principal": research_dev, "network": "host"})
	d.allow
	d.obligations.network == "host"
}

test_deny_unknown_network_mode if {
	d := authz.decision with input as object.union(exec("ls", []), {"network": "bridge"})
	not d.allow
	has_reason(d, "network mode must be")
}

test_deny_missing_network_mode if {
	d := authz.decision with input as object.remove(exec("ls", []), ["network"])
	not d.allow
	has_reason(d, "network mode must be")
}
