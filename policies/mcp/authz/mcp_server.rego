# Sandboxed stdio MCP servers.
#
# mcp_server is the start of a stdio MCP server on a runner, inside the same
# sandbox as tasks (network, limits and deadline from the same obligations).
# One process serves a whole tenant, so the edge asks as the tenant's server
# principal (sub "mcp-server:<name>", role "mcp-server"), not as whichever
# user happened to call first: the server's limits and network come from that
# role's data and the tenant's caps, never from a caller's role. The input
# carries input.mcp_server {server, command, args, read_only_paths}; the
# network and limits are the usual input.network and input.sandbox. The same
# command deny list and tenant command allowlist as "execute" apply to the
# server's program; data.gateway.upstreams.servers[<name>].launch == false
# refuses a server outright.
package mcp.authz

operation_permitted if {
	operation_kind == "mcp_server"
	role_allows_operation
	mcp_server_permitted
}

mcp_server_permitted if {
	is_string(input.mcp_server.server)
	is_string(input.mcp_server.command)
	input.mcp_server.command != ""
	is_array(input.mcp_server.args)
}

deny contains msg if {
	operation_kind == "mcp_server"
	some msg in mcp_server_deny
}

mcp_server_deny contains msg if {
	not mcp_server_permitted
	msg := "the mcp_server request needs the server name, a non-empty command and an argument list"
}

mcp_server_deny contains msg if {
	reason := data.gateway.commands.denied[basename(input.mcp_server.command)]
	msg := concat("", ["command \"", basename(input.mcp_server.command), "\" is denied: ", reason])
}

mcp_server_deny contains msg if {
	count(tenant.allowed_commands) > 0
	prog := basename(input.mcp_server.command)
	not prog in tenant.allowed_commands
	msg := concat("", [
		"command \"", prog, "\" is not in the list of commands allowed for tenant \"",
		input.principal.tenant, "\"",
	])
}

mcp_server_deny contains msg if {
	object.get(object.get(data.gateway.upstreams.servers, input.mcp_server.server, {}), "launch", true) == false
	msg := concat("", ["the stdio MCP server ", input.mcp_server.server, " may not be started"])
}
