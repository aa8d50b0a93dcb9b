# File rules.
#
# Rules for read_file, write_file, delete_file and list_directory. Paths are
# relative to the task workspace; the runner confines them to it. These rules
# add defence in depth ("..", control characters) and per-path rules from
# data.gateway.files.rules, each a glob with the modes it denies.
package mcp.authz

file_rules := data.gateway.files

file_permitted if {
	is_string(input.file.path)
	input.file.path != ""
	file_rules.mode_operations[input.file.mode] == input.operation
}

deny contains msg if {
	input.operation in {"read_file", "write_file", "delete_file", "list_directory"}
	not file_permitted
	msg := concat("", [
		"the ", input.operation,
		" request needs a non-empty file path and the matching mode (read, write, delete or list)",
	])
}

# relative_path is the file path with empty and "." segments and leading
# slashes removed: "/./a//b" -> "a/b". Globs are matched against it.
relative_path := concat("/", [s |
	some s in split(input.file.path, "/")
	s != ""
	s != "."
])

deny contains msg if {
	".." in split(input.file.path, "/")
	msg := "file paths must not contain \"..\""
}

deny contains msg if {
	regex.match(`[\x00-\x1f\x7f]`, input.file.path)
	msg := "file paths must not contain control characters"
}

deny contains msg if {
	count(input.file.path) > file_rules.max_path_bytes
	msg := concat("", ["the file path is longer than ", num_text(file_rules.max_path_bytes), " characters"])
}

deny contains rule.reason if {
	some rule in file_rules.rules
	input.file.mode in rule.modes
	glob.match(rule.glob, ["/"], relative_path)
}
