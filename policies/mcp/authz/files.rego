# File rules.
#
# Rules for read_file, write_file, delete_file and list_directory. Paths are
# relative to the task workspace; the runner confines them to it. These rules
# add defence in depth ("..", control characters) and per-path rules from
# data.gateway.files.rules, each with the modes it denies and one matcher:
# "path" (equal), "prefix", "suffix", "contains" (plain string tests) or
# "glob" (glob.match with "/" as separator). Prefer the plain matchers: the
# wasm runtime compiles a glob into a regular expression on every call, which
# costs more than the rest of a file decision together.
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

# control_characters are U+0000-U+001F and U+007F. They are looked up with
# contains() rather than regex.match: the wasm runtime compiles a regex on
# every call, which dominated the cost of a file decision.
control_characters := {
	"\u0000", "\u0001", "\u0002", "\u0003", "\u0004", "\u0005", "\u0006", "\u0007",
	"\u0008", "\u0009", "\u000a", "\u000b", "\u000c", "\u000d", "\u000e", "\u000f",
	"\u0010", "\u0011", "\u0012", "\u0013", "\u0014", "\u0015", "\u0016", "\u0017",
	"\u0018", "\u0019", "\u001a", "\u001b", "\u001c", "\u001d", "\u001e", "\u001f",
	"\u007f",
}

deny contains msg if {
	path := input.file.path
	some c in control_characters
	contains(path, c)
	msg := "file paths must not contain control characters"
}

deny contains msg if {
	count(input.file.path) > file_rules.max_path_bytes
	msg := concat("", ["the file path is longer than ", num_text(file_rules.max_path_bytes), " characters"])
}

deny contains rule.reason if {
	some rule in file_rules.rules
	input.file.mode in rule.modes
	path_matches(rule, relative_path)
}

# path_matches holds when the rule's matcher matches the normalised path.
path_matches(rule, path) if path == rule.path

path_matches(rule, path) if startswith(path, rule.prefix)

path_matches(rule, path) if endswith(path, rule.suffix)

path_matches(rule, path) if contains(path, rule.contains)

path_matches(rule, path) if glob.match(rule.glob, ["/"], path)
