# Inputs of the runner module. Every rule an operator can get wrong is checked here, at plan
# time, with a message that says what to write instead; what can only be known on the VM (the
# certificate fetched at boot, the host's cgroups, bubblewrap) is checked there by
# `mcp-gateway runner --check`, which the bootstrap runs before it starts the service.

# --- the release -------------------------------------------------------------------------------

variable "release_version" {
  description = "Version of the mcp-gateway release to install, e.g. \"0.1.0\" (no leading v). Names the install directory /opt/mcp-gateway/releases/<version>."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", var.release_version))
    error_message = "The release_version must be a version such as \"0.1.0\" or \"0.2.0-rc.1\", without a leading \"v\"."
  }
}

variable "release_url" {
  description = "URL of the release tarball (mcp-gateway-<version>-linux-<arch>.tar.gz from `npm run build`). https:// on the internet; http:// or file:// only on a network or image you control — the SHA-256 is verified in every case. Null: <release_base_url>/mcp-gateway-<version>-linux-<arch>.tar.gz."
  type        = string
  default     = null

  validation {
    condition     = var.release_url == null || can(regex("^(https?|file)://[^\\s'\"]+$", var.release_url))
    error_message = "The release_url must be an https://, http:// or file:// URL without spaces or quotes, e.g. https://releases.example.com/mcp-gateway/0.1.0/mcp-gateway-0.1.0-linux-x64.tar.gz."
  }
}

variable "release_base_url" {
  description = "Directory URL the release tarballs are published under (no trailing file name); used when release_url is null."
  type        = string
  default     = null

  validation {
    condition     = var.release_base_url == null || can(regex("^(https?|file)://[^\\s'\"]+$", var.release_base_url))
    error_message = "The release_base_url must be an https://, http:// or file:// URL without spaces or quotes, e.g. https://releases.example.com/mcp-gateway/0.1.0."
  }
}

variable "release_sha256" {
  description = "SHA-256 of the release tarball, as listed in the release's SHA256SUMS. The bootstrap refuses a tarball that does not match."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9a-fA-F]{64}$", var.release_sha256))
    error_message = "The release_sha256 must be the 64 hexadecimal digits of the tarball's SHA-256: the first field of its line in SHA256SUMS (or the output of `sha256sum mcp-gateway-<version>-linux-<arch>.tar.gz`)."
  }
}

variable "arch" {
  description = "CPU architecture of the VMs, as in the release tarball's name: \"x64\" or \"arm64\"."
  type        = string
  default     = "x64"
  nullable    = false

  validation {
    condition     = contains(["x64", "arm64"], var.arch)
    error_message = "The arch must be \"x64\" or \"arm64\" (the architectures release tarballs are built for)."
  }
}

variable "node" {
  description = <<-EOT
    Where Node.js (20.19 or newer) comes from. source = "distro" installs the distribution's
    nodejs package (Debian 13 ships 20.19); the bootstrap refuses an older one. source = "tarball"
    downloads tarball_url (a nodejs.org-style node-v<version>-linux-<arch>.tar.xz or .tar.gz) and
    checks tarball_sha256 (its line in SHASUMS256.txt), for distributions with an older Node.
  EOT
  type = object({
    source         = optional(string, "distro")
    tarball_url    = optional(string)
    tarball_sha256 = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["distro", "tarball"], var.node.source)
    error_message = "The node.source must be \"distro\" (the distribution's nodejs package) or \"tarball\" (tarball_url + tarball_sha256)."
  }
  validation {
    condition = var.node.source != "tarball" || (
      can(regex("^(https?|file)://[^\\s'\"]+\\.tar\\.(xz|gz)$", var.node.tarball_url)) &&
      can(regex("^[0-9a-fA-F]{64}$", var.node.tarball_sha256))
    )
    error_message = "With node.source = \"tarball\", set node.tarball_url to the URL of a node-v<version>-linux-<arch>.tar.xz (or .tar.gz) and node.tarball_sha256 to its 64-hex-digit SHA-256 from SHASUMS256.txt."
  }
}

# --- identity and the edges --------------------------------------------------------------------

variable "runner_id_prefix" {
  description = "Runner ids are <prefix>-<suffix>; each id must match the certificate's URI SAN spiffe://mcp-gateway/runner/<id>."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,40}$", var.runner_id_prefix))
    error_message = "The runner_id_prefix must be 1-40 of A-Z a-z 0-9 . _ - (the runner id <prefix>-<suffix> is at most 64 characters)."
  }
}

