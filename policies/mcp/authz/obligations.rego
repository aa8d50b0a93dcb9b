# Obligations.
#
# Limits returned with every decision. They are caps: the runner applies
# min(requested, cap) to each limit (a requested 0 means "the cap") and never
# loosens a request. Requests above a cap are clamped and reported as warnings.
package mcp.authz

obligations := {
	"max_timeout_seconds": effective_limit.max_timeout_seconds,
	"network": obligation_network,
	"limits": object.remove(effective_limit, ["max_timeout_seconds"]),
}

warnings contains msg if {
	input.operation == "execute"
	input.command.timeout_seconds > effective_limit.max_timeout_seconds
	msg := concat("", [
		"the requested timeout of ", num_text(input.command.timeout_seconds),
		" s exceeds the maximum of ", num_text(effective_limit.max_timeout_seconds),
		" s and is clamped",
	])
}

warnings contains msg if {
	caps := effective_limit
	some name, requested in input.sandbox.limits
	requested > caps[name]
	msg := concat("", [
		"the requested ", name, " of ", num_text(requested), " exceeds the maximum of ",
		num_text(effective_limit[name]), " and is clamped",
	])
}

execute_deny contains msg if {
	input.command.timeout_seconds < 0
	msg := "the timeout must not be negative"
}

deny contains msg if {
	some name, requested in input.sandbox.limits
	requested < 0
	msg := concat("", ["the sandbox limit ", name, " must not be negative"])
}
