# Upstream MCP tools.
#
# Rules for call_tool (a tool of an upstream MCP server reached through the
# gateway) and for which upstream tools list_tools shows. The input carries
# the server, the tool, the call's full arguments, the tool's annotations and
# the digest of its pinned definition (input.upstream); with the option
# mcp.policySeesDescriptions also its description. Everything is data-driven
# (data.gateway.upstreams):
#   - servers[<name>].roles[<role>] (else default_roles[<role>]): the tools a
#     role may call, "*" for all; deny_tools: never, for anyone;
#   - servers[<name>].argument_rules: constraints on arguments, each with the
#     tools it applies to ("*" for all), the argument names, and one check:
#     "path_prefix" (every path must start with one of prefixes, no "..") or
#     "url_host" (every URL's host must be one of hosts);
#   - suspicious_descriptions: phrases that make a tool refused when its
#     description contains them (only when descriptions are sent).
# Resources, prompts and completions of upstream servers (read_resource,
# get_prompt, complete; list_resources and list_prompts filter the lists)
# follow the same pattern, also data-driven:
#   - resources.roles[<role>] of a server (else default_resource_roles[<role>]):
#     glob patterns (glob.match with only a newline as delimiter: "*" spans "/" and "."; a URI with a newline is refused) of the resource
#     URIs a role may read, "*" for all; resources.deny: URIs nobody may read;
#     a resource template is matched by its URI template text;
#   - prompts.roles[<role>] (else default_prompt_roles[<role>]): the prompt
#     names a role may get, "*" for all; prompts.deny: never;
#   - complete is allowed where the prompt (ref/prompt) or the resource
#     template (ref/resource) it completes an argument of would be.
# The rules add to upstream_deny, which deny includes for the upstream
# operations only (data.gateway.operations kind "upstream").
package mcp.authz

# upstream_server is the settings of the called server ({} when it has none).
upstream_server := object.get(data.gateway.upstreams.servers, input.upstream.server, {})

# upstream_role_tools are the tools the principal's roles may call on `server`.
upstream_role_tools(server) := {t |
	some role in known_roles
	tools := object.get(
		object.get(object.get(data.gateway.upstreams.servers, server, {}), "roles", {}),
		role,
		object.get(data.gateway.upstreams.default_roles, role, []),
	)
	some t in tools
}

upstream_tool_allowed(server, tool) if {
	allowed := upstream_role_tools(server)
	some t in allowed
	t in {"*", tool}
	not tool in object.get(object.get(data.gateway.upstreams.servers, server, {}), "deny_tools", [])
}

upstream_permitted if {
	input.operation == "call_tool"
	is_string(input.upstream.server)
	is_string(input.upstream.tool)
	is_object(input.upstream.arguments)
	upstream_tool_allowed(input.upstream.server, input.upstream.tool)
}

upstream_deny contains msg if {
	input.operation == "call_tool"
	not is_object(input.upstream.arguments)
	msg := "the call_tool request needs the server, the tool and its arguments (an object)"
}

upstream_deny contains msg if {
	input.operation == "call_tool"
	is_string(input.upstream.tool)
	input.upstream.tool in object.get(upstream_server, "deny_tools", [])
	msg := concat("", ["tool ", input.upstream.tool, " of server ", input.upstream.server, " is not allowed"])
}

upstream_deny contains msg if {
	input.operation == "call_tool"
	is_string(input.upstream.tool)
	not input.upstream.tool in object.get(upstream_server, "deny_tools", [])
	not upstream_tool_allowed(input.upstream.server, input.upstream.tool)
	msg := concat("", [
		"your roles (", roles_text, ") may not call tool ", input.upstream.tool,
		" of server ", input.upstream.server,
	])
}

# rule_applies holds when an argument rule covers the called tool.
rule_applies(rule) if "*" in rule.tools

rule_applies(rule) if input.upstream.tool in rule.tools

# argument_values are the strings an argument holds (one, or each of a list).
argument_values(name) := [v] if {
	v := input.upstream.arguments[name]
	is_string(v)
}

argument_values(name) := [v | some v in input.upstream.arguments[name]; is_string(v)] if {
	is_array(input.upstream.arguments[name])
}

upstream_deny contains msg if {
	input.operation == "call_tool"
	some rule in object.get(upstream_server, "argument_rules", [])
	rule.kind == "path_prefix"
	rule_applies(rule)
	some name in rule.arguments
	some path in argument_values(name)
	not path_under_prefix(path, rule.prefixes)
	msg := concat("", [
		"argument ", name, " of ", input.upstream.tool, " must stay under ",
		concat(" or ", rule.prefixes), " (got ", substring(path, 0, 200), ")",
	])
}

path_under_prefix(path, prefixes) if {
	not ".." in split(path, "/")
	some p in prefixes
	startswith(path, p)
}

upstream_deny contains msg if {
	input.operation == "call_tool"
	some rule in object.get(upstream_server, "argument_rules", [])
	rule.kind == "url_host"
	rule_applies(rule)
	some name in rule.arguments
	some url in argument_values(name)
	not url_host_allowed(url, rule.hosts)
	msg := concat("", [
		"argument ", name, " of ", input.upstream.tool, " may only name the hosts ",
		concat(", ", rule.hosts), " (got ", substring(url, 0, 200), ")",
	])
}

# url_host_allowed holds for http(s) URLs whose host (without user info or
# port) is one of hosts.
url_host_allowed(url, hosts) if {
	parts := regex.find_all_string_submatch_n(`^https?://([^/?#@]*@)?([^/?#:]+)(:[0-9]+)?([/?#].*)?$`, url, 1)
	count(parts) == 1
	lower(parts[0][2]) in hosts
}

