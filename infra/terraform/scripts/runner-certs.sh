#!/usr/bin/env bash
# Runner certificates for trials, from a small file-based CA (openssl), in the shape the gateway
# checks: ECDSA P-256, URI SAN spiffe://mcp-gateway/runner/<id> (edges: .../edge/<id>), the
# host names/addresses peers dial as DNS/IP SANs, serverAuth + clientAuth, short-lived.
# Production uses step-ca or Vault PKI instead (docs/operations/runners-on-vms.md, Certificates).
#
#   runner-certs.sh init <dir>                                  create the CA (ca.crt, ca.key 0600)
#   runner-certs.sh issue <dir> runner|edge <id> <host>... [--days N]
#                                                               <dir>/<kind>-<id>.crt and .key (0600)
#   runner-certs.sh tfvars <dir> <prefix> <ip>...               runner_certificates + runner_fixed_ips
#                                                               as JSON for examples/openstack (-var-file)
#   runner-certs.sh revoke <dir> <kind>-<id>                    add to the CA's CRL (ca.crl) and move the
#                                                               files aside: see the guide for what this does
#                                                               and does not stop
set -euo pipefail
die() { echo "runner-certs: $*" >&2; exit 1; }
command -v openssl >/dev/null || die "openssl is required"
ID_RE='^[A-Za-z0-9._-]{1,64}$'

ca_conf() {
  local dir="$1"
  cat <<EOF
[ca]
default_ca = local
[local]
dir = $dir
database = \$dir/index.txt
new_certs_dir = \$dir/issued
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_crl_days = 7
policy = any
copy_extensions = none
[any]
commonName = supplied
EOF
}

cmd="${1:-}"
shift || true
case "$cmd" in
  init)
    dir="${1:?usage: init <dir>}"
    [[ -e "$dir/ca.key" ]] && die "$dir/ca.key exists"
    mkdir -p "$dir/issued" && chmod 700 "$dir"
    : >"$dir/index.txt"
    echo 1000 >"$dir/crlnumber"
    openssl rand -hex 16 >"$dir/serial"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key")
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 365 -subj "/O=mcp-gateway/CN=mcp-gateway runner CA $(date +%F)" \
      -addext "basicConstraints=critical,CA:true,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$dir/ca.crt" 2>/dev/null
    echo "CA: $dir/ca.crt (give it to every edge and runner as the CA bundle; keep ca.key offline)"
    ;;
  issue)
    dir="${1:?usage: issue <dir> runner|edge <id> <host>...}" kind="${2:?kind}" id="${3:?id}"
    shift 3
    days=30
    hosts=()
    while (($#)); do
      case "$1" in --days) days="$2"; shift 2 ;; *) hosts+=("$1"); shift ;; esac
    done
    [[ "$kind" == runner || "$kind" == edge ]] || die "kind must be runner or edge"
    [[ "$id" =~ $ID_RE ]] || die "id must be 1-64 of A-Z a-z 0-9 . _ -"
    ((${#hosts[@]})) || die "name at least one host or address the peers dial (the edge checks it)"
    san="URI:spiffe://mcp-gateway/$kind/$id"
    for h in "${hosts[@]}"; do
      if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
    done
    base="$dir/$kind-$id"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$base.key.new")
    openssl req -new -key "$base.key.new" -subj "/O=mcp-gateway/CN=$kind $id" -out "$base.csr" 2>/dev/null
    openssl ca -batch -config <(ca_conf "$dir") -cert "$dir/ca.crt" -keyfile "$dir/ca.key" -in "$base.csr" \
      -days "$days" -notext -out "$base.crt.new" \
      -extfile <(printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san") 2>/dev/null
    # Key first, then the certificate: a runner watching the files never pairs a new cert with an old key.
    mv "$base.key.new" "$base.key" && mv "$base.crt.new" "$base.crt" && rm -f "$base.csr"
    echo "$base.crt ($san, $days days)"
    ;;
  tfvars)
    dir="${1:?usage: tfvars <dir> <prefix> <ip>...}" prefix="${2:?prefix}"
    shift 2
    ((${#})) || die "give one fixed IP per runner"
    node -e '
      const fs = require("node:fs");
      const [dir, prefix, ...ips] = process.argv.slice(1);
      const certs = ips.map((_, i) => ({
        cert_pem: fs.readFileSync(`${dir}/runner-${prefix}-${i + 1}.crt`, "utf8"),
        key_pem: fs.readFileSync(`${dir}/runner-${prefix}-${i + 1}.key`, "utf8"),
      }));
      process.stdout.write(JSON.stringify({ tls_ca_pem: fs.readFileSync(`${dir}/ca.crt`, "utf8"), runner_certificates: certs, runner_fixed_ips: ips }, null, 2) + "\n");
    ' -- "$dir" "$prefix" "$@"
    ;;
  revoke)
    dir="${1:?usage: revoke <dir> <kind>-<id>}" name="${2:?name}"
    [[ -f "$dir/$name.crt" ]] || die "$dir/$name.crt not found"
    openssl ca -config <(ca_conf "$dir") -cert "$dir/ca.crt" -keyfile "$dir/ca.key" -revoke "$dir/$name.crt" 2>/dev/null
    openssl ca -config <(ca_conf "$dir") -cert "$dir/ca.crt" -keyfile "$dir/ca.key" -gencrl -out "$dir/ca.crl" 2>/dev/null
    mkdir -p "$dir/revoked" && mv "$dir/$name.crt" "$dir/$name.key" "$dir/revoked/" 2>/dev/null || true
    echo "revoked $name: listed in $dir/ca.crl. The gateway does not read CRLs: remove the VM and let the certificate expire (see the guide)."
    ;;
  *)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
