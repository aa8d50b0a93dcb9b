# `tofu test` for the runner module (scripts/test-terraform.sh runs it): the rendered user-data,
# config, unit and bootstrap, and the inputs it refuses. The module has no provider, so these
# runs need nothing but OpenTofu.

variables {
  release_version  = "0.1.0"
  release_base_url = "https://releases.example.com/mcp-gateway/0.1.0/"
  release_sha256   = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"
  runner_id_prefix = "rn"
  runner_id_suffix = "1"
  edges            = ["https://edge-a.internal:8444", "https://10.0.0.5:8444"]
  allowed_edges    = ["edge-a", "edge-b"]
  advertise_url    = "https://10.0.0.21:9443"
  tls_ca_pem       = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
  tls_cert_pem     = "-----BEGIN CERTIFICATE-----\nMIIBleaf\n-----END CERTIFICATE-----\n"
  tls_key_pem      = "-----BEGIN PRIVATE KEY-----\nMIGHkey\n-----END PRIVATE KEY-----\n"
  labels           = { team = "platform" }
}

run "inline_certificate_renders_everything" {
  command = plan

  assert {
    condition     = output.runner_id == "rn-1" && output.runner_identity == "spiffe://mcp-gateway/runner/rn-1"
    error_message = "runner id is <prefix>-<suffix>"
  }
  assert {
    condition     = output.release_url == "https://releases.example.com/mcp-gateway/0.1.0/mcp-gateway-0.1.0-linux-x64.tar.gz"
    error_message = "release URL is <base>/mcp-gateway-<version>-linux-<arch>.tar.gz (one slash)"
  }
  assert {
    condition = jsondecode(output.runner_config) == {
      id                 = "rn-1"
      advertiseUrl       = "https://10.0.0.21:9443"
      host               = "0.0.0.0"
      port               = 9443
      dataDir            = "/var/lib/mcp-gateway"
      workspaceRoot      = "/var/lib/mcp-gateway/workspaces"
      policyBundle       = "/opt/mcp-gateway/current/policies/build/bundle.tar.gz"
      tls                = { caPath = "/etc/mcp-gateway/pki/ca.crt", certPath = "/etc/mcp-gateway/pki/runner.crt", keyPath = "/etc/mcp-gateway/pki/runner.key" }
      edges              = ["https://edge-a.internal:8444", "https://10.0.0.5:8444"]
      allowedEdges       = ["edge-a", "edge-b"]
      allowedMonitors    = []
      maxConcurrentTasks = 32
      tasksMemoryBytes   = 0
      maxFileBytes       = 8388608
      retentionMs        = 900000
      drainTimeoutMs     = 10000
      cgroups            = "auto"
      requireCgroups     = true
      sandboxUid         = 65534
      sandboxGid         = 65534
      logLevel           = "info"
    }
    error_message = "runner.json differs from the expected document"
  }
  assert {
    condition     = startswith(output.user_data, "#cloud-config\n")
    error_message = "user-data must start with #cloud-config"
  }
  assert {
    condition     = yamldecode(output.user_data).runcmd == [["/usr/local/sbin/mcp-gateway-runner-bootstrap"]]
    error_message = "runcmd runs the bootstrap, and only it"
  }
  assert {
    condition = { for f in yamldecode(output.user_data).write_files : f.path => f.permissions } == {
      "/etc/mcp-gateway/runner.json"                   = "0640"
      "/etc/mcp-gateway/labels.json"                   = "0644"
      "/etc/mcp-gateway/pki/ca.crt"                    = "0644"
      "/etc/mcp-gateway/pki/runner.crt"                = "0644"
      "/etc/mcp-gateway/pki/runner.key"                = "0600"
      "/etc/systemd/system/mcp-gateway-runner.service" = "0644"
      "/usr/local/sbin/mcp-gateway-runner-bootstrap"   = "0700"
    }
    error_message = "write_files: the expected files with tight permissions (key 0600, bootstrap 0700)"
  }
  assert {
    condition     = alltrue([for f in yamldecode(output.user_data).write_files : f.owner == "root:root" && f.encoding == "b64"])
    error_message = "every file is root-owned and base64-encoded"
  }
  assert {
    condition     = base64decode(one([for f in yamldecode(output.user_data).write_files : f.content if f.path == "/etc/mcp-gateway/runner.json"])) == output.runner_config
    error_message = "the runner.json in user-data is the rendered config"
  }
  assert {
    condition     = base64decode(one([for f in yamldecode(output.user_data).write_files : f.content if f.path == "/etc/mcp-gateway/pki/runner.key"])) == var.tls_key_pem
    error_message = "the inline key is written as given"
  }
  assert {
    condition = alltrue([for line in [
      "Delegate=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
      "KillMode=mixed", "Restart=on-failure", "TimeoutStopSec=25s", "StateDirectoryMode=0711",
      "ExecStart=/opt/mcp-gateway/bin/node /opt/mcp-gateway/current/dist/runner.mjs --config /etc/mcp-gateway/runner.json",
      "ProtectKernelTunables=no", "ProtectControlGroups=no", "RestrictNamespaces=no",
    ] : strcontains(output.systemd_unit, "\n${line}\n")])
    error_message = "the unit carries the hardening and delegation settings"
  }
  assert {
    condition = alltrue([for line in [
      "RELEASE_SHA256='0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'",
      "RELEASE_URL='https://releases.example.com/mcp-gateway/0.1.0/mcp-gateway-0.1.0-linux-x64.tar.gz'",
      "RUNNER_ID='rn-1'", "ADVERTISE_URL='https://10.0.0.21:9443'", "FETCH_TLS='false'", "NODE_SOURCE='distro'",
    ] : strcontains(output.bootstrap_script, "\n${line}\n")])
    error_message = "the bootstrap carries the release, its lower-case checksum and the identity"
  }
  assert {
    condition     = output.labels == { team = "platform", "mcp-gateway-role" = "runner", "mcp-gateway-version" = "0.1.0" }
    error_message = "labels are the given ones plus role and version"
  }
}

