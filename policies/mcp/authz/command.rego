# Command, argument and environment rules.
#
# Rules for the "execute" operation. The command line is expanded into the
# set of programs it would start: the command itself, the programs that
# wrapper commands (env, nice, timeout, xargs, ...) would run, and the
# commands inside `sh -c`/`bash -c` scripts, up to three levels deep. Every
# program found is checked against the deny lists in data.gateway.commands.
# The rules here add to execute_deny, which deny includes for "execute"
# requests only (main.rego).
package mcp.authz

# argv is the command followed by its arguments.
argv := array.concat([input.command.command], input.command.args)

execute_permitted if {
	is_string(input.command.command)
	input.command.command != ""
	is_array(input.command.args)
	is_object(input.command.env)
}

execute_deny contains msg if {
	not execute_permitted
	msg := "the execute request needs a non-empty command, an argument list and an environment object"
}

# basename returns the last path segment: "/usr/bin/sudo" -> "sudo". Most
# programs are bare names, returned as they are without split() and arithmetic.
basename(path) := path if {
	is_string(path)
	not contains(path, "/")
} else := name if {
	parts := split(path, "/")
	name := parts[count(parts) - 1]
}

# operand_indices are the positions (after the first) of tokens that may name
# a program: not options, not VAR=value assignments, not plain numbers/durations.
operand_indices(tokens) := [i |
	some i, t in tokens
	i > 0
	not startswith(t, "-")
	not contains(t, "=")
	not is_duration(t)
]

# shell_scripts joins what follows each -c flag of a shell invocation (prog is
# basename(inv[0])).
shell_scripts(prog, inv) := {script |
	data.gateway.commands.shells[prog]
	some j, flag in inv
	j > 0
	startswith(flag, "-")
	not startswith(flag, "--")
	contains(flag, "c")
	script := concat(" ", array.slice(inv, j + 1, count(inv)))
}

# script_invocations splits a shell script into segments at ; & | ( ) ` and
# newlines, and returns the invocation of each segment: its words starting
# at the program.
# data.gateway.commands.shell_script_replacements removes quotes and backslashes (so `su""do` and
# `s\udo` are seen as sudo) and turns ; & | ( ) ` into newlines and tabs into
# spaces. Every pattern is one character and no replacement contains one, so
# one strings.replace_n pass equals replacing them one after another.
script_invocations(script) := segment_invocations(split(
	strings.replace_n(data.gateway.commands.shell_script_replacements, script),
	"\n",
))

# segment_invocations are the invocations of a script's segments, or the
# too_many_commands sentinel when there are more than
# data.gateway.commands.max_script_commands of them: one argument may hold a
# thousand commands, which would take seconds to expand.
segment_invocations(segments) := {[too_many_commands, [], true]} if {
	count(segments) > data.gateway.commands.max_script_commands

	# `a && b` and trailing newlines leave empty segments: count commands only.
	count([s | some s in segments; trim(s, " ") != ""]) > data.gateway.commands.max_script_commands
} else := {invocation(array.slice(words, k, count(words)), false) |
	some seg in segments
	words := segment_words(seg)
	k := program_start(words)
}

# Sentinel programs stand for what is too large to expand in bounded time.
# A base name never contains "/", so no real program can be mistaken for
# them; deny rules look them up in invoked.
too_many_commands := "/too-many-script-commands"

too_long_to_wrap := "/too-long-wrapper-line"

too_many_nested := "/too-many-nested-programs"

# segment_words are the non-empty space-separated words of seg. A segment
# without double spaces needs no filtering once its ends are trimmed.
segment_words(seg) := split(t, " ") if {
	t := trim(seg, " ")
	t != ""
	not contains(t, "  ")
} else := [w | some w in split(seg, " "); w != ""]

# program_start is the index of the first word that is neither a shell keyword
# (data.gateway.commands.shell_keywords: {, if, then, exec, time ...) nor a NAME=value assignment
# (undefined if there is none). The first word is
# tested alone first: it is the program in almost every segment.
program_start(words) := 0 if {
	first := words[0]
	not data.gateway.commands.shell_keywords[first]
	not is_assignment(first)
} else := i if {
	starts := [j |
		some j, w in words
		not data.gateway.commands.shell_keywords[w]
		not is_assignment(w)
	]
	i := starts[0]
}

# An invocation is a triple [program, words, suffix]: the words of a command
# line, the base name of its first word (computed once), and whether the
# words are a suffix of a wrapper's command line (see expand). (Invocations
# whose first word has no base name, e.g. a number, could match no rule and
# are left out.)
invocation(words, suffix) := [basename(words[0]), words, suffix]

