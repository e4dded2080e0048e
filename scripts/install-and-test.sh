#!/usr/bin/env bash
# The one command that installs everything this project needs on a fresh Debian 12 machine with
# Node 20 (run as root) and runs the whole test suite: lint, typecheck, build, unit and end-to-end
# tests against real daemons started by the tests. .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests start for real (never mocked): mosquitto for MQTT; rauc + dbus for a
# real `rauc service` on a private bus (squashfs-tools builds bundles, e2fsprogs makes and reads the
# slot images); openssl for the test PKI and the signing interop tests. RAUC loop-mounts bundles,
# so the suite runs as root.
APT_PACKAGES=(mosquitto mosquitto-clients rauc rauc-service dbus squashfs-tools e2fsprogs openssl ca-certificates ostree gir1.2-ostree-1.0 python3-gi gnupg)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("Node >= 20.19 required, found "+process.versions.node); process.exit(1) }'
npm ci --no-audit --no-fund
npm test
