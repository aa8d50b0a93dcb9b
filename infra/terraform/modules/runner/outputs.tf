# Rules that involve more than one input are checked here, on the output every VM uses, so a
# plan fails with the message before anything is created.

output "user_data" {
  description = "cloud-init user-data (#cloud-config) for the VM: writes the config, unit, bootstrap and key material, then runs the bootstrap. Sensitive: it may carry the runner's private key."
  value       = local.user_data
  sensitive   = true

  precondition {
    condition     = local.release_url != null
    error_message = "Set release_url (the tarball's URL) or release_base_url (the directory holding mcp-gateway-<version>-linux-<arch>.tar.gz): the VM has to download the release from somewhere."
  }
  precondition {
    condition     = local.inline_tls != local.fetched_tls
    error_message = "Give the runner's certificate one way: tls_cert_pem and tls_key_pem (trials: the key travels in user-data), or tls_fetch_command (production: issued on the VM at boot) — not both, not neither."
  }
  precondition {
    condition     = !local.inline_tls || (var.tls_cert_pem != null && var.tls_key_pem != null)
    error_message = "The tls_cert_pem and tls_key_pem go together: set both (or neither, and use tls_fetch_command)."
  }
  precondition {
    condition     = !local.inline_tls || local.runner_id != null
    error_message = "With an inline certificate (tls_cert_pem) the runner id must be known at plan time to match its spiffe://mcp-gateway/runner/<id>: set runner_id_suffix (e.g. the instance index), or use tls_fetch_command to issue the certificate at boot for <prefix>-<host name>."
  }
  precondition {
    condition     = !local.inline_tls || var.advertise_url != null
    error_message = "With an inline certificate (tls_cert_pem) set advertise_url to the address the certificate names (e.g. https://10.0.0.21:9443): edges check that the runner's certificate names the host they dial. Or use tls_fetch_command, which gets the address found at boot as MCPG_ADVERTISE_HOST."
  }
  precondition {
    condition     = !contains(keys(var.extra_config), "tls") && !contains(keys(var.extra_config), "edges") && !contains(keys(var.extra_config), "id")
    error_message = "The extra_config must not set id, tls or edges: use runner_id_suffix, the tls_* inputs and edges, which the bootstrap and the unit rely on."
  }
}

output "runner_id" {
  description = "The runner's id (<prefix>-<suffix>), or null when it is taken from the host name at boot."
  value       = local.runner_id
}

output "runner_identity" {
  description = "The SPIFFE-style identity the runner's certificate must carry, or null when the id is known only at boot."
  value       = local.runner_id == null ? null : "spiffe://mcp-gateway/runner/${local.runner_id}"
}

output "runner_config" {
  description = "runner.json as written to /etc/mcp-gateway/runner.json."
  value       = local.runner_config_json
}

output "systemd_unit" {
  description = "The hardened systemd unit, as written to /etc/systemd/system/mcp-gateway-runner.service."
  value       = local.systemd_unit
}

output "bootstrap_script" {
  description = "The bootstrap script cloud-init runs (also usable from an image build or by hand as root)."
  value       = local.bootstrap_script
}

output "release_url" {
  description = "Where the VM downloads the release tarball from."
  value       = local.release_url
}

output "labels" {
  description = "Labels for the VM's metadata or tags (the given labels plus mcp-gateway-role and mcp-gateway-version)."
  value       = local.labels
}

output "port" {
  description = "The runner's mTLS port: admit the edges to it, and nothing else."
  value       = var.port
}
