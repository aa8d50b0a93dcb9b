output "runner_ids" {
  description = "Runner ids, in order (each certificate names spiffe://mcp-gateway/runner/<id>)."
  value       = local.runner_ids
}

output "runner_addresses" {
  description = "Runner id → IPv4 address."
  value       = { for i, id in local.runner_ids : id => openstack_compute_instance_v2.runner[i].access_ip_v4 }
}

output "runner_urls" {
  description = "Runner id → the URL edges dial (what the runners register)."
  value       = { for i, id in local.runner_ids : id => "https://${openstack_compute_instance_v2.runner[i].access_ip_v4}:${var.runner_port}" }
}

output "security_group_id" {
  description = "The runners' security group (the runner port from edge_cidrs only)."
  value       = openstack_networking_secgroup_v2.runners.id
}

output "server_group_id" {
  description = "The anti-affinity server group, or null."
  value       = var.anti_affinity == "none" ? null : openstack_compute_servergroup_v2.runners[0].id
}
