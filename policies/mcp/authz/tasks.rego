# Task access.
#
# get_task, stream_task and cancel_task are allowed to the task's owner (same
# subject and tenant) and to principals of the task's tenant holding a role
# with tenant_task_access (admin by default). The rules add to task_deny,
# which deny includes for task operations only (main.rego).
package mcp.authz

task_permitted if {
	input.task.owner == input.principal.sub
	input.task.tenant == input.principal.tenant
}

task_permitted if {
	some role in known_roles
	data.gateway.roles[role].tenant_task_access == true
	input.task.tenant == input.principal.tenant
}

task_deny contains msg if {
	not is_string(object.get(object.get(input, "task", {}), "id", null))
	msg := "the request names no task"
}

task_deny contains msg if {
	is_string(input.task.id)
	not task_permitted
	msg := concat("", [
		"task ", input.task.id,
		" belongs to another principal: only its owner or an admin of its tenant may access it",
	])
}
