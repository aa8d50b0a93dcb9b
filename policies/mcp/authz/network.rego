# Network modes.
#
# Network access is "none" unless the request asks for "host" or "restricted"
# and the principal holds a role that its tenant lists in network_host_roles
# or network_restricted_roles.
#
# "restricted" (issue 15, docs/security/sandbox.md "Egress"): the sandbox keeps
# its empty network namespace and reaches only the runner's egress proxy, which
# admits the hosts of obligations.egress.allow_hosts. That list is the policy's
# (the tenant's egress_allow_hosts plus those of the principal's roles in
# egress_role_allow_hosts), narrowed by the request's allow_hosts: a request
# entry the policy does not cover is a denial, a malformed one is named.
package mcp.authz

network_host_allowed if {
	some role in known_roles
	role in tenant.network_host_roles
}

network_restricted_allowed if {
	some role in known_roles
	role in tenant.network_restricted_roles
}

deny contains msg if {
	not data.gateway.network_modes[object.get(input, "network", null)]
	msg := "the network mode must be \"unspecified\", \"none\", \"host\" or \"restricted\""
}

deny contains msg if {
	input.network == "host"
	not network_host_allowed
	msg := concat("", [
		"host network access is not allowed for your roles (", roles_text,
		") in tenant \"", input.principal.tenant, "\"",
	])
}

deny contains msg if {
	input.network == "restricted"
	not network_restricted_allowed
	msg := concat("", [
		"restricted network access is not allowed for your roles (", roles_text,
		") in tenant \"", input.principal.tenant, "\"",
	])
}

deny contains msg if {
	some entry in requested_allow_hosts
	not egress_entry(entry)
	msg := concat("", [
		"invalid allow_hosts entry \"", entry,
		"\": use host, host:port, *.domain[:port], an IP literal or a CIDR range",
	])
}

deny contains msg if {
	some entry in requested_allow_hosts
	input.network != "restricted"
	msg := concat("", ["allow_hosts (\"", entry, "\") needs network \"restricted\""])
}

deny contains msg if {
	input.network == "restricted"
	network_restricted_allowed
	some entry in requested_allow_hosts
	parsed := egress_entry(entry)
	not egress_covered(parsed)
	msg := concat("", [
		"allow_hosts entry \"", entry, "\" is not in the egress allowlist of tenant \"",
		input.principal.tenant, "\" for your roles (", roles_text, ")",
	])
}

# The runner's egress forwarder runs inside the sandbox as a program of its own, which the
# kernel's list mode (a tenant with allowed_commands) would refuse to execute: say so up front.
deny contains msg if {
	input.network == "restricted"
	count(tenant.allowed_commands) > 0
	msg := concat("", [
		"restricted network access is not available in tenant \"", input.principal.tenant,
		"\": it lists allowed_commands, and the sandbox's egress forwarder is not one of them",
	])
}

deny contains msg if {
	input.network == "restricted"
	network_restricted_allowed
	count(egress_allow_hosts) == 0
	msg := concat("", [
		"restricted network access has no allowed host: the policy lists none for your roles (",
		roles_text, ") in tenant \"", input.principal.tenant, "\"",
	])
}

# obligation_network is the network mode the runner must apply.
default obligation_network := "none"

obligation_network := "host" if {
	input.network == "host"
	network_host_allowed
}

obligation_network := "restricted" if {
	input.network == "restricted"
	network_restricted_allowed
}

# egress_obligation is what the runner's egress proxy enforces for a
# "restricted" task: the effective allowlist and the per-task caps.
default egress_obligation := {"allow_hosts": [], "max_bytes": 0, "max_connections": 0}

egress_obligation := object.union(
	data.gateway.defaults.egress,
	object.union(object.get(tenant, "egress", {}), {"allow_hosts": egress_allow_hosts}),
) if {
	obligation_network == "restricted"
}

# requested_allow_hosts is the request's list, lower-cased ([] when absent).
requested_allow_hosts := [lower(e) | some e in object.get(input, "allow_hosts", [])]

# policy_allow_hosts is what the policy allows the principal: the tenant's list
# and the lists of its roles, lower-cased and de-duplicated.
policy_allow_hosts := {lower(e) |
	some e in array.concat(
		object.get(tenant, "egress_allow_hosts", []),
		[h |
			some role in known_roles
			some h in object.get(object.get(tenant, "egress_role_allow_hosts", {}), role, [])
		],
	)
}

# egress_allow_hosts: the request's entries (each covered by the policy) or,
# when the request names none, the policy's whole list. Sorted.
egress_allow_hosts := sort(policy_allow_hosts) if {
	count(requested_allow_hosts) == 0
} else := sort({e | some e in requested_allow_hosts})

# egress_covered holds when a policy entry admits everything the parsed request
# entry admits: same or wider host (exact, *.domain, CIDR), any or the same port.
egress_covered(r) if {
	some p_text in policy_allow_hosts
	p := egress_entry(p_text)
	egress_port_covers(p.port, r.port)
	egress_host_covers(p, r)
}

egress_port_covers("", _)

egress_port_covers(p, r) if {
	p != ""
	p == r
}

egress_host_covers(p, r) if p.host == r.host

egress_host_covers(p, r) if {
	p.kind == "wildcard"
	r.kind in {"name", "wildcard"}
	endswith(r.host, substring(p.host, 1, -1))
}

egress_host_covers(p, r) if {
	p.kind == "cidr"
	r.kind in {"ip", "cidr"}
	net.cidr_contains(p.host, r.host)
}

# egress_entry(text) parses "host[:port]", "*.domain[:port]", "1.2.3.4[:port]",
# "10.0.0.0/8[:port]", "[2001:db8::1][:port]", "[fd00::/8][:port]" into
# {host, port, kind}; undefined for anything else.
egress_entry(text) := {"host": host, "port": port, "kind": kind} if {
	[m] := regex.find_all_string_submatch_n(
		`^(?:\[([0-9a-f:.]+(?:/[0-9]{1,3})?)\]|([a-z0-9*.-]+(?:/[0-9]{1,2})?))(?::([0-9]{1,5}))?$`,
		lower(text), 1,
	)
	host := concat("", [m[1], m[2]])
	port := m[3]
	egress_port_valid(port)
	kind := egress_host_kind(host)
}

egress_port_valid("")

egress_port_valid(port) if {
	n := to_number(port)
	n >= 1
	n <= 65535
}

egress_host_kind(h) := "name" if {
	regex.match(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`, h)
	not regex.match(`^[0-9.]+$`, h)
	count(h) <= 253
}

egress_host_kind(h) := "wildcard" if {
	regex.match(`^\*(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`, h)
	not regex.match(`^[0-9.*]+$`, h)
}

egress_host_kind(h) := "ip" if {
	not contains(h, "/")
	egress_ip_valid(h)
}

egress_host_kind(h) := "cidr" if {
	contains(h, "/")
	net.cidr_contains(h, h)
	egress_ip_valid(split(h, "/")[0])
}

egress_ip_valid(h) if {
	regex.match(`^[0-9]{1,3}(\.[0-9]{1,3}){3}$`, h)
	every octet in split(h, ".") {
		to_number(octet) <= 255
	}
}

egress_ip_valid(h) if {
	contains(h, ":")
	net.cidr_contains(concat("", [h, "/128"]), h)
}
