#!/usr/bin/env bash
# Runs a subset of the vitest suite with the arm64 Node under QEMU user emulation, on an x86_64
# Debian 12 machine as root. The subset covers every native or architecture-sensitive path:
#   SQLite (better-sqlite3 cross-compiled for aarch64): the store, kill -9 and resume
#   crypto: DSSE + Ed25519 signing and verification (incl. openssl interop), admission
#   D-Bus marshalling: dbus-next against a real dbus-daemon and a real (x86) `rauc service`
#   RAUC: the agent (an arm64 child process) installs bundles through the host's rauc service
#   MQTT: the whole update lifecycle against a real mosquitto
# The tests spawn the agent with process.execPath, which is the arm64 node here; binfmt_misc hands
# those children to qemu too. Usage: test-qemu-user.sh [vitest file ...] (default: the subset below).
set -euo pipefail
# shellcheck source=cross-build/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

# Whole files: pure JS and native paths that run in the test process itself.
FILES=(
  tests/unit/config-log-store.test.ts        # SQLite store: WAL, outbox, decisions
  tests/unit/dsse.test.ts                    # Ed25519 DSSE sign/verify, openssl interop
  tests/unit/admission.test.ts               # admission: signatures, replay, expiry, versions
  tests/integration/rauc-testbed.test.ts     # dbus-next <-> real dbus-daemon + rauc service
)
# End-to-end files, of which only the tests named by E2E_TESTS run: each starts the agent as arm64
# child processes (about 10x slower to start under emulation), so one case per path.
E2E_FILES=(
  tests/integration/lifecycle.e2e.test.ts    # MQTT 5 and 3.1.1 lifecycle against a real mosquitto
  tests/integration/crash-resume.e2e.test.ts # SQLite: kill -9 while installing, resume, nothing lost
  tests/integration/rauc.e2e.test.ts         # arm64 agent installs RAUC bundles over D-Bus
)
E2E_TESTS="lifecycle over MQTT [45] (a good update ends committed, and the device|a tampered announcement)"
E2E_TESTS+="|killed while 'installing'"
E2E_TESTS+="|RAUC backend installs a good bundle into the other slot|ota-agent install FILE: an offline RAUC bundle"
if (($#)); then FILES=("$@"); E2E_FILES=(); fi
# Deadlines inside the tests stretch by this factor (FleetWatcher.waitFor); vitest's own per-test
# and per-hook limits are raised on the command line.
export OTA_WAIT_SCALE=${OTA_WAIT_SCALE:-8}
LIMITS=(--testTimeout=600000 --hookTimeout=600000)

started=$(date +%s)
cross_tools
# The daemons the chosen tests start for real (the same list as scripts/install-and-test.sh).
apt_need mosquitto rauc rauc-service dbus squashfs-tools e2fsprogs openssl ca-certificates
arm64_node
[ -x node_modules/.bin/tsc ] || { log "npm ci (host tree, for tsc)"; npm ci --no-audit --no-fund; }

# 1. An arm64 node_modules with the dev dependencies (vitest and its arm64 rolldown/esbuild
#    bindings), the addons cross-compiled. Cached by the hash of the lockfile and node version.
key=$( (cat package-lock.json; node -p process.versions.node) | sha256sum | cut -c1-16)
DEV="$CACHE/dev-deps-$key"
if [ ! -f "$DEV/.complete" ]; then
  rm -rf "$DEV" && mkdir -p "$DEV"
  cp package.json package-lock.json "$DEV/"
  log "npm ci (with dev dependencies) for linux-arm64"
  (cd "$DEV" && npm ci --cpu=arm64 --os=linux --libc=glibc --ignore-scripts --no-audit --no-fund --loglevel=error)
  cross_rebuild_addons "$DEV/node_modules"
  touch "$DEV/.complete"
fi

# 2. A copy of the project whose node_modules is the arm64 tree (a copy, not symlinks: vite
#    resolves real paths, and from the real repo it would find the x86 node_modules). dist/ is
#    compiled fresh into it, since the tests run the agent from dist/.
WORK="$CACHE/qemu-tree"
rm -rf "$WORK" && mkdir -p "$WORK"
tar -C "$ROOT" --exclude=./node_modules --exclude=./.git --exclude=./.tmp --exclude=./dist --exclude=./release -cf - . |
  tar -C "$WORK" -xf -
ln -s "$DEV/node_modules" "$WORK/node_modules"
log "compiling TypeScript into the copy"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$WORK/dist"
# Anything that looks for `node` on PATH gets the arm64 one too.
mkdir -p "$WORK/.arm64-bin"
ln -s "$NODE_ARM64_DIR/bin/node" "$WORK/.arm64-bin/node"
export PATH="$WORK/.arm64-bin:$PATH"

# 3. The run. vitest's default fork pool works once binfmt is enabled (cross_tools does that).
cd "$WORK"
arch=$(node -p process.arch)
[ "$arch" = arm64 ] || die "node on PATH reports $arch, expected arm64"
log "vitest under qemu-user (arm64 node $(node -p process.version)), OTA_WAIT_SCALE=$OTA_WAIT_SCALE"
t0=$(date +%s)
rc=0
: >"$CACHE/test-qemu-user.log"
log "whole files:"; printf '  %s\n' "${FILES[@]}" >&2
node node_modules/vitest/vitest.mjs run "${LIMITS[@]}" "${FILES[@]}" 2>&1 | tee -a "$CACHE/test-qemu-user.log" || rc=1
if ((${#E2E_FILES[@]})); then
  log "end-to-end tests matching /$E2E_TESTS/ in:"; printf '  %s\n' "${E2E_FILES[@]}" >&2
  node node_modules/vitest/vitest.mjs run "${LIMITS[@]}" -t "$E2E_TESTS" "${E2E_FILES[@]}" 2>&1 | tee -a "$CACHE/test-qemu-user.log" || rc=1
fi
log "vitest under qemu-user: exit $rc after $(( $(date +%s) - t0 )) s (whole script $(( $(date +%s) - started )) s); log: ${CACHE#"$ROOT"/}/test-qemu-user.log"
exit "$rc"
