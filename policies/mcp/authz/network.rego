# Network modes.
#
# Network access is "none" unless the request asks for "host" and the
# principal holds a role that its tenant lists in network_host_roles.
package mcp.authz

network_host_allowed if {
	some role in known_roles
	role in tenant.network_host_roles
}

deny contains msg if {
	not data.gateway.network_modes[object.get(input, "network", null)]
	msg := "the network mode must be \"unspecified\", \"none\" or \"host\""
}

deny contains msg if {
	input.network == "host"
	not network_host_allowed
	msg := concat("", [
		"host network access is not allowed for your roles (", roles_text,
		") in tenant \"", input.principal.tenant, "\"",
	])
}

# obligation_network is the network mode the runner must apply.
default obligation_network := "none"

obligation_network := "host" if {
	input.network == "host"
	network_host_allowed
}
