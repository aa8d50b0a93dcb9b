package mcp.authz_test

import data.mcp.authz

test_owner_can_access_own_task if {
	authz.decision.allow with input as task_op("get_task", developer)
	authz.decision.allow with input as task_op("stream_task", developer)
	authz.decision.allow with input as task_op("cancel_task", developer)
}

test_viewer_owner_can_read_but_not_cancel if {
	v := {"sub": "alice", "roles": ["viewer"], "tenant": "acme", "scopes": []}
	authz.decision.allow with input as task_op("get_task", v)
	d := authz.decision with input as task_op("cancel_task", v)
	not d.allow
	has_reason(d, "do not allow the operation \"cancel_task\"")
}

test_other_developer_cannot_access if {
	bob := {"sub": "bob", "roles": ["developer"], "tenant": "acme", "scopes": []}
	d := authz.decision with input as task_op("get_task", bob)
	not d.allow
	has_reason(d, "task t-1 belongs to another principal")
}

test_same_tenant_admin_can_access if {
	authz.decision.allow with input as task_op("cancel_task", admin)
	authz.decision.allow with input as task_op("stream_task", admin)
}

test_other_tenant_admin_cannot_access if {
	other := {"sub": "ada", "roles": ["admin"], "tenant": "globex", "scopes": []}
	d := authz.decision with input as task_op("cancel_task", other)
	not d.allow
}

test_same_subject_other_tenant_cannot_access if {
	other := {"sub": "alice", "roles": ["developer"], "tenant": "globex", "scopes": []}
	not authz.decision.allow with input as task_op("get_task", other)
}

test_deny_task_operation_without_task if {
	d := authz.decision with input as object.union(base, {"operation": "get_task"})
	not d.allow
	has_reason(d, "names no task")
}
