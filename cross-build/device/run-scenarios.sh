#!/usr/bin/env bash
# Builds (or reuses) the emulated arm64 device and runs its end-to-end scenarios:
#
#   cross-build/device/run-scenarios.sh [--agent FILE.deb|FILE.tar.gz]
#
# 1. cross-build/device/build-image.sh (cached in .tmp/device; --agent is passed on)
# 2. npm run build, if dist/ is missing (the scenarios publish with dist/cli/ota-fleet.js)
# 3. vitest with tests/device/vitest.config.ts: scenario 1 (committed) and 2 (reverted) on one
#    device, 4 boots of qemu-system-aarch64, each wrapped in `timeout`.
# Timings: printed by both steps; the scenario's also in .tmp/device/run/timings.txt, the serial
# console of every boot in .tmp/device/run/boot-N-<slot>.log. Needs root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

t0=$(date +%s)
env_file="$(bash "$here/build-image.sh" "$@" | tail -1)"
t1=$(date +%s)
echo "[device timing] image build/check: $((t1 - t0)) s" >&2
[[ -f dist/cli/ota-fleet.js ]] || npm run build --silent
OTA_DEVICE_ENV="$env_file" npx vitest run --config tests/device/vitest.config.ts
echo "[device timing] scenarios: $(($(date +%s) - t1)) s, total $(($(date +%s) - t0)) s" >&2