# expand returns the invocations one level inside an invocation: the
# programs a wrapper runs (the suffixes of its words that start at an
# operand) and the commands of a shell's scripts. The operands of a suffix
# are operands of the line it is a suffix of, so expanding a suffix as a
# wrapper again would only find suffixes already found one level up: a
# suffix is expanded only as a shell.
expand(prog, words, suffix) := {[too_long_to_wrap, [], true]} if {
	# A wrapper's or shell's line found in a script is bounded like the
	# request's own command line (too_long_to_expand): every operand of a
	# wrapper may be a program, every -c flag of a shell starts a script.
	not suffix
	nests(prog)
	count(words) > data.gateway.commands.max_nested_words
} else := wrapped | scripted if {
	wrapped := {invocation(sub, true) |
		not suffix
		data.gateway.commands.wrappers[prog]
		some i in operand_indices(words)
		sub := array.slice(words, i, count(words))
	}
	scripted := script_invocations_of(prog, words)
}

# script_invocations_of are the invocations of all -c scripts of a shell.
script_invocations_of(prog, words) := {inv |
	some script in shell_scripts(prog, words)
	some inv in script_invocations(script)
}

# grows holds for invocations that expand to further invocations.
grows(prog, false) if nests(prog)

grows(prog, true) if data.gateway.commands.shells[prog]

# nests holds for programs whose arguments may name further programs.
nests(prog) if data.gateway.commands.wrappers[prog]

nests(prog) if data.gateway.commands.shells[prog]

# program_0 is the base name of the command itself (argv[0]).
program_0 := basename(argv[0])

# nesting holds when the command is a wrapper or a shell: only then can the
# request start programs other than program_0, so a plain command skips the
# expansion levels entirely.
nesting if nests(program_0)

invocations_0 := {[program_0, argv, false]}

# Each level expands only the invocations of wrappers and shells (expand is
# empty for the others).
# Expanding wrappers and shells costs time polynomial in the number of words
# (every operand of a wrapper may be a program), so a command line that runs
# programs through them is limited to data.gateway.commands.max_nested_words
# words: longer ones are denied unexpanded instead of stalling the evaluator.
nested_line if {
	some w in argv
	nests(basename(w))
}

too_long_to_expand if {
	count(argv) > data.gateway.commands.max_nested_words
	nested_line
}

execute_deny contains msg if {
	too_long_to_expand
	msg := too_long_message
}

too_long_message := concat("", [
	"command lines that run programs through wrappers or shells are limited to ",
	json.marshal(data.gateway.commands.max_nested_words), " words",
])

# The same limit inside shell scripts: a wrapper's command line found in a
# script (one argument may hold thousands of words) is not expanded when it
# is longer (expand), and the request is denied. Without this, one 64 KiB
# `bash -c 'env a a a …'` argument cost seconds of evaluation.
execute_deny contains too_long_message if invoked[too_long_to_wrap]

execute_deny contains msg if {
	invoked[too_many_nested]
	msg := concat("", [
		"command lines may run at most ", json.marshal(data.gateway.commands.max_nested_programs),
		" wrappers or shells at each level of nesting",
	])
}

execute_deny contains msg if {
	invoked[too_many_commands]
	msg := concat("", [
		"shell scripts are limited to ", json.marshal(data.gateway.commands.max_script_commands),
		" commands (separated by ; & | ( ) ` or newlines)",
	])
}

default invocations_1 := set()

invocations_1 := expand(program_0, argv, false) if {
	nesting
	not too_long_to_expand

	# A command line the argument limits deny anyway is not expanded.
	argv_bytes <= data.gateway.arguments.max_total_bytes
	not oversized_argument
}

# oversized_argument holds when some argument is longer than one may be.
oversized_argument if {
	argv_bytes > data.gateway.arguments.max_arg_bytes
	some arg in argv
	count(arg) > data.gateway.arguments.max_arg_bytes
}

# Each further level expands at most data.gateway.commands.max_nested_programs
# wrappers and shells; more stand for the too_many_nested sentinel (denied):
# the work per level is bounded by that number times the 32-word limit.
invocations_2 := too_many_nested_level if {
	too_many_growing(invocations_1)
} else := {sub |
	some [prog, words, suffix] in invocations_1
	grows(prog, suffix)
	some sub in expand(prog, words, suffix)
}