variable "runner_id_suffix" {
  description = "Suffix of this runner's id (e.g. the instance index). Null: the VM's short host name, taken at boot — then the certificate must be issued at boot too (tls_fetch_command)."
  type        = string
  default     = null

  validation {
    condition     = var.runner_id_suffix == null || can(regex("^[A-Za-z0-9._-]{1,23}$", var.runner_id_suffix))
    error_message = "The runner_id_suffix must be 1-23 of A-Z a-z 0-9 . _ -, or null for the VM's host name."
  }
}

variable "edges" {
  description = "Internal mTLS URLs of the edges the runner registers with (each edge's internalPort), e.g. [\"https://edge-a.internal:8444\"]. Their certificates must name these hosts."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.edges) > 0
    error_message = "The edges list is empty: give at least one edge's internal URL (https://<host>:<internalPort>), or the runner registers nowhere and no edge sends it work."
  }
  validation {
    condition     = alltrue([for e in var.edges : can(regex("^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$|^https://\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?/?$", e))])
    error_message = "Each entry of edges must be an https:// URL of an edge's internal port, such as https://edge-a.internal:8444 or https://10.0.0.5:8444 (runners talk to edges only over mTLS; no path)."
  }
}

variable "allowed_edges" {
  description = "Edge ids allowed to call this runner: their certificates carry spiffe://mcp-gateway/edge/<id>."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.allowed_edges) > 0 && alltrue([for e in var.allowed_edges : can(regex("^[A-Za-z0-9._-]{1,64}$", e))])
    error_message = "The allowed_edges must list at least one edge id of 1-64 of A-Z a-z 0-9 . _ - (the <id> in the edges' spiffe://mcp-gateway/edge/<id>)."
  }
}

variable "allowed_monitors" {
  description = "Monitoring client ids (spiffe://mcp-gateway/monitor/<id>) allowed to GET /metrics and /health on the runner port."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for e in var.allowed_monitors : can(regex("^[A-Za-z0-9._-]{1,64}$", e))])
    error_message = "Each allowed_monitors entry must be 1-64 of A-Z a-z 0-9 . _ -."
  }
}

variable "port" {
  description = "TCP port of the runner's mTLS service (open it to the edges only)."
  type        = number
  default     = 9443
  nullable    = false

  validation {
    condition     = var.port >= 1 && var.port <= 65535 && floor(var.port) == var.port
    error_message = "The port must be an integer from 1 to 65535."
  }
}

variable "advertise_url" {
  description = "URL edges dial to reach this runner. Null: https://<the VM's primary IPv4 address>:<port>, found at boot."
  type        = string
  default     = null

  validation {
    condition     = var.advertise_url == null || can(regex("^https://[^\\s/'\"]+(:[0-9]{1,5})?/?$", var.advertise_url))
    error_message = "The advertise_url must be an https:// URL of this runner (no path), e.g. https://runner-1.internal:9443."
  }
}

# --- certificates ------------------------------------------------------------------------------

variable "tls_ca_pem" {
  description = "PEM CA bundle runners and edges chain to (the CA that issued the edges' and this runner's certificates)."
  type        = string
  nullable    = false

  validation {
    condition     = strcontains(var.tls_ca_pem, "-----BEGIN CERTIFICATE-----")
    error_message = "The tls_ca_pem must hold at least one PEM certificate (-----BEGIN CERTIFICATE-----): the CA certificate file, not its path."
  }
}

variable "tls_cert_pem" {
  description = "PEM certificate of this runner (URI SAN spiffe://mcp-gateway/runner/<id>), leaf first. With tls_key_pem, for trials: the key then travels in user-data. Production: null, and tls_fetch_command."
  type        = string
  default     = null

  validation {
    condition     = var.tls_cert_pem == null || strcontains(coalesce(var.tls_cert_pem, "-"), "-----BEGIN CERTIFICATE-----")
    error_message = "The tls_cert_pem must be a PEM certificate (-----BEGIN CERTIFICATE-----), or null when tls_fetch_command issues it at boot."
  }
}

variable "tls_key_pem" {
  description = "PEM private key of this runner (pairs with tls_cert_pem). It is written 0600 to /etc/mcp-gateway/pki/runner.key, but also sits in the instance's user-data: see docs/operations/runners-on-vms.md."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.tls_key_pem == null || can(regex("-----BEGIN ([A-Z]+ )?PRIVATE KEY-----", coalesce(var.tls_key_pem, "-")))
    error_message = "The tls_key_pem must be a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----), or null when tls_fetch_command issues it at boot."
  }
}

