#!/usr/bin/env bash
# Builds the arm64 (aarch64) release of ota-agent on an x86_64 Debian 12 machine, as root:
#   release/ota-agent-<version>-linux-arm64.tar.gz (+ .sha256)   a self-contained tree with its own Node
#   release/ota-agent_<version>_arm64.deb                          the same tree in /opt/ota-agent
# and checks both: every ELF file is aarch64, and the release starts under qemu-user and prints its
# version. Idempotent; downloads and the arm64 dependency tree are cached under .tmp/cross/.
# Layout and figures: cross-build/README.md.
set -euo pipefail
# shellcheck source=cross-build/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

started=$(date +%s)
VERSION=$(node -p "require('./package.json').version")
OUT="$ROOT/release"
STAGE="$CACHE/stage"
TREE="$STAGE/ota-agent"
APP="$TREE/app"
# Reproducible archives: every file gets the time of the last commit.
SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

cross_tools
arm64_node
log "ota-agent $VERSION for linux-arm64 with node $(node -p process.versions.node)"

# 1. The JavaScript: compiled on the host (tsc output is architecture-independent) into the staging
#    tree, so the repository's own dist/ is left to whoever is using it.
[ -x node_modules/.bin/tsc ] || { log "npm ci (host tree, for tsc)"; npm ci --no-audit --no-fund; }
rm -rf "$STAGE" && mkdir -p "$APP" "$TREE/bin"
log "compiling TypeScript"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$APP/dist"
# The launchers run the single-file bundles (scripts/bundle.mjs): fewer files to load starts the
# agent faster and idles it smaller, which matters most on a slow device (docs/performance.md).
node scripts/bundle.mjs "$APP/dist/bundle"
cp package.json "$APP/"
cp -r schemas "$APP/"
cp -r systemd rauc "$TREE/"

# 2. Production dependencies for linux-arm64: npm picks the arm64 variants of optional packages,
#    install scripts are skipped (they would build for x86) and the native addons are cross-compiled.
#    Cached by the hash of the lockfile and the node version.
key=$( (cat package-lock.json; node -p process.versions.node) | sha256sum | cut -c1-16)
DEPS="$CACHE/prod-deps-$key"
if [ ! -f "$DEPS/.complete" ]; then
  rm -rf "$DEPS" && mkdir -p "$DEPS"
  cp package.json package-lock.json "$DEPS/"
  log "npm ci --omit=dev for linux-arm64"
  (cd "$DEPS" && npm ci --omit=dev --cpu=arm64 --os=linux --libc=glibc --ignore-scripts --no-audit --no-fund --loglevel=error)
  cross_rebuild_addons "$DEPS/node_modules"
  touch "$DEPS/.complete"
fi
cp -a "$DEPS/node_modules" "$APP/"
# The addons' sources and object files are not needed at run time (better-sqlite3: 27 -> 2 MB).
nm="$APP/node_modules"
if [ -d "$nm/better-sqlite3" ]; then
  find "$nm/better-sqlite3/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
  find "$nm/better-sqlite3/build/Release" -mindepth 1 -maxdepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
  rm -rf "$nm/better-sqlite3/deps" "$nm/better-sqlite3/src"
fi
if [ -d "$nm/usocket/build" ]; then
  find "$nm/usocket/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
  find "$nm/usocket/build/Release" -mindepth 1 -maxdepth 1 ! -name uwrap.node -exec rm -rf {} +
  rm -rf "$nm/usocket/src"
fi
find "$nm" -name '*.node' -exec aarch64-linux-gnu-strip --strip-unneeded {} +

# 3. The arm64 node (stripped: 99 -> 85 MB; the dynamic symbols the addons link against stay) and
#    the two launchers. readlink -f lets /usr/bin symlinks point at them.
cp "$NODE_ARM64_DIR/bin/node" "$TREE/bin/node"
aarch64-linux-gnu-strip --strip-all "$TREE/bin/node"
cp "$NODE_ARM64_DIR/LICENSE" "$TREE/bin/node.LICENSE"
for cli in ota-agent ota-fleet; do
  cat >"$TREE/bin/$cli" <<EOF
#!/bin/sh
# $cli launcher: runs the agent's JavaScript with the Node bundled next to this file, so the device
# needs no Node of its own.
here=\$(dirname "\$(readlink -f "\$0")")
exec "\$here/node" "\$here/../app/dist/bundle/$cli.mjs" "\$@"
EOF
  chmod 0755 "$TREE/bin/$cli"
done

# 4. Checks on the tree before packing: all native code is aarch64, and it runs (under qemu-user).
log "checking ELF files"
check_elf_arm64 "$TREE"
t0=$(date +%s%N)
got=$("$TREE/bin/ota-agent" --version)
t1=$(date +%s%N)
[ "$got" = "$VERSION" ] || die "bin/ota-agent --version printed '$got', expected '$VERSION'"
log "bin/ota-agent --version under qemu-user: $got ($(( (t1 - t0) / 1000000 )) ms)"
got=$("$TREE/bin/ota-fleet" --version)
[ "$got" = "$VERSION" ] || die "bin/ota-fleet --version printed '$got', expected '$VERSION'"
# The native and crypto paths once, through the release's own node_modules: an Ed25519 key pair,
# and a WAL SQLite database written and read back.
smoke=$(mktemp -d)
"$TREE/bin/ota-fleet" keygen -o "$smoke/keys" >/dev/null
[ -s "$smoke/keys/fleet.pub" ] || die "ota-fleet keygen under qemu-user wrote no fleet.pub"
"$TREE/bin/node" -e '
  const Database = require(process.argv[1] + "/node_modules/better-sqlite3");
  const db = new Database(process.argv[2] + "/t.db");
  db.pragma("journal_mode = WAL");
  db.exec("create table t (v text)");
  db.prepare("insert into t values (?)").run(process.arch);
  const row = db.prepare("select v from t").get();
  if (row.v !== "arm64") { console.error("sqlite read back", row); process.exit(1); }
  console.log("sqlite " + db.prepare("select sqlite_version() v").get().v + " ok on " + row.v);
' "$APP" "$smoke" >&2
rm -rf "$smoke"

# 5. The tarball: extracts to ota-agent/, owned by root, stable order and times.
mkdir -p "$OUT"
TARBALL="ota-agent-$VERSION-linux-arm64.tar.gz"
log "packing $TARBALL"
tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -cf - ota-agent |
  gzip -n -9 >"$OUT/$TARBALL.tmp"
mv "$OUT/$TARBALL.tmp" "$OUT/$TARBALL"
(cd "$OUT" && sha256sum "$TARBALL" >"$TARBALL.sha256")

# 6. The Debian package.
bash "$ROOT/cross-build/make-deb.sh" "$TREE" "$VERSION" "$OUT"

log "done in $(( $(date +%s) - started )) s:"
ls -l "$OUT" >&2
