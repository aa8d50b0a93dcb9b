package mcp.authz_test

import data.mcp.authz

test_allow_plain_command if {
	d := authz.decision with input as exec("ls", ["-la"])
	d.allow
	d.deny_reasons == []
	d.warnings == []
}

test_decision_shape_on_deny if {
	d := authz.decision with input as exec("sudo", ["id"])
	not d.allow
	count(d.deny_reasons) > 0
	is_array(d.warnings)
	is_object(d.obligations)
}

test_deny_missing_operation if {
	d := authz.decision with input as base
	not d.allow
	has_reason(d, "names no operation")
}

test_deny_unknown_operation if {
	d := authz.decision with input as object.union(base, {"operation": "format_disk"})
	not d.allow
	has_reason(d, "unknown operation \"format_disk\"")
}

test_deny_reason_when_nothing_permits if {
	# A known operation whose positive rule does not hold, with no deny rule firing,
	# is still denied with a generic reason (fail closed).
	d := authz.decision with input as exec("ls", [])
		with authz.deny as set()
		with authz.execute_permitted as false
	not d.allow
	d.deny_reasons == ["the request is not permitted by policy: no rule allows it"]
}

test_deny_reasons_sorted_and_combined if {
	inp := object.union(exec("sudo", ["id"]), {"command": {"env": {"LD_PRELOAD": "x.so"}}})
	d := authz.decision with input as inp
	d.deny_reasons == sort(d.deny_reasons)
	count(d.deny_reasons) == 2
}

test_viewer_cannot_execute if {
	d := authz.decision with input as object.union(exec("ls", []), {"principal": viewer})
	not d.allow
	has_reason(d, "your roles (viewer) do not allow the operation \"execute\"")
}

test_unknown_role_has_no_operations if {
	p := {"sub": "x", "roles": ["intern"], "tenant": "acme", "scopes": []}
	d := authz.decision with input as object.union(exec("ls", []), {"principal": p})
	not d.allow
	has_reason(d, "your roles (none) do not allow")
}

test_num_text if {
	authz.num_text(5) == "5"
	authz.num_text(8589934592) == "8589934592"
}

test_list_audit_allowed_for_admin_and_auditor if {
	admin := object.union(base, {"operation": "list_audit", "principal": object.union(base.principal, {"roles": ["admin"]})})
	authz.decision.allow with input as admin
	auditor := object.union(base, {"operation": "list_audit", "principal": object.union(base.principal, {"roles": ["auditor"]})})
	authz.decision.allow with input as auditor
}

test_list_audit_denied_for_developer if {
	d := authz.decision with input as object.union(base, {"operation": "list_audit"})
	not d.allow
	count(d.deny_reasons) > 0
}

test_fields_of_another_operation_are_denied if {
	with_file := object.union(exec("ls", []), {"file": {"path": "a/../b", "mode": "read"}})
	d1 := authz.decision with input as with_file
	not d1.allow
	has_reason(d1, "the execute request must not carry a \"file\" field")

	with_command := object.union(file_op("read_file", "src/a.ts", "read"), {"command": {"command": "rm", "args": ["-rf", "/"], "env": {}, "cwd": "", "timeout_seconds": 0}})
	d2 := authz.decision with input as with_command
	not d2.allow
	has_reason(d2, "the read_file request must not carry a \"command\" field")

	with_task := object.union(exec("ls", []), {"task": {"id": "t", "owner": "x", "tenant": "y"}})
	d3 := authz.decision with input as with_task
	not d3.allow
	has_reason(d3, "the execute request must not carry a \"task\" field")

	audit_with_file := object.union(base, {"operation": "list_audit", "principal": admin, "file": {"path": "x", "mode": "read"}})
	d4 := authz.decision with input as audit_with_file
	not d4.allow
	has_reason(d4, "the list_audit request must not carry a \"file\" field")

	# the matching fields alone are fine
	ok := authz.decision with input as exec("ls", [])
	ok.allow
}

test_list_tools_names_the_operations_of_the_roles if {
	dev := authz.decision with input as object.union(base, {"operation": "list_tools"})
	dev.allow
	"execute" in dev.operations
	not "list_audit" in dev.operations
	viewer := object.union(base, {"operation": "list_tools", "principal": object.union(base.principal, {"roles": ["viewer"]})})
	v := authz.decision with input as viewer
	v.operations == [
		"call_tool", "complete", "get_prompt", "get_task", "list_directory", "list_prompts",
		"list_resources", "list_tools", "read_file", "read_resource", "stream_task",
	]
}

test_list_tools_denied_without_a_known_role if {
	nobody := object.union(base, {"operation": "list_tools", "principal": object.union(base.principal, {"roles": ["guest"]})})
	d := authz.decision with input as nobody
	not d.allow
	d.operations == []
}

test_other_decisions_carry_no_operations if {
	d := authz.decision with input as exec("ls", [])
	d.allow
	d.operations == []
}
