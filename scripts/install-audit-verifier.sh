#!/usr/bin/env bash
# What the independent audit verifier (scripts/audit/verify_chain.py, run by
# test/integration/audit-verifier.test.ts) needs: python3 with the `cryptography`
# package (Ed25519 checkpoint signatures). Installs what is missing; fails loudly otherwise.
set -euo pipefail
if ! command -v python3 >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3 python3-cryptography >/dev/null
  else
    echo "python3 is required for the audit verifier test" >&2
    exit 1
  fi
fi
if ! python3 -c "import cryptography" 2>/dev/null; then
  if command -v apt-get >/dev/null && apt-get install -y -qq python3-cryptography >/dev/null 2>&1; then :
  else python3 -m pip install --quiet --user cryptography
  fi
fi
python3 -c "import cryptography" || { echo "python3 cannot import cryptography" >&2; exit 1; }