upstream_deny contains msg if {
	is_string(input.upstream.description)
	some phrase in data.gateway.upstreams.suspicious_descriptions
	contains(lower(input.upstream.description), phrase)
	msg := concat("", [
		"the description of ", input.upstream.tool, " contains \"", phrase,
		"\" (instructions hidden in tool descriptions are refused)",
	])
}

# visible_tools are the catalog entries ("<server>/<tool>") the principal's
# roles may call; only a list_tools decision computes them.
default visible_tools := []

visible_tools := sort([entry |
	some item in input.catalog
	upstream_tool_allowed(item.server, item.tool)
	entry := concat("/", [item.server, item.tool])
]) if {
	input.operation == "list_tools"
	allow
}

# upstream_resource_patterns are the URI patterns the principal's roles may
# read on `server`.
upstream_resource_patterns(server) := {p |
	some role in known_roles
	patterns := object.get(
		object.get(object.get(object.get(data.gateway.upstreams.servers, server, {}), "resources", {}), "roles", {}),
		role,
		object.get(object.get(data.gateway.upstreams, "default_resource_roles", {}), role, []),
	)
	some p in patterns
}

# upstream_resource_denied holds when `uri` matches the server's deny list.
upstream_resource_denied(server, uri) if {
	some p in object.get(object.get(object.get(data.gateway.upstreams.servers, server, {}), "resources", {}), "deny", [])
	glob.match(p, ["\n"], uri)
}

upstream_resource_allowed(server, uri) if {
	some p in upstream_resource_patterns(server)
	glob.match(p, ["\n"], uri)
	not upstream_resource_denied(server, uri)
}

# upstream_prompt_names are the prompts the principal's roles may get on `server`.
upstream_prompt_names(server) := {n |
	some role in known_roles
	names := object.get(
		object.get(object.get(object.get(data.gateway.upstreams.servers, server, {}), "prompts", {}), "roles", {}),
		role,
		object.get(object.get(data.gateway.upstreams, "default_prompt_roles", {}), role, []),
	)
	some n in names
}

upstream_prompt_denied(server, name) if {
	name in object.get(object.get(object.get(data.gateway.upstreams.servers, server, {}), "prompts", {}), "deny", [])
}

upstream_prompt_allowed(server, name) if {
	some n in upstream_prompt_names(server)
	n in {"*", name}
	not upstream_prompt_denied(server, name)
}

upstream_permitted if {
	input.operation == "read_resource"
	is_string(input.upstream.server)
	is_string(input.upstream.resource)
	upstream_resource_allowed(input.upstream.server, input.upstream.resource)
}

upstream_permitted if {
	input.operation == "get_prompt"
	is_string(input.upstream.server)
	is_string(input.upstream.prompt)
	is_object(input.upstream.arguments)
	upstream_prompt_allowed(input.upstream.server, input.upstream.prompt)
}

upstream_permitted if {
	input.operation == "complete"
	is_string(input.upstream.server)
	upstream_prompt_allowed(input.upstream.server, input.upstream.prompt)
}

upstream_permitted if {
	input.operation == "complete"
	is_string(input.upstream.server)
	upstream_resource_allowed(input.upstream.server, input.upstream.resource)
}

upstream_deny contains msg if {
	input.operation in {"read_resource", "complete"}
	is_string(input.upstream.resource)
	upstream_resource_denied(input.upstream.server, input.upstream.resource)
	msg := concat("", ["resource ", substring(input.upstream.resource, 0, 200), " of server ", input.upstream.server, " is not allowed"])
}

upstream_deny contains msg if {
	input.operation in {"read_resource", "complete"}
	is_string(input.upstream.resource)
	not upstream_resource_denied(input.upstream.server, input.upstream.resource)
	not upstream_resource_allowed(input.upstream.server, input.upstream.resource)
	msg := concat("", [
		"your roles (", roles_text, ") may not read resource ",
		substring(input.upstream.resource, 0, 200), " of server ", input.upstream.server,
	])
}

upstream_deny contains msg if {
	input.operation in {"get_prompt", "complete"}
	is_string(input.upstream.prompt)
	upstream_prompt_denied(input.upstream.server, input.upstream.prompt)
	msg := concat("", ["prompt ", input.upstream.prompt, " of server ", input.upstream.server, " is not allowed"])
}

upstream_deny contains msg if {
	input.operation in {"get_prompt", "complete"}
	is_string(input.upstream.prompt)
	not upstream_prompt_denied(input.upstream.server, input.upstream.prompt)
	not upstream_prompt_allowed(input.upstream.server, input.upstream.prompt)
	msg := concat("", [
		"your roles (", roles_text, ") may not get prompt ", input.upstream.prompt,
		" of server ", input.upstream.server,
	])
}

upstream_deny contains msg if {
	input.operation in {"read_resource", "complete"}
	contains(input.upstream.resource, "\n")
	msg := "a resource URI must not contain a newline"
}

upstream_deny contains msg if {
	input.operation == "get_prompt"
	not is_object(input.upstream.arguments)
	msg := "the get_prompt request needs the server, the prompt and its arguments (an object)"
}

# visible_tools of list_resources: the catalog's resources and templates
# ("<server>/<URI or URI template>") the principal's roles may read.
visible_tools := sort([entry |
	some item in input.catalog
	is_string(item.resource)
	upstream_resource_allowed(item.server, item.resource)
	entry := concat("/", [item.server, item.resource])
]) if {
	input.operation == "list_resources"
	allow
}

# visible_tools of list_prompts: the catalog's prompts ("<server>/<prompt>")
# the principal's roles may get.
visible_tools := sort([entry |
	some item in input.catalog
	is_string(item.prompt)
	upstream_prompt_allowed(item.server, item.prompt)
	entry := concat("/", [item.server, item.prompt])
]) if {
	input.operation == "list_prompts"
	allow
}
