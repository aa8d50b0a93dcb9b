# File rules.
#
# Rules for read_file, write_file, delete_file and list_directory. Paths are
# relative to the task workspace; the runner confines them to it. These rules
# add defence in depth ("..", control characters) and per-path rules from
# data.gateway.files.rules, each with the modes it denies and one matcher:
# "path" (equal), "prefix", "suffix", "contains" (plain string tests) or
# "glob" (glob.match with "/" as separator). Prefer the plain matchers: the
# wasm runtime compiles a glob into a regular expression on every call, which
# costs more than the rest of a file decision together. The rules add to
# file_deny, which deny includes for file operations only (main.rego).
package mcp.authz

file_permitted if {
	is_string(input.file.path)
	input.file.path != ""
	data.gateway.files.mode_operations[input.file.mode] == input.operation
}

file_deny contains msg if {
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

file_deny contains msg if {
	".." in split(input.file.path, "/")
	msg := "file paths must not contain \"..\""
}

# has_control_character holds when s contains U+0000-U+001F or U+007F
# (data.gateway.files.control_characters). JSON escapes every character below
# U+0020 with a backslash, so a string whose JSON form has no backslash needs
# no further look; the others are searched character by character. (The wasm
# runtime compiles a regex on every call: regex.match cost more than the rest
# of a file decision.)
has_control_character(s) if contains(s, "\u007f")

has_control_character(s) if {
	contains(json.marshal(s), "\\")
	some c in data.gateway.files.control_characters
	contains(s, c)
}

file_deny contains msg if {
	has_control_character(input.file.path)
	msg := "file paths must not contain control characters"
}

file_deny contains msg if {
	count(input.file.path) > data.gateway.files.max_path_bytes
	msg := concat("", ["the file path is longer than ", num_text(data.gateway.files.max_path_bytes), " characters"])
}

file_deny contains rule.reason if {
	mode := input.file.mode
	some rule in data.gateway.files.rules
	mode in rule.modes
	path_matches(rule, relative_path)
}

# path_matches holds when the rule's matcher matches the normalised path.
path_matches(rule, path) if path == rule.path

path_matches(rule, path) if startswith(path, rule.prefix)

path_matches(rule, path) if endswith(path, rule.suffix)

path_matches(rule, path) if contains(path, rule.contains)

path_matches(rule, path) if glob.match(rule.glob, ["/"], path)