variable "tls_fetch_command" {
  description = <<-EOT
    Shell command the bootstrap runs as root on the VM to obtain this runner's key and certificate
    from your CA or secret store (step-ca, Vault PKI, a cloud secret manager). It runs with
    MCPG_RUNNER_ID, MCPG_TLS_DIR (/etc/mcp-gateway/pki) and MCPG_ADVERTISE_HOST set, and must
    write $MCPG_TLS_DIR/runner.crt and $MCPG_TLS_DIR/runner.key (the CA comes from tls_ca_pem).
    Put a renewal timer in it too, if your CA has one: the runner reloads rotated files itself.
  EOT
  type        = string
  default     = null
}

# --- limits, cgroups, sandbox ------------------------------------------------------------------

variable "limits" {
  description = "Runner-wide limits: tasks at once, memory of all tasks together (bytes, 0 = none), largest file through the file API (bytes), how long finished tasks stay attachable (ms) and how long running tasks may finish on stop (ms)."
  type = object({
    max_concurrent_tasks = optional(number, 32)
    tasks_memory_bytes   = optional(number, 0)
    max_file_bytes       = optional(number, 8388608)
    retention_ms         = optional(number, 900000)
    drain_timeout_ms     = optional(number, 10000)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.limits.max_concurrent_tasks >= 1 && floor(var.limits.max_concurrent_tasks) == var.limits.max_concurrent_tasks
    error_message = "The limits.max_concurrent_tasks must be a whole number of at least 1."
  }
  validation {
    condition     = var.limits.tasks_memory_bytes == 0 || var.limits.tasks_memory_bytes >= 67108864
    error_message = "The limits.tasks_memory_bytes is the memory of all tasks together in bytes: 0 for no runner-wide limit, or at least 67108864 (64 MiB). Did you give MiB instead of bytes?"
  }
  validation {
    condition     = var.limits.max_file_bytes >= 1 && var.limits.max_file_bytes <= 1073741824
    error_message = "The limits.max_file_bytes must be from 1 byte to 1 GiB (1073741824)."
  }
  validation {
    condition     = var.limits.retention_ms >= 1000 && var.limits.drain_timeout_ms >= 0 && var.limits.drain_timeout_ms <= 3600000
    error_message = "The limits.retention_ms must be at least 1000 and limits.drain_timeout_ms from 0 to 3600000 (both in milliseconds)."
  }
}

variable "cgroup_mode" {
  description = "Per-task cgroups: \"auto\" uses the cgroup systemd delegates to the service (Delegate=yes; cgroup v2, or the v1 memory and pids controllers), \"off\" never does (rlimits only)."
  type        = string
  default     = "auto"
  nullable    = false

  validation {
    condition     = contains(["auto", "off"], var.cgroup_mode)
    error_message = "The cgroup_mode must be \"auto\" or \"off\"."
  }
}

variable "require_cgroups" {
  description = "Refuse tasks unless per-task memory and pids cgroups are enforced (recommended on VMs: systemd delegates them)."
  type        = bool
  default     = true
  nullable    = false
}

variable "sandbox_uid" {
  description = "Host uid (and gid) sandboxed tasks run as; the runner itself runs as root to drop to it."
  type        = number
  default     = 65534
  nullable    = false

  validation {
    condition     = var.sandbox_uid >= 1 && var.sandbox_uid <= 4294967294 && floor(var.sandbox_uid) == var.sandbox_uid
    error_message = "The sandbox_uid must be a whole number from 1 to 4294967294; 0 (root) is refused."
  }
}

variable "extra_config" {
  description = "More runner configuration keys, merged last into runner.json (e.g. settings newer than this module). The runner validates them at start; `mcp-gateway runner --check` names unknown or invalid ones."
  type        = any
  default     = {}
  nullable    = false
}

variable "log_level" {
  description = "Runner log level (pino): fatal, error, warn, info, debug or trace."
  type        = string
  default     = "info"
  nullable    = false

  validation {
    condition     = contains(["fatal", "error", "warn", "info", "debug", "trace"], var.log_level)
    error_message = "The log_level must be one of fatal, error, warn, info, debug, trace."
  }
}

variable "otlp_traces_endpoint" {
  description = "OTLP/HTTP traces endpoint (e.g. http://otel-collector:4318/v1/traces); null exports no spans."
  type        = string
  default     = null
}

# --- the VM ------------------------------------------------------------------------------------

variable "install_packages" {
  description = "Let the bootstrap install bubblewrap, libseccomp, curl and ca-certificates (apt-get or dnf). False for images that already have them."
  type        = bool
  default     = true
  nullable    = false
}

variable "labels" {
  description = "Labels for the VM (instance metadata, tags); the module adds mcp-gateway-role and mcp-gateway-version. Also written to /etc/mcp-gateway/labels.json."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[A-Za-z0-9._/-]{1,63}$", k)) && length(v) <= 255])
    error_message = "Label keys must be 1-63 of A-Z a-z 0-9 . _ / - and values at most 255 characters."
  }
}
