# Shared fixtures for the mcp.authz tests.
package mcp.authz_test

zero_limits := {
	"memory_bytes": 0,
	"max_processes": 0,
	"max_file_size_bytes": 0,
	"max_open_files": 0,
	"cpu_seconds": 0,
	"max_output_bytes": 0,
}

developer := {"sub": "alice", "roles": ["developer"], "tenant": "acme", "scopes": []}

viewer := {"sub": "victor", "roles": ["viewer"], "tenant": "acme", "scopes": []}

admin := {"sub": "ada", "roles": ["admin"], "tenant": "acme", "scopes": []}

base := {
	"principal": developer,
	"workspace": "ws-1",
	"network": "unspecified",
	"sandbox": {"limits": zero_limits},
	"metadata": {},
	"request": {"protocol": "connect", "trace_id": "t", "source": "test"},
	"time": {"now_ns": 0, "rfc3339": "1970-01-01T00:00:00Z"},
}

# exec builds an execute input for a developer of tenant acme.
exec(command, args) := object.union(base, {
	"operation": "execute",
	"command": {"command": command, "args": args, "env": {}, "cwd": "", "timeout_seconds": 0},
})

# file_op builds a file operation input for a developer of tenant acme.
file_op(operation, path, mode) := object.union(base, {
	"operation": operation,
	"file": {"path": path, "mode": mode},
})

# task_op builds a task operation input addressing a task owned by alice@acme.
task_op(operation, principal) := object.union(base, {
	"operation": operation,
	"principal": principal,
	"task": {"id": "t-1", "owner": "alice", "tenant": "acme"},
})

# has_reason holds when some deny reason of the decision contains fragment.
has_reason(d, fragment) if {
	some r in d.deny_reasons
	contains(r, fragment)
}
