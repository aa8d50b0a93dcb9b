# Inputs of the OpenStack example. The runner-specific ones are passed through to
# ../../modules/runner, which validates them; the ones here describe the VMs.

variable "runner_count" {
  description = "How many runner VMs to run. Scale by changing it: new runners register with the edges, removed ones deregister when they shut down."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.runner_count >= 1 && var.runner_count <= 100 && floor(var.runner_count) == var.runner_count
    error_message = "The runner_count must be a whole number from 1 to 100 (0 runners means no edge can run anything; remove the deployment instead)."
  }
}

variable "name_prefix" {
  description = "Prefix of the VM names and of the runner ids: <prefix>-1, <prefix>-2, …"
  type        = string
  default     = "mcp-runner"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-40 lower-case letters, digits and dashes, starting and ending with a letter or digit (it is part of host names)."
  }
}

variable "image_name" {
  description = "Glance image of the runner VMs: a cloud-init image such as Debian 12/13 or Ubuntu 24.04 (\"debian-13-genericcloud-amd64\")."
  type        = string
  nullable    = false
}

variable "flavor_name" {
  description = "Nova flavor of the runner VMs (2 vCPU / 4 GiB is a reasonable start)."
  type        = string
  nullable    = false
}

variable "network_id" {
  description = "Neutron network the runners are attached to; the edges must reach it."
  type        = string
  nullable    = false
}

variable "subnet_id" {
  description = "Subnet of network_id the runners' addresses come from (needed with runner_fixed_ips)."
  type        = string
  default     = null
}

variable "runner_fixed_ips" {
  description = "Fixed IPv4 addresses for the runners, one per runner, so their certificates can name them before the VMs exist (inline certificates). Empty: Neutron picks, and the certificate is fetched at boot (tls_fetch_command)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for ip in var.runner_fixed_ips : can(cidrhost("${ip}/32", 0))])
    error_message = "Each runner_fixed_ips entry must be an IPv4 address such as 10.0.0.21."
  }
  validation {
    condition     = length(var.runner_fixed_ips) == 0 || (length(var.runner_fixed_ips) == var.runner_count && var.subnet_id != null)
    error_message = "The runner_fixed_ips needs one address per runner (runner_count = ${var.runner_count}, ${length(var.runner_fixed_ips)} given) and subnet_id set; to scale, add the new runners' addresses too."
  }
}

variable "edge_cidrs" {
  description = "Where the edges connect from (CIDRs): the only sources admitted to the runner port."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.edge_cidrs) > 0 && alltrue([for c in var.edge_cidrs : can(cidrnetmask(c)) || can(cidrhost(c, 0))])
    error_message = "The edge_cidrs must list at least one CIDR such as 10.0.1.0/24 or 10.0.1.5/32 (the edges' addresses): without it nothing can reach the runners."
  }
  validation {
    condition     = !contains(var.edge_cidrs, "0.0.0.0/0") && !contains(var.edge_cidrs, "::/0")
    error_message = "The edge_cidrs must not be 0.0.0.0/0 or ::/0: the runner port is for the edges only (mTLS refuses others, but do not expose it)."
  }
}

variable "ssh_cidrs" {
  description = "CIDRs admitted to SSH (port 22); empty: no SSH rule."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "key_pair" {
  description = "Nova key pair for SSH access; null for none."
  type        = string
  default     = null
}

variable "anti_affinity" {
  description = "Server group policy: \"anti-affinity\" (every runner on its own hypervisor; fails when there are not enough), \"soft-anti-affinity\" (spread when possible), or \"none\"."
  type        = string
  default     = "soft-anti-affinity"
  nullable    = false

  validation {
    condition     = contains(["anti-affinity", "soft-anti-affinity", "none"], var.anti_affinity)
    error_message = "The anti_affinity must be \"anti-affinity\", \"soft-anti-affinity\" or \"none\"."
  }
}

variable "availability_zone" {
  description = "Nova availability zone; null for the default."
  type        = string
  default     = null
}

variable "labels" {
  description = "Extra instance metadata for every runner."
  type        = map(string)
  default     = {}
  nullable    = false
}

# --- passed to the runner module ---------------------------------------------------------------

variable "release_version" {
  description = "mcp-gateway release to install (e.g. \"0.1.0\")."
  type        = string
}

variable "release_url" {
  description = "URL of mcp-gateway-<version>-linux-<arch>.tar.gz."
  type        = string
  default     = null
}

variable "release_base_url" {
  description = "Directory URL holding the release tarballs (when release_url is null)."
  type        = string
  default     = null
}

variable "release_sha256" {
  description = "SHA-256 of the release tarball (from its SHA256SUMS)."
  type        = string
}

variable "node" {
  description = "Node.js source for the VMs (see the module): { source = \"distro\" } or { source = \"tarball\", tarball_url, tarball_sha256 }."
  type = object({
    source         = optional(string, "distro")
    tarball_url    = optional(string)
    tarball_sha256 = optional(string)
  })
  default = {}
}

variable "edges" {
  description = "Internal mTLS URLs of the edges (https://<edge>:<internalPort>)."
  type        = list(string)
}

variable "allowed_edges" {
  description = "Edge ids allowed to call the runners."
  type        = list(string)
}

variable "runner_port" {
  description = "The runners' mTLS port."
  type        = number
  default     = 9443
}

variable "tls_ca_pem" {
  description = "PEM CA bundle of the runner/edge PKI."
  type        = string
}

variable "runner_certificates" {
  description = "For trials: one { cert_pem, key_pem } per runner, in order (<prefix>-1 first), each naming spiffe://mcp-gateway/runner/<prefix>-<n> and its fixed IP (infra/terraform/scripts/runner-certs.sh issues them). Empty: tls_fetch_command."
  type = list(object({
    cert_pem = string
    key_pem  = string
  }))
  default   = []
  nullable  = false
  sensitive = true

  validation {
    condition     = length(var.runner_certificates) == 0 || length(var.runner_certificates) == var.runner_count
    error_message = "The runner_certificates needs one { cert_pem, key_pem } per runner, in order (runner_count = ${var.runner_count}); to scale, issue the new runners' certificates first (infra/terraform/scripts/runner-certs.sh)."
  }
  validation {
    condition     = length(var.runner_certificates) == 0 || length(var.runner_fixed_ips) > 0
    error_message = "Inline runner_certificates need runner_fixed_ips: each certificate must name the address the edges dial, so the address must be known before the VM exists. Or use tls_fetch_command."
  }
}

variable "tls_fetch_command" {
  description = "Production: the command each VM runs at boot to get its certificate (see the module and docs/operations/runners-on-vms.md)."
  type        = string
  default     = null
}

variable "limits" {
  description = "Runner limits (see the module)."
  type        = any
  default     = {}
}

variable "require_cgroups" {
  description = "Refuse tasks unless per-task cgroups are enforced."
  type        = bool
  default     = true
}
