# mcp-gateway runners on OpenStack: N VMs from one image, each with the runner module's
# cloud-init user-data, spread over hypervisors by a server group, behind a security group that
# admits only the edges to the runner port. See docs/operations/runners-on-vms.md.

locals {
  fixed_ips   = length(var.runner_fixed_ips) > 0
  inline_tls  = length(var.runner_certificates) > 0
  runner_ids  = [for i in range(var.runner_count) : "${var.name_prefix}-${i + 1}"]
  server_name = { for i in range(var.runner_count) : i => "${var.name_prefix}-${i + 1}" }
}

module "runner" {
  source = "../../modules/runner"
  count  = var.runner_count

  release_version  = var.release_version
  release_url      = var.release_url
  release_base_url = var.release_base_url
  release_sha256   = var.release_sha256
  node             = var.node

  runner_id_prefix = var.name_prefix
  runner_id_suffix = tostring(count.index + 1)
  edges            = var.edges
  allowed_edges    = var.allowed_edges
  port             = var.runner_port
  # With fixed addresses the certificate can name the address edges dial; otherwise the
  # bootstrap finds it at boot and hands it to tls_fetch_command.
  advertise_url = local.fixed_ips ? "https://${var.runner_fixed_ips[count.index]}:${var.runner_port}" : null

  tls_ca_pem        = var.tls_ca_pem
  tls_cert_pem      = local.inline_tls ? var.runner_certificates[count.index].cert_pem : null
  tls_key_pem       = local.inline_tls ? var.runner_certificates[count.index].key_pem : null
  tls_fetch_command = var.tls_fetch_command

  limits          = var.limits
  require_cgroups = var.require_cgroups
  labels          = var.labels
}

resource "openstack_networking_secgroup_v2" "runners" {
  name        = "${var.name_prefix}-runners"
  description = "mcp-gateway runners: the runner port from the edges only"
}

# One rule per edge CIDR: the runner port, TCP, from the edges. Nothing else comes in (besides
# SSH when ssh_cidrs is set). The default egress rules stay: runners dial the edges' internal
# port and, at boot, the package mirror and the release URL.
resource "openstack_networking_secgroup_rule_v2" "runner_port_from_edges" {
  for_each          = toset(var.edge_cidrs)
  security_group_id = openstack_networking_secgroup_v2.runners.id
  direction         = "ingress"
  ethertype         = strcontains(each.value, ":") ? "IPv6" : "IPv4"
  protocol          = "tcp"
  port_range_min    = var.runner_port
  port_range_max    = var.runner_port
  remote_ip_prefix  = each.value
  description       = "mcp-gateway runner port from the edges"
}

resource "openstack_networking_secgroup_rule_v2" "ssh" {
  for_each          = toset(var.ssh_cidrs)
  security_group_id = openstack_networking_secgroup_v2.runners.id
  direction         = "ingress"
  ethertype         = strcontains(each.value, ":") ? "IPv6" : "IPv4"
  protocol          = "tcp"
  port_range_min    = 22
  port_range_max    = 22
  remote_ip_prefix  = each.value
  description       = "SSH"
}

resource "openstack_compute_servergroup_v2" "runners" {
  count    = var.anti_affinity == "none" ? 0 : 1
  name     = "${var.name_prefix}-runners"
  policies = [var.anti_affinity]
}

resource "openstack_networking_port_v2" "runner" {
  count              = var.runner_count
  name               = local.server_name[count.index]
  network_id         = var.network_id
  security_group_ids = [openstack_networking_secgroup_v2.runners.id]
  admin_state_up     = true

  dynamic "fixed_ip" {
    for_each = local.fixed_ips ? [var.runner_fixed_ips[count.index]] : []
    content {
      subnet_id  = var.subnet_id
      ip_address = fixed_ip.value
    }
  }
}

resource "openstack_compute_instance_v2" "runner" {
  count             = var.runner_count
  name              = local.server_name[count.index]
  image_name        = var.image_name
  flavor_name       = var.flavor_name
  key_pair          = var.key_pair
  availability_zone = var.availability_zone
  user_data         = module.runner[count.index].user_data
  metadata = merge(module.runner[count.index].labels, {
    "mcp-gateway-runner-id" = local.runner_ids[count.index]
  })

  network {
    port = openstack_networking_port_v2.runner[count.index].id
  }

  dynamic "scheduler_hints" {
    for_each = var.anti_affinity == "none" ? [] : [openstack_compute_servergroup_v2.runners[0].id]
    content {
      group = scheduler_hints.value
    }
  }
}
