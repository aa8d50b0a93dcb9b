package mcp.authz_test

import data.mcp.authz

test_obligations_have_every_limit if {
	d := authz.decision with input as exec("ls", [])
	object.keys(d.obligations.limits) == {
		"memory_bytes", "max_processes", "max_file_size_bytes",
		"max_open_files", "cpu_seconds", "max_output_bytes",
	}
}

test_timeout_above_cap_warns_and_is_clamped_by_obligation if {
	inp := object.union(exec("ls", []), {"command": {"timeout_seconds": 900}})
	d := authz.decision with input as inp
	d.allow
	d.obligations.max_timeout_seconds == 300
	d.warnings == ["the requested timeout of 900 s exceeds the maximum of 300 s and is clamped"]
}

test_timeout_below_cap_no_warning if {
	inp := object.union(exec("ls", []), {"command": {"timeout_seconds": 30}})
	d := authz.decision with input as inp
	d.warnings == []
}

test_limit_above_cap_warns if {
	inp := object.union(exec("ls", []), {"sandbox": {"limits": {"memory_bytes": 1073741824}}})
	d := authz.decision with input as inp
	d.allow
	d.obligations.limits.memory_bytes == 536870912
	d.warnings == ["the requested memory_bytes of 1073741824 exceeds the maximum of 536870912 and is clamped"]
}

test_deny_negative_timeout if {
	inp := object.union(exec("ls", []), {"command": {"timeout_seconds": -1}})
	d := authz.decision with input as inp
	not d.allow
	has_reason(d, "the timeout must not be negative")
}

test_deny_negative_limit if {
	inp := object.union(exec("ls", []), {"sandbox": {"limits": {"max_processes": -5}}})
	d := authz.decision with input as inp
	not d.allow
	has_reason(d, "the sandbox limit max_processes must not be negative")
}

test_workspace_quota_defaults_for_developers if {
	d := authz.decision with input as exec("ls", [])
	d.obligations.workspace == {"max_bytes": 1073741824, "max_inodes": 100000}
}

test_workspace_quota_largest_role_grant if {
	inp := object.union(exec("ls", []), {"principal": object.union(developer, {"roles": ["developer", "admin"]})})
	d := authz.decision with input as inp
	d.obligations.workspace == {"max_bytes": 4294967296, "max_inodes": 500000}
}

test_workspace_quota_clamped_by_the_tenant if {
	inp := object.union(exec("cat", ["x"]), {"principal": object.union(admin, {"tenant": "example-restricted"})})
	d := authz.decision with input as inp
	d.obligations.workspace == {"max_bytes": 268435456, "max_inodes": 20000}
}

test_workspace_quota_on_file_operations_too if {
	d := authz.decision with input as file_op("write_file", "a.txt", "write")
	d.allow
	d.obligations.workspace.max_bytes == 1073741824
}
