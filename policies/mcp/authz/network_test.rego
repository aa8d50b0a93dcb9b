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

# --- restricted (egress allowlist) -----------------------------------------------

egress_dev := {"sub": "e", "roles": ["developer"], "tenant": "example-egress", "scopes": []}

egress_admin := {"sub": "a", "roles": ["admin"], "tenant": "example-egress", "scopes": []}

restricted(principal, hosts) := object.union(
	exec("curl", ["https://allowed.test"]),
	{"principal": principal, "network": "restricted", "allow_hosts": hosts},
)

test_restricted_without_request_list_gets_the_policy_list if {
	d := authz.decision with input as restricted(egress_dev, [])
	d.allow
	d.obligations.network == "restricted"
	d.obligations.egress.allow_hosts == sort(["*.wild.test", "203.0.113.12", "198.51.100.0/24", "[2001:db8::/32]:443", "allowed.test", "loopback.test", "metadata.test"])
	d.obligations.egress.max_bytes == 1048576
	d.obligations.egress.max_connections == 4
}

test_restricted_allows_network_tools if {
	d := authz.decision with input as restricted(egress_dev, ["allowed.test"])
	d.allow
	not d.obligations.exec.denied_programs.curl
}

test_restricted_request_narrows if {
	d := authz.decision with input as restricted(egress_dev, ["Allowed.test:443", "a.wild.test", "*.b.wild.test:8443"])
	d.allow
	d.obligations.egress.allow_hosts == ["*.b.wild.test:8443", "a.wild.test", "allowed.test:443"]
}

test_restricted_role_list_adds_hosts if {
	d := authz.decision with input as restricted(egress_admin, ["admin-only.test"])
	d.allow
	d.obligations.egress.allow_hosts == ["admin-only.test"]
	not authz.decision.allow with input as restricted(egress_dev, ["admin-only.test"])
}

test_restricted_request_cannot_widen if {
	d := authz.decision with input as restricted(egress_dev, ["denied.test"])
	not d.allow
	has_reason(d, "allow_hosts entry \"denied.test\" is not in the egress allowlist of tenant \"example-egress\"")
	not authz.decision.allow with input as restricted(egress_dev, ["wild.test"])
	not authz.decision.allow with input as restricted(egress_dev, ["*.test"])
	not authz.decision.allow with input as restricted(egress_dev, ["203.0.113.13"])
}

test_restricted_port_narrowing if {
	inp := restricted(egress_dev, ["x.wild.test:443"])
	authz.decision.allow with input as inp
		with data.gateway.tenants["example-egress"].egress_allow_hosts as ["*.wild.test:443"]
	not authz.decision.allow with input as restricted(egress_dev, ["x.wild.test"])
		with data.gateway.tenants["example-egress"].egress_allow_hosts as ["*.wild.test:443"]
	not authz.decision.allow with input as restricted(egress_dev, ["x.wild.test:80"])
		with data.gateway.tenants["example-egress"].egress_allow_hosts as ["*.wild.test:443"]
}

test_restricted_cidr_covers_ip_and_narrower_range if {
	authz.decision.allow with input as restricted(egress_dev, ["10.1.2.3:80", "10.1.0.0/16", "[fd00::1]"])
		with data.gateway.tenants["example-egress"].egress_allow_hosts as ["10.0.0.0/8", "[fd00::/8]"]
	not authz.decision.allow with input as restricted(egress_dev, ["11.0.0.1"])
		with data.gateway.tenants["example-egress"].egress_allow_hosts as ["10.0.0.0/8"]
}

test_restricted_malformed_entries_are_named if {
	every bad in ["http://x.test", "x.test:0", "x.test:70000", "a..b", "300.1.1.1", "*", "-x.test", "[zz::1]", "1.2.3.4/40", "x.test/8", "2001:db8::1"] {
		d := authz.decision with input as restricted(egress_dev, [bad])
		not d.allow
		has_reason(d, concat("", ["invalid allow_hosts entry \"", bad, "\""]))
	}
}

test_restricted_denied_for_role_and_tenant_without_it if {
	d := authz.decision with input as restricted(developer, [])
	not d.allow
	has_reason(d, "restricted network access is not allowed for your roles (developer) in tenant \"acme\"")
}

test_restricted_with_empty_policy_list_is_denied if {
	d := authz.decision with input as restricted(egress_dev, [])
		with data.gateway.tenants["example-egress"].egress_allow_hosts as []
	not d.allow
	has_reason(d, "restricted network access has no allowed host")
}

test_allow_hosts_need_restricted if {
	d := authz.decision with input as object.union(exec("ls", []), {"principal": egress_dev, "network": "none", "allow_hosts": ["allowed.test"]})
	not d.allow
	has_reason(d, "allow_hosts (\"allowed.test\") needs network \"restricted\"")
}

test_network_none_has_empty_egress if {
	d := authz.decision with input as exec("ls", [])
	d.obligations.egress.allow_hosts == []
}

test_restricted_not_with_allowed_commands if {
	d := authz.decision with input as restricted(egress_dev, [])
		with data.gateway.tenants["example-egress"].allowed_commands as ["curl"]
	not d.allow
	has_reason(d, "restricted network access is not available in tenant \"example-egress\": it lists allowed_commands")
}

test_restricted_data_ranges_cover_addresses if {
	authz.decision.allow with input as restricted(egress_dev, ["198.51.100.7", "198.51.100.0/25:80", "[2001:db8::7]:443"])
	not authz.decision.allow with input as restricted(egress_dev, ["[2001:db8::7]:80"])
	not authz.decision.allow with input as restricted(egress_dev, ["198.51.0.0/16"])
}
