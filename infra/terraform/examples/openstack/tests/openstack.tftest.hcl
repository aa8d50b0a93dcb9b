# `tofu test` for the OpenStack example against the real provider schema
# (terraform-provider-openstack built from the Go module proxy) with a mocked API: no cloud is
# contacted. scripts/test-terraform.sh runs it.

mock_provider "openstack" {
  mock_resource "openstack_compute_instance_v2" {
    defaults = {
      access_ip_v4 = "10.0.0.99"
    }
  }
}

variables {
  runner_count     = 3
  name_prefix      = "mcp-runner"
  image_name       = "debian-13-genericcloud-amd64"
  flavor_name      = "m1.medium"
  network_id       = "net-1"
  subnet_id        = "subnet-1"
  runner_fixed_ips = ["10.0.0.21", "10.0.0.22", "10.0.0.23"]
  edge_cidrs       = ["10.0.1.0/24", "10.0.2.7/32"]
  release_version  = "0.1.0"
  release_url      = "https://releases.example.com/mcp-gateway-0.1.0-linux-x64.tar.gz"
  release_sha256   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  edges            = ["https://edge-a.internal:8444"]
  allowed_edges    = ["edge-a"]
  tls_ca_pem       = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
  runner_certificates = [
    { cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB1\n-----END CERTIFICATE-----\n", key_pem = "-----BEGIN PRIVATE KEY-----\nK1\n-----END PRIVATE KEY-----\n" },
    { cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB2\n-----END CERTIFICATE-----\n", key_pem = "-----BEGIN PRIVATE KEY-----\nK2\n-----END PRIVATE KEY-----\n" },
    { cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB3\n-----END CERTIFICATE-----\n", key_pem = "-----BEGIN PRIVATE KEY-----\nK3\n-----END PRIVATE KEY-----\n" },
  ]
}

run "n_runners_behind_edges_only" {
  command = apply

  assert {
    condition     = length(openstack_compute_instance_v2.runner) == 3 && output.runner_ids == ["mcp-runner-1", "mcp-runner-2", "mcp-runner-3"]
    error_message = "runner_count VMs named <prefix>-<n>"
  }
  assert {
    condition     = { for r in openstack_networking_secgroup_rule_v2.runner_port_from_edges : r.remote_ip_prefix => [r.direction, r.protocol, r.port_range_min, r.port_range_max, r.ethertype] } == { "10.0.1.0/24" = ["ingress", "tcp", 9443, 9443, "IPv4"], "10.0.2.7/32" = ["ingress", "tcp", 9443, 9443, "IPv4"] }
    error_message = "one ingress rule per edge CIDR, the runner port only"
  }
  assert {
    condition     = length(openstack_networking_secgroup_rule_v2.ssh) == 0
    error_message = "no SSH rule unless ssh_cidrs is set"
  }
  assert {
    condition     = openstack_compute_servergroup_v2.runners[0].policies == tolist(["soft-anti-affinity"])
    error_message = "runners share a soft-anti-affinity server group by default"
  }
  assert {
    condition     = alltrue([for s in openstack_compute_instance_v2.runner : one(s.scheduler_hints).group == openstack_compute_servergroup_v2.runners[0].id])
    error_message = "every runner is scheduled in the server group"
  }
  assert {
    condition     = alltrue([for p in openstack_networking_port_v2.runner : p.security_group_ids == toset([openstack_networking_secgroup_v2.runners.id])])
    error_message = "every runner port is in the runners' security group (and only it)"
  }
  assert {
    condition     = [for p in openstack_networking_port_v2.runner : one(p.fixed_ip).ip_address] == ["10.0.0.21", "10.0.0.22", "10.0.0.23"]
    error_message = "fixed addresses in order"
  }
  assert {
    condition     = [for s in openstack_compute_instance_v2.runner : s.user_data] == [for m in module.runner : m.user_data]
    error_message = "each VM gets its own runner's user-data"
  }
  assert {
    condition     = [for m in module.runner : jsondecode(m.runner_config).advertiseUrl] == ["https://10.0.0.21:9443", "https://10.0.0.22:9443", "https://10.0.0.23:9443"]
    error_message = "each runner advertises its fixed address"
  }
  assert {
    condition     = [for m in module.runner : jsondecode(m.runner_config).id] == ["mcp-runner-1", "mcp-runner-2", "mcp-runner-3"]
    error_message = "runner ids match the VM names"
  }
  assert {
    condition     = base64decode(one([for f in yamldecode(module.runner[1].user_data).write_files : f.content if f.path == "/etc/mcp-gateway/pki/runner.key"])) == "-----BEGIN PRIVATE KEY-----\nK2\n-----END PRIVATE KEY-----\n"
    error_message = "runner 2 gets the second key"
  }
  assert {
    condition     = openstack_compute_instance_v2.runner[0].metadata == tomap({ "mcp-gateway-role" = "runner", "mcp-gateway-version" = "0.1.0", "mcp-gateway-runner-id" = "mcp-runner-1" })
    error_message = "instance metadata names the role, version and runner id"
  }
  assert {
    condition     = output.runner_urls == { "mcp-runner-1" = "https://10.0.0.99:9443", "mcp-runner-2" = "https://10.0.0.99:9443", "mcp-runner-3" = "https://10.0.0.99:9443" }
    error_message = "outputs the runners' URLs"
  }
}

run "fetched_certificates_strict_anti_affinity_ssh" {
  command = plan
  variables {
    runner_count        = 2
    runner_fixed_ips    = []
    runner_certificates = []
    tls_fetch_command   = "vault-agent-fetch-runner-cert"
    anti_affinity       = "anti-affinity"
    ssh_cidrs           = ["192.0.2.0/24"]
  }
  assert {
    condition     = openstack_compute_servergroup_v2.runners[0].policies == tolist(["anti-affinity"])
    error_message = "strict anti-affinity when asked"
  }
  assert {
    condition     = length(openstack_networking_secgroup_rule_v2.ssh) == 1
    error_message = "SSH from ssh_cidrs"
  }
  assert {
    condition     = alltrue([for m in module.runner : !contains(keys(jsondecode(m.runner_config)), "advertiseUrl")])
    error_message = "without fixed addresses the runners find their address at boot"
  }
}

run "no_server_group" {
  command = plan
  variables { anti_affinity = "none" }
  assert {
    condition     = length(openstack_compute_servergroup_v2.runners) == 0 && output.server_group_id == null
    error_message = "anti_affinity = none: no server group"
  }
}

run "refuses_zero_runners" {
  command = plan
  variables { runner_count = 0 }
  expect_failures = [var.runner_count]
}

run "refuses_the_whole_internet_as_edges" {
  command = plan
  variables { edge_cidrs = ["0.0.0.0/0"] }
  expect_failures = [var.edge_cidrs]
}

run "refuses_too_few_certificates" {
  command = plan
  variables {
    runner_count     = 4
    runner_fixed_ips = ["10.0.0.21", "10.0.0.22", "10.0.0.23", "10.0.0.24"]
  }
  expect_failures = [var.runner_certificates]
}

run "refuses_inline_certificates_without_fixed_addresses" {
  command = plan
  variables { runner_fixed_ips = [] }
  expect_failures = [var.runner_certificates]
}

run "refuses_too_few_fixed_addresses" {
  command = plan
  variables { runner_fixed_ips = ["10.0.0.21"] }
  expect_failures = [var.runner_fixed_ips]
}
