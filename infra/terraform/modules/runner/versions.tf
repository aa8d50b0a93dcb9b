terraform {
  # Tested with OpenTofu 1.10 (scripts/test-terraform.sh); Terraform >= 1.9 reads it the same way.
  # The module has no provider: it renders text (cloud-init user-data, the runner config, the
  # systemd unit, the bootstrap script) that any VM resource takes as user_data.
  required_version = ">= 1.9.0"
}