invocations_3 := too_many_nested_level if {
	too_many_growing(invocations_2)
} else := {sub |
	some [prog, words, suffix] in invocations_2
	grows(prog, suffix)
	some sub in expand(prog, words, suffix)
}

too_many_nested_level := {[too_many_nested, [], true]}

# too_many_growing holds when more invocations of a level than allowed would
# expand (the total is tested first: it is almost always small).
too_many_growing(level) if {
	count(level) > data.gateway.commands.max_nested_programs
	count([1 | some [prog, _, suffix] in level; grows(prog, suffix)]) > data.gateway.commands.max_nested_programs
}

# invocation_levels holds every command line the request would run, as far
# as it can be seen statically, level by level (an array of sets, so no union
# of invocation sets is built).
invocation_levels := [invocations_0, invocations_1, invocations_2, invocations_3]

# invoked are the base names of all programs the request would start (the
# programs of all invocations); the deny lists are checked against it, and the
# rm/chmod rules test it before looking at arguments. One rule
# per level, so no union of invocation sets is built for it.
invoked contains program_0

invoked contains prog if {
	nesting
	some [prog, _, _] in invocations_1
}

invoked contains prog if {
	nesting
	some [prog, _, _] in invocations_2
}

invoked contains prog if {
	nesting
	some [prog, _, _] in invocations_3
}

execute_deny contains msg if {
	denied := data.gateway.commands.denied
	some prog in invoked
	reason := denied[prog]
	msg := concat("", ["command \"", prog, "\" is denied: ", reason])
}

execute_deny contains msg if {
	prefixes := data.gateway.commands.denied_prefixes
	some prog in invoked
	some prefix, reason in prefixes
	startswith(prog, prefix)
	msg := concat("", ["command \"", prog, "\" is denied: ", reason])
}

execute_deny contains msg if {
	network_tools := data.gateway.commands.network_tools
	some prog in invoked
	network_tools[prog]
	obligation_network == "none"
	msg := concat("", [
		"command \"", prog,
		"\" needs network access, which is off for this request (network access requires network \"host\" or \"restricted\" and a role allowed to use it)",
	])
}

execute_deny contains msg if {
	count(tenant.allowed_commands) > 0
	prog := basename(input.command.command)
	not prog in tenant.allowed_commands
	msg := concat("", [
		"command \"", prog, "\" is not in the list of commands allowed for tenant \"",
		input.principal.tenant, "\"",
	])
}

# normalize_target strips trailing "/", "." and "*": "/*" and "//" become "/",
# "/usr/" becomes "/usr", "~/*" becomes "~".
normalize_target(p) := "/" if {
	startswith(p, "/")
	trim_right(p, "/.*") == ""
} else := trim_right(p, "/.*")

protected_path(p) if protected_target(normalize_target(p))

protected_target(t) if data.gateway.commands.protected_paths[t]

protected_target(t) if {
	some tree in data.gateway.commands.protected_trees
	startswith(t, concat("", [tree, "/"]))
}

execute_deny contains msg if {
	invoked.rm
	some level in invocation_levels
	some ["rm", words, _] in level
	"--no-preserve-root" in words
	msg := "rm --no-preserve-root is not allowed"
}

execute_deny contains msg if {
	some tool in ["rm", "rmdir"]
	invoked[tool]
	some level in invocation_levels
	some [prog, words, _] in level
	prog == tool
	some i, target in words
	i > 0
	protected_path(target)
	msg := concat("", ["removing the protected system path \"", target, "\" is not allowed"])
}

execute_deny contains msg if {
	some tool, _ in data.gateway.commands.ownership_tools
	invoked[tool]
	some level in invocation_levels
	some [prog, words, _] in level
	prog == tool
	some i, target in words
	i > 0
	protected_path(target)
	msg := concat("", [
		"changing permissions or ownership of the protected system path \"",
		target, "\" is not allowed",
	])
}

# Identifiers are checked with trim_left rather than regex.match: the wasm
# runtime compiles a regex on every call, which dominated evaluation time.
identifier_chars := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789"

# is_identifier holds for shell variable names: [A-Za-z_][A-Za-z0-9_]*.
# (trim_left(s, digits) == s: s does not start with a digit.)
is_identifier(s) if {
	s != ""
	trim_left(s, identifier_chars) == ""
	trim_left(s, "0123456789") == s
}

# is_duration holds for plain numbers and durations such as "5", "2.5", "10s".
is_duration(t) if {
	trim_left(t, "0123456789") != t
	trim_left(trim_right(t, "smhd"), "0123456789.") == ""
}

