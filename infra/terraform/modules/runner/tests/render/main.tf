# A root module that renders one runner's user-data for the tests that go past `tofu test`
# (scripts/test-terraform.sh: cloud-init schema, systemd-analyze verify;
# test/integration/runner-vm.test.ts: the bootstrap in a fresh root). Inputs come from a
# -var-file; `tofu apply` with local state, then `tofu output -json`.

variable "release_version" { type = string }
variable "release_url" { type = string }
variable "release_sha256" { type = string }
variable "node" {
  type    = object({ source = string, tarball_url = optional(string), tarball_sha256 = optional(string) })
  default = { source = "distro" }
}
variable "runner_id_prefix" { type = string }
variable "runner_id_suffix" {
  type    = string
  default = null
}
variable "edges" { type = list(string) }
variable "allowed_edges" { type = list(string) }
variable "advertise_url" {
  type    = string
  default = null
}
variable "port" {
  type    = number
  default = 9443
}
variable "tls_ca_pem" { type = string }
variable "tls_cert_pem" {
  type    = string
  default = null
}
variable "tls_key_pem" {
  type      = string
  default   = null
  sensitive = true
}
variable "tls_fetch_command" {
  type    = string
  default = null
}
variable "require_cgroups" {
  type    = bool
  default = true
}

module "runner" {
  source            = "../.."
  release_version   = var.release_version
  release_url       = var.release_url
  release_sha256    = var.release_sha256
  node              = var.node
  runner_id_prefix  = var.runner_id_prefix
  runner_id_suffix  = var.runner_id_suffix
  edges             = var.edges
  allowed_edges     = var.allowed_edges
  advertise_url     = var.advertise_url
  port              = var.port
  tls_ca_pem        = var.tls_ca_pem
  tls_cert_pem      = var.tls_cert_pem
  tls_key_pem       = var.tls_key_pem
  tls_fetch_command = var.tls_fetch_command
  require_cgroups   = var.require_cgroups
}

output "user_data" {
  value     = module.runner.user_data
  sensitive = true
}

# What cloud-init reads from the user-data, decoded by OpenTofu's own YAML parser: the test
# writes these files into the fresh root and runs runcmd there, as cloud-init would.
output "write_files" {
  value = [for f in yamldecode(module.runner.user_data).write_files : {
    path        = f.path
    permissions = f.permissions
    owner       = f.owner
    content     = base64decode(f.content)
  }]
  sensitive = true
}

output "runcmd" {
  value     = yamldecode(module.runner.user_data).runcmd
  sensitive = true
}

output "systemd_unit" {
  value = module.runner.systemd_unit
}

output "runner_config" {
  value = module.runner.runner_config
}
