# Obligations.
#
# Limits returned with every decision. They are caps: the runner applies
# min(requested, cap) to each limit (a requested 0 means "the cap") and never
# loosens a request. Requests above a cap are clamped and reported as warnings.
package mcp.authz

obligations := base_obligations if {
	not input.operation in {"execute", "mcp_server"}
} else := object.union(base_obligations, {"exec": exec_obligation})

base_obligations := {
	"max_timeout_seconds": effective_limit.max_timeout_seconds,
	"network": obligation_network,
	"limits": object.remove(effective_limit, ["max_timeout_seconds"]),
	"workspace": workspace_quota,
	"egress": egress_obligation,
}

# workspace_quota is the size of a workspace's own filesystem (bytes and inodes,
# kernel-enforced), fixed by the runner when it creates the workspace: the
# largest any of the principal's roles grants (never below
# data.gateway.defaults.workspace), clamped by the tenant's cap. The common case
# (no role grants one, the tenant caps none) is the defaults.
workspace_quota := data.gateway.defaults.workspace if {
	count([r | some r in known_roles; data.gateway.roles[r].workspace]) == 0
	count(object.get(tenant, "workspace", {})) == 0
} else := {name: value |
	some name, default_value in data.gateway.defaults.workspace
	granted := [v |
		some role in known_roles
		v := data.gateway.roles[role].workspace[name]
	]
	role_value := max(array.concat([default_value], granted))
	value := min([role_value, object.get(object.get(tenant, "workspace", {}), name, role_value)])
}

# exec_obligation is what the kernel (Landlock, applied by the runner inside the
# sandbox) lets an execute request's processes (and a stdio MCP server's) run, whatever its command line
# hides from the static analysis above: with the tenant's allowed_commands only
# those programs (resolved, with their interpreters); never the denied programs
# (and the network tools when the network is "none"); programs written to the
# workspace or /tmp only where workspace_exec allows it.
exec_obligation := {
	"allowed_programs": tenant.allowed_commands,
	"denied_programs": exec_denied_programs,
	"denied_prefixes": data.gateway.commands.denied_prefixes,
	"workspace_exec": workspace_exec,
	"git_read_only": object.get(tenant, "git_read_only", false) == true,
}

exec_denied_programs := data.gateway.commands.denied if {
	obligation_network != "none"
} else := object.union(
	{name: network_tool_reason | some name, _ in data.gateway.commands.network_tools},
	data.gateway.commands.denied,
)

network_tool_reason := "it needs network access, which is off for this request"

# workspace_exec: programs in the workspace and /tmp may be executed. Never with
# allowed_commands (a file written as "cat" would otherwise run as cat); else
# the tenant's workspace_exec, or one of its workspace_exec_roles.
default workspace_exec := false

workspace_exec if {
	count(tenant.allowed_commands) == 0
	tenant.workspace_exec == true
}

workspace_exec if {
	count(tenant.allowed_commands) == 0
	some role in known_roles
	role in tenant.workspace_exec_roles
}

warnings contains msg if {
	input.operation == "execute"
	input.command.timeout_seconds > effective_limit.max_timeout_seconds
	msg := concat("", [
		"the requested timeout of ", num_text(input.command.timeout_seconds),
		" s exceeds the maximum of ", num_text(effective_limit.max_timeout_seconds),
		" s and is clamped",
	])
}

warnings contains msg if {
	caps := effective_limit
	some name, requested in input.sandbox.limits
	requested > caps[name]
	msg := concat("", [
		"the requested ", name, " of ", num_text(requested), " exceeds the maximum of ",
		num_text(effective_limit[name]), " and is clamped",
	])
}

execute_deny contains msg if {
	input.command.timeout_seconds < 0
	msg := "the timeout must not be negative"
}

deny contains msg if {
	some name, requested in input.sandbox.limits
	requested < 0
	msg := concat("", ["the sandbox limit ", name, " must not be negative"])
}
