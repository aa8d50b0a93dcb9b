# The runner module: renders everything a VM needs to run one mcp-gateway runner —
#   runner.json          the runner's configuration (runner/src/config.ts),
#   the systemd unit     mcp-gateway-runner.service, hardened (templates/runner.service.tftpl),
#   the bootstrap        /usr/local/sbin/mcp-gateway-runner-bootstrap (templates/bootstrap.sh.tftpl),
#   cloud-init user-data that writes them (and the key material) and runs the bootstrap.
# Pass `user_data` to any VM resource that takes cloud-init user-data; see
# docs/operations/runners-on-vms.md.

locals {
  # Paths on the VM. The bootstrap, the unit and the config agree on these.
  paths = {
    config_dir   = "/etc/mcp-gateway"
    config       = "/etc/mcp-gateway/runner.json"
    env          = "/etc/mcp-gateway/runner.env"
    labels       = "/etc/mcp-gateway/labels.json"
    tls_dir      = "/etc/mcp-gateway/pki"
    ca           = "/etc/mcp-gateway/pki/ca.crt"
    cert         = "/etc/mcp-gateway/pki/runner.crt"
    key          = "/etc/mcp-gateway/pki/runner.key"
    tls_fetch    = "/etc/mcp-gateway/tls-fetch.sh"
    install_root = "/opt/mcp-gateway"
    current      = "/opt/mcp-gateway/current"
    node         = "/opt/mcp-gateway/bin/node"
    state_dir    = "/var/lib/mcp-gateway"
    bootstrap    = "/usr/local/sbin/mcp-gateway-runner-bootstrap"
    unit         = "/etc/systemd/system/mcp-gateway-runner.service"
  }
  unit_name = "mcp-gateway-runner.service"

  tarball_name = "mcp-gateway-${var.release_version}-linux-${var.arch}.tar.gz"
  release_url = (
    var.release_url != null ? var.release_url :
    var.release_base_url != null ? "${trimsuffix(var.release_base_url, "/")}/${local.tarball_name}" :
    null
  )

  # Known at plan time when the suffix is given; otherwise the bootstrap names the runner
  # <prefix>-<short host name> at boot and passes it as MCP_GATEWAY_RUNNER_ID.
  runner_id   = var.runner_id_suffix == null ? null : "${var.runner_id_prefix}-${var.runner_id_suffix}"
  inline_tls  = var.tls_cert_pem != null || var.tls_key_pem != null
  fetched_tls = var.tls_fetch_command != null

  # runner.json: the keys of runner/src/config.ts. Null values are left out (the runner's
  # defaults apply, or the environment file the bootstrap writes supplies them).
  runner_config = merge(
    { for k, v in {
      id           = local.runner_id
      advertiseUrl = var.advertise_url
      otlpEndpoint = var.otlp_traces_endpoint
    } : k => v if v != null },
    {
      host          = "0.0.0.0"
      port          = var.port
      dataDir       = local.paths.state_dir
      workspaceRoot = "${local.paths.state_dir}/workspaces"
      policyBundle  = "${local.paths.current}/policies/build/bundle.tar.gz"
      tls = {
        caPath   = local.paths.ca
        certPath = local.paths.cert
        keyPath  = local.paths.key
      }
      edges              = var.edges
      allowedEdges       = var.allowed_edges
      allowedMonitors    = var.allowed_monitors
      maxConcurrentTasks = var.limits.max_concurrent_tasks
      tasksMemoryBytes   = var.limits.tasks_memory_bytes
      maxFileBytes       = var.limits.max_file_bytes
      retentionMs        = var.limits.retention_ms
      drainTimeoutMs     = var.limits.drain_timeout_ms
      cgroups            = var.cgroup_mode
      requireCgroups     = var.require_cgroups
      sandboxUid         = var.sandbox_uid
      sandboxGid         = var.sandbox_uid
      logLevel           = var.log_level
    },
    var.extra_config,
  )
  runner_config_json = "${jsonencode(local.runner_config)}\n"

  labels = merge(var.labels, {
    "mcp-gateway-role"    = "runner"
    "mcp-gateway-version" = var.release_version
  })

  systemd_unit = templatefile("${path.module}/templates/runner.service.tftpl", {
    paths = local.paths
    # systemd's stop timeout: the runner's own drain bound plus time to deregister and exit.
    stop_timeout_s = ceil(var.limits.drain_timeout_ms / 1000) + 15
  })

  bootstrap_script = templatefile("${path.module}/templates/bootstrap.sh.tftpl", {
    paths            = local.paths
    unit_name        = local.unit_name
    release_version  = var.release_version
    release_url      = local.release_url != null ? local.release_url : "unset"
    release_sha256   = lower(var.release_sha256)
    tarball_name     = local.tarball_name
    node_source      = var.node.source
    node_url         = var.node.tarball_url != null ? var.node.tarball_url : ""
    node_sha256      = lower(var.node.tarball_sha256 != null ? var.node.tarball_sha256 : "")
    runner_id        = local.runner_id != null ? local.runner_id : ""
    runner_id_prefix = var.runner_id_prefix
    advertise_url    = var.advertise_url != null ? var.advertise_url : ""
    port             = var.port
    fetch_tls        = local.fetched_tls
    install_packages = var.install_packages
  })

  # cloud-init user-data: write_files (config, unit, bootstrap, key material) and one runcmd
  # entry that runs the bootstrap. Files are base64 so that their bytes are exactly the
  # rendered ones whatever they contain. Key and certificate files are written only when
  # given inline; the TLS fetch command is written only when set.
  write_files = concat(
    [
      { path = local.paths.config, permissions = "0640", content = local.runner_config_json },
      { path = local.paths.labels, permissions = "0644", content = "${jsonencode(local.labels)}\n" },
      { path = local.paths.ca, permissions = "0644", content = var.tls_ca_pem },
      { path = local.paths.unit, permissions = "0644", content = local.systemd_unit },
      { path = local.paths.bootstrap, permissions = "0700", content = local.bootstrap_script },
    ],
    var.tls_cert_pem == null ? [] : [
      { path = local.paths.cert, permissions = "0644", content = var.tls_cert_pem },
    ],
    var.tls_key_pem == null ? [] : [
      { path = local.paths.key, permissions = "0600", content = var.tls_key_pem },
    ],
    var.tls_fetch_command == null ? [] : [
      { path = local.paths.tls_fetch, permissions = "0700", content = "#!/bin/sh\nset -eu\n${var.tls_fetch_command}\n" },
    ],
  )

  user_data = "#cloud-config\n${yamlencode({
    write_files = [for f in local.write_files : {
      path        = f.path
      owner       = "root:root"
      permissions = f.permissions
      encoding    = "b64"
      content     = base64encode(f.content)
    }]
    runcmd = [[local.paths.bootstrap]]
  })}"
}