run "certificate_fetched_at_boot_for_the_host_name" {
  command = plan
  variables {
    runner_id_suffix  = null
    advertise_url     = null
    tls_cert_pem      = null
    tls_key_pem       = null
    tls_fetch_command = "step ca certificate \"$MCPG_RUNNER_ID\" \"$MCPG_TLS_DIR/runner.crt\" \"$MCPG_TLS_DIR/runner.key\""
    node              = { source = "tarball", tarball_url = "https://nodejs.org/dist/v20.19.5/node-v20.19.5-linux-x64.tar.xz", tarball_sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789" }
    extra_config      = { workspaceQuota = { mode = "off" } }
  }

  assert {
    condition     = output.runner_id == null && !contains(keys(jsondecode(output.runner_config)), "id") && !contains(keys(jsondecode(output.runner_config)), "advertiseUrl")
    error_message = "without a suffix the id (and without advertise_url the URL) come from the environment file the bootstrap writes"
  }
  assert {
    condition     = jsondecode(output.runner_config).workspaceQuota == { mode = "off" }
    error_message = "extra_config is merged into runner.json"
  }
  assert {
    condition     = sort([for f in yamldecode(output.user_data).write_files : f.path if startswith(f.path, "/etc/mcp-gateway/pki/") || f.path == "/etc/mcp-gateway/tls-fetch.sh"]) == tolist(["/etc/mcp-gateway/pki/ca.crt", "/etc/mcp-gateway/tls-fetch.sh"])
    error_message = "no key or certificate in user-data; the fetch command is"
  }
  assert {
    condition     = one([for f in yamldecode(output.user_data).write_files : f.permissions if f.path == "/etc/mcp-gateway/tls-fetch.sh"]) == "0700"
    error_message = "the fetch command is root-only"
  }
  assert {
    condition     = strcontains(output.bootstrap_script, "\nRUNNER_ID=''\n") && strcontains(output.bootstrap_script, "\nRUNNER_ID_PREFIX='rn'\n") && strcontains(output.bootstrap_script, "\nFETCH_TLS='true'\n")
    error_message = "the bootstrap derives the id and fetches the certificate"
  }
  assert {
    condition     = strcontains(output.bootstrap_script, "\nNODE_SHA256='abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789'\n")
    error_message = "the Node.js tarball checksum is passed, lower-cased"
  }
}

run "explicit_release_url_and_limits" {
  command = plan
  variables {
    release_url     = "file:///srv/mirror/mcp-gateway-0.1.0-linux-arm64.tar.gz"
    arch            = "arm64"
    limits          = { max_concurrent_tasks = 4, tasks_memory_bytes = 2147483648, drain_timeout_ms = 60000 }
    cgroup_mode     = "off"
    require_cgroups = false
  }
  assert {
    condition     = output.release_url == "file:///srv/mirror/mcp-gateway-0.1.0-linux-arm64.tar.gz"
    error_message = "release_url wins over release_base_url"
  }
  assert {
    condition     = jsondecode(output.runner_config).maxConcurrentTasks == 4 && jsondecode(output.runner_config).tasksMemoryBytes == 2147483648 && jsondecode(output.runner_config).cgroups == "off"
    error_message = "limits and cgroup mode reach runner.json"
  }
  assert {
    condition     = strcontains(output.systemd_unit, "\nTimeoutStopSec=75s\n")
    error_message = "systemd waits for the drain bound plus 15 s"
  }
}

# --- refused inputs (the messages are checked by scripts/test-terraform.sh) ---------------------

run "refuses_a_short_checksum" {
  command = plan
  variables { release_sha256 = "abc123" }
  expect_failures = [var.release_sha256]
}

run "refuses_plain_http_edges" {
  command = plan
  variables { edges = ["http://edge-a.internal:8444"] }
  expect_failures = [var.edges]
}

run "refuses_no_edges" {
  command = plan
  variables { edges = [] }
  expect_failures = [var.edges]
}

run "refuses_a_version_with_v" {
  command = plan
  variables { release_version = "v0.1.0" }
  expect_failures = [var.release_version]
}

run "refuses_memory_in_mib" {
  command = plan
  variables { limits = { tasks_memory_bytes = 512 } }
  expect_failures = [var.limits]
}

run "refuses_a_node_tarball_without_checksum" {
  command = plan
  variables { node = { source = "tarball", tarball_url = "https://nodejs.org/dist/v20.19.5/node-v20.19.5-linux-x64.tar.xz" } }
  expect_failures = [var.node]
}

run "refuses_root_as_sandbox_user" {
  command = plan
  variables { sandbox_uid = 0 }
  expect_failures = [var.sandbox_uid]
}

run "refuses_a_path_instead_of_a_pem" {
  command = plan
  variables { tls_ca_pem = "/etc/pki/ca.crt" }
  expect_failures = [var.tls_ca_pem]
}

run "refuses_no_release_location" {
  command = plan
  variables { release_base_url = null }
  expect_failures = [output.user_data]
}

run "refuses_both_inline_and_fetched_certificates" {
  command = plan
  variables { tls_fetch_command = "true" }
  expect_failures = [output.user_data]
}

run "refuses_an_inline_certificate_without_a_fixed_id" {
  command = plan
  variables { runner_id_suffix = null }
  expect_failures = [output.user_data]
}

run "refuses_an_inline_certificate_without_an_address" {
  command = plan
  variables { advertise_url = null }
  expect_failures = [output.user_data]
}

run "refuses_extra_config_that_overrides_tls" {
  command = plan
  variables { extra_config = { tls = { caPath = "/tmp/ca" } } }
  expect_failures = [output.user_data]
}
