# METADATA
# title: MCP Security Gateway authorization
# description: |
#   Decides every gateway operation. The entrypoint is `decision` (built as
#   mcp/authz/decision). It always returns an object of the shape
#   {allow, deny_reasons, warnings, obligations}. A request is allowed only
#   when a positive rule permits its operation and no deny rule fires; an
#   input that matches nothing is denied with a reason (fail closed).
package mcp.authz

# decision is the single entrypoint evaluated by the edge and the runner.
decision := {
	"allow": allow,
	"deny_reasons": deny_reasons,
	"warnings": sort(warnings),
	"obligations": obligations,
	"operations": visible_operations,
	"tools": visible_tools,
	"workspace_scope": workspace_scope,
}

default allow := false

allow if {
	count(deny) == 0
	operation_permitted
}

# deny_reasons lists the human-readable reasons of a denial, sorted so that
# the same input always yields the same message.
deny_reasons := sort(deny) if count(deny) > 0

deny_reasons := ["the request is not permitted by policy: no rule allows it"] if {
	count(deny) == 0
	not operation_permitted
}

deny_reasons := [] if allow

# operation_permitted holds when the operation-specific positive rule allows it.
operation_permitted if {
	input.operation == "execute"
	execute_permitted
}

operation_permitted if {
	operation_kind == "file"
	file_permitted
}

operation_permitted if {
	operation_kind == "task"
	task_permitted
}

operation_permitted if {
	operation_kind == "upstream"
	role_allows_operation
	upstream_permitted
}

# list_audit reads the audit trail of the caller's own tenant (the edge
# filters by tenant); the role data decides who may (admin, auditor).
operation_permitted if {
	input.operation == "list_audit"
	role_allows_operation
}

# manage_tools lists and approves pinned upstream tool definitions; the role
# data decides who may (admin).
operation_permitted if {
	operation_kind == "admin"
	role_allows_operation
}

# list_tools asks which operations the caller may use at all (MCP tools/list
# shows only those tools), list_resources and list_prompts which upstream
# resources and prompts it may see; the role data decides who may ask.
operation_permitted if {
	operation_kind == "discovery"
	role_allows_operation
}

# visible_operations names the operations the principal's roles permit. Only a
# list_tools decision carries them (every other decision an empty list), so
# they cost nothing on the hot path.
default visible_operations := []

visible_operations := sort({op |
	some role in known_roles
	some op in data.gateway.roles[role].operations
}) if {
	input.operation == "list_tools"
	allow
}

# operation is the requested operation, null when absent. (object.get keeps
# `not` checks below from silently failing on an undefined input.operation.)
operation := object.get(input, "operation", null)

# operation_kind is "execute", "file", "task" or "audit" for the operations
# listed in data.gateway.operations, undefined for others.
operation_kind := data.gateway.operations[input.operation]

# Operation-specific rules live in execute_deny, file_deny and task_deny, so a
# request only pays for the rules of its own operation.
deny contains msg if {
	input.operation == "execute"
	some msg in execute_deny
}

deny contains msg if {
	operation_kind == "file"
	some msg in file_deny
}

deny contains msg if {
	operation_kind == "task"
	some msg in task_deny
}

deny contains msg if {
	operation_kind == "upstream"
	some msg in upstream_deny
}

deny contains msg if {
	not is_string(operation)
	msg := "the request names no operation"
}

deny contains msg if {
	is_string(operation)
	not data.gateway.operations[operation]
	msg := concat("", ["unknown operation \"", operation, "\""])
}

deny contains msg if {
	data.gateway.operations[input.operation]
	not role_allows_operation
	msg := concat("", [
		"your roles (", roles_text, ") do not allow the operation \"",
		input.operation, "\"",
	])
}

# A request carries only the fields of its own operation: a command for
# "execute", a file for file operations, a task for task operations. The
# operation's rules decide which fields they look at, so a document mixing
# them (an execute request with a file, a read with a command) is denied as
# malformed rather than partly ignored.
deny contains msg if {
	some field, kind in data.gateway.operation_fields
	object.get(input, field, null) != null
	operation_kind != kind
	msg := concat("", [
		"the ", input.operation, " request must not carry a \"", field,
		"\" field (it belongs to another operation)",
	])
}

# num_text renders a number for a message. json.marshal behaves the same in
# Go and in wasm for large integers (format_int fails above 2^32 in wasm).
num_text(n) := json.marshal(n)
