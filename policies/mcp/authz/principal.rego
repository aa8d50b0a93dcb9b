# Principal, role and tenant settings.
#
# Resolves the JWT principal into effective settings: the roles it holds
# (those defined in data.gateway.roles), the tenant settings
# (data.gateway.tenant_defaults merged with data.gateway.tenants[tenant]) and
# the effective limits.
package mcp.authz

deny contains msg if {
	not valid_principal
	msg := "the request carries no valid principal (subject, tenant and roles are required)"
}

valid_principal if {
	is_string(input.principal.sub)
	input.principal.sub != ""
	is_string(input.principal.tenant)
	input.principal.tenant != ""
	is_array(input.principal.roles)
}

# known_roles are the principal's roles that the policy data defines.
known_roles contains role if {
	some role in input.principal.roles
	data.gateway.roles[role]
}

roles_text := concat(", ", sort(known_roles)) if count(known_roles) > 0

roles_text := "none" if count(known_roles) == 0

role_allows_operation if {
	some role in known_roles
	input.operation in data.gateway.roles[role].operations
}

# tenant is the merged settings of the principal's tenant: tenant_defaults
# overridden by data.gateway.tenants[<tenant>] if that exists.
tenant := object.union(
	data.gateway.tenant_defaults,
	object.get(data.gateway.tenants, object.get(object.get(input, "principal", {}), "tenant", ""), {}),
)

# effective_limit[name] is the largest value of a limit granted by any role
# the principal holds (never below data.gateway.defaults.limits), clamped by
# the tenant's cap if it has one. The general comprehension (last) costs a
# dozen builtin calls per limit in wasm, so the two common cases come first,
# each equal to it under its conditions:
#   - no role grants limits and the tenant caps none: the defaults;
#   - one role grants limits, all of them known and none below its default,
#     and the tenant caps none: the defaults overridden by that role's limits.
effective_limit := data.gateway.defaults.limits if {
	count(limit_grants) == 0
	count(tenant.limits) == 0
} else := object.union(data.gateway.defaults.limits, limit_grants[0]) if {
	count(limit_grants) == 1
	count(tenant.limits) == 0
	every name, value in limit_grants[0] {
		value >= data.gateway.defaults.limits[name]
	}
} else := {name: value |
	some name, default_value in data.gateway.defaults.limits
	granted := [v |
		some role in known_roles
		v := data.gateway.roles[role].limits[name]
	]
	role_value := max(array.concat([default_value], granted))
	value := min([role_value, object.get(tenant.limits, name, role_value)])
}

# limit_grants are the limits of the principal's roles that define some.
limit_grants := [limits |
	some role in known_roles
	limits := data.gateway.roles[role].limits
]
