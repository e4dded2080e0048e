#!/usr/bin/env bash
# Creates a throw-away PKI for RAUC bundle signing in DIR (created if missing). FOR TESTS AND
# DEVELOPMENT ONLY: the keys are unencrypted and the CAs live ten years. A real device needs a
# properly kept production CA (see rauc/README.md).
#
#   make-test-pki.sh DIR
#
# Writes into DIR:
#   ca.pem / ca.key                         trusted test CA ("keyring" on the device)
#   signer.pem / signer.key                 signing certificate + key, issued by ca.pem
#   untrusted-ca.pem / untrusted-ca.key     a second CA the device does NOT trust
#   untrusted-signer.pem / untrusted-signer.key   signer issued by untrusted-ca.pem
# Existing files in DIR with these names are overwritten.
set -euo pipefail

usage() {
  echo "usage: $0 DIR" >&2
  exit 2
}
[[ $# -eq 1 && -n "$1" ]] || usage
dir="$1"

command -v openssl >/dev/null 2>&1 || {
  echo "openssl is not installed: apt-get install -y openssl" >&2
  exit 1
}

mkdir -p -- "$dir"
work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT

# Runs a command quietly; on failure shows its output.
quiet() {
  local out
  if ! out="$("$@" 2>&1)"; then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n' >"$work/leaf.ext"

# make_ca NAME CN
make_ca() {
  local name="$1" cn="$2"
  quiet openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -keyout "$dir/$name.key" -out "$dir/$name.pem" -subj "/CN=$cn" \
    -addext 'basicConstraints=critical,CA:TRUE' \
    -addext 'keyUsage=critical,keyCertSign,cRLSign'
}

# make_leaf NAME CN CA_NAME
make_leaf() {
  local name="$1" cn="$2" ca="$3"
  quiet openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$dir/$name.key" \
    -out "$work/$name.csr" -subj "/CN=$cn"
  quiet openssl x509 -req -sha256 -days 3650 -in "$work/$name.csr" \
    -CA "$dir/$ca.pem" -CAkey "$dir/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$work/leaf.ext" -out "$dir/$name.pem"
}

make_ca ca 'ota-agent test CA'
make_leaf signer 'ota-agent test signer' ca
make_ca untrusted-ca 'ota-agent UNTRUSTED test CA'
make_leaf untrusted-signer 'ota-agent untrusted test signer' untrusted-ca
chmod 600 -- "$dir/ca.key" "$dir/signer.key" "$dir/untrusted-ca.key" "$dir/untrusted-signer.key"

# Self-check: the signer chains to its CA and not to the other one.
quiet openssl verify -CAfile "$dir/ca.pem" "$dir/signer.pem"
quiet openssl verify -CAfile "$dir/untrusted-ca.pem" "$dir/untrusted-signer.pem"
if openssl verify -CAfile "$dir/ca.pem" "$dir/untrusted-signer.pem" >/dev/null 2>&1; then
  echo "internal error: untrusted signer verifies against the trusted CA" >&2
  exit 1
fi
echo "$dir"