# is_assignment holds for shell words of the form NAME=value.
is_assignment(w) if {
	i := indexof(w, "=")
	i > 0
	is_identifier(substring(w, 0, i))
}

# --- arguments ---------------------------------------------------------------

execute_deny contains msg if {
	count(input.command.args) > data.gateway.arguments.max_count
	msg := concat("", [
		"too many arguments: ", num_text(count(input.command.args)),
		" (the maximum is ", num_text(data.gateway.arguments.max_count), ")",
	])
}

# argv_bytes is the length of the command line. No argument can be longer
# than max_arg_bytes unless the whole line is, so the per-argument rule only
# looks at the arguments when it is.
# When every argument is a string, the length of their concatenation is the
# sum of their lengths, without a comprehension and decimal additions.
argv_bytes := n if {
	n := count(concat("", argv))
} else := sum([count(arg) | some arg in argv])

execute_deny contains msg if {
	argv_bytes > data.gateway.arguments.max_arg_bytes
	some i, arg in argv
	count(arg) > data.gateway.arguments.max_arg_bytes
	msg := concat("", [
		"argument ", num_text(i), " is too long: ", num_text(count(arg)),
		" characters (the maximum is ", num_text(data.gateway.arguments.max_arg_bytes), ")",
	])
}

execute_deny contains msg if {
	argv_bytes > data.gateway.arguments.max_total_bytes
	msg := concat("", [
		"the command line is too long: ", num_text(argv_bytes),
		" characters (the maximum is ", num_text(data.gateway.arguments.max_total_bytes), ")",
	])
}

execute_deny contains msg if {
	some arg in argv
	not is_string(arg)
	msg := "every argument must be a string"
}

execute_deny contains msg if {
	".." in split(input.command.cwd, "/")
	msg := "the working directory must not contain \"..\""
}

# --- environment -------------------------------------------------------------

execute_deny contains msg if {
	denied := data.gateway.environment.denied_names
	some name, _ in input.command.env
	denied[name]
	msg := concat("", ["the environment variable ", name, " is not allowed"])
}

execute_deny contains msg if {
	env := data.gateway.environment
	some name, _ in input.command.env
	not env.denied_names[name]
	some prefix in env.denied_prefixes
	startswith(name, prefix)
	msg := concat("", ["the environment variable ", name, " is not allowed (", prefix, "* variables are denied)"])
}

# The environment is an allowlist: a request may set only the names in
# data.gateway.environment.allowed_names, the `environment` lists of its roles
# and its tenant's `environment` list. The denylist above keeps its own reasons
# (and wins over an allowlist: a tenant cannot allow LD_PRELOAD or GIT_*); every
# other unknown name is refused with the name in the reason.
execute_deny contains msg if {
	env := data.gateway.environment
	some name, _ in input.command.env
	not env.allowed_names[name]
	not env.denied_names[name]
	not env_denied_prefix(name)
	is_identifier(name)
	not env_allowed_by_principal(name)
	msg := concat("", [
		"the environment variable ", name,
		" is not allowed: it is not in the environment allowlist of your roles and tenant",
	])
}

env_denied_prefix(name) if {
	some prefix in data.gateway.environment.denied_prefixes
	startswith(name, prefix)
}

env_allowed_by_principal(name) if name in tenant.environment

env_allowed_by_principal(name) if {
	some role in known_roles
	name in object.get(data.gateway.roles[role], "environment", [])
}

execute_deny contains msg if {
	some name, _ in input.command.env
	not is_identifier(name)
	msg := "environment variable names must match [A-Za-z_][A-Za-z0-9_]*"
}

execute_deny contains msg if {
	max_name_bytes := data.gateway.environment.max_name_bytes
	some name, _ in input.command.env
	count(name) > max_name_bytes
	msg := concat("", ["the name of an environment variable is longer than ", num_text(data.gateway.environment.max_name_bytes), " characters"])
}

execute_deny contains msg if {
	max_value_bytes := data.gateway.environment.max_value_bytes
	some name, value in input.command.env
	count(value) > max_value_bytes
	msg := concat("", [
		"the value of the environment variable ", name, " is too long (the maximum is ",
		num_text(data.gateway.environment.max_value_bytes), " characters)",
	])
}

execute_deny contains msg if {
	count(input.command.env) > data.gateway.environment.max_vars
	msg := concat("", [
		"too many environment variables: ", num_text(count(input.command.env)),
		" (the maximum is ", num_text(data.gateway.environment.max_vars), ")",
	])
}
