#!/usr/bin/env bash
# Packs a staged arm64 release tree into release/ota-agent_<version>_arm64.deb with dpkg-deb.
# Usage: make-deb.sh TREE VERSION OUTDIR   (called by build-release.sh; TREE is the staged ota-agent/)
# The package installs the tree to /opt/ota-agent, the launchers as /usr/bin symlinks, and the
# systemd/sysusers/tmpfiles/polkit/D-Bus files where systemd, polkit and dbus look for them. It
# creates the ota-agent user and directories on install but does not enable or start the agent:
# that needs /etc/ota-agent/config.json, which only the device's owner can write.
set -euo pipefail
# shellcheck source=cross-build/lib.sh
. "$(dirname "$0")/lib.sh"
TREE=$1 VERSION=$2 OUT=$3

PKG="$CACHE/deb-root"
rm -rf "$PKG" && mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/lib/systemd/system" \
  "$PKG/usr/lib/sysusers.d" "$PKG/usr/lib/tmpfiles.d" "$PKG/usr/share/polkit-1/rules.d" \
  "$PKG/usr/share/dbus-1/system.d" "$PKG/usr/share/doc/ota-agent/examples"
cp -a "$TREE" "$PKG/opt/ota-agent"
ln -s ../../opt/ota-agent/bin/ota-agent "$PKG/usr/bin/ota-agent"
ln -s ../../opt/ota-agent/bin/ota-fleet "$PKG/usr/bin/ota-fleet"
install -m 0644 "$ROOT/systemd/ota-agent.service" "$ROOT/systemd/ota-agent-boot-check.service" "$PKG/lib/systemd/system/"
install -m 0644 "$ROOT/systemd/ota-agent.sysusers.conf" "$PKG/usr/lib/sysusers.d/ota-agent.conf"
install -m 0644 "$ROOT/systemd/ota-agent.tmpfiles.conf" "$PKG/usr/lib/tmpfiles.d/ota-agent.conf"
install -m 0644 "$ROOT/systemd/50-ota-agent.rules" "$PKG/usr/share/polkit-1/rules.d/50-ota-agent.rules"
# The vendor location of system-bus policy; dbus-daemon reads it like /etc/dbus-1/system.d.
install -m 0644 "$ROOT/rauc/dbus/ota-agent-rauc.conf" "$PKG/usr/share/dbus-1/system.d/ota-agent-rauc.conf"
install -m 0644 "$ROOT"/docs/*.md "$ROOT/README.md" "$PKG/usr/share/doc/ota-agent/"
install -m 0644 "$ROOT/docs/examples/config.json" "$PKG/usr/share/doc/ota-agent/examples/"
cat >"$PKG/usr/share/doc/ota-agent/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ota-agent

Files: *
License: Apache-2.0

Files: opt/ota-agent/bin/node
License: MIT (Node.js; the full text is /opt/ota-agent/bin/node.LICENSE)

Files: opt/ota-agent/app/node_modules/*
License: the license file in each package's folder
EOF

# Minimum versions of the shared libraries, read from the ELF files: the highest GLIBC_x.y symbol
# version any of them needs; libstdc++ from the cross g++ (Debian 12: gcc 12).
glibc=$(find "$PKG/opt" -type f \( -name node -o -name '*.node' \) -exec aarch64-linux-gnu-readelf -V {} + 2>/dev/null |
  grep -oE 'GLIBC_[0-9]+\.[0-9]+' | sed 's/GLIBC_//' | sort -uV | tail -n1)
[ -n "$glibc" ] || die "could not read the glibc version the binaries need"

cat >"$PKG/DEBIAN/control" <<EOF
Package: ota-agent
Version: $VERSION
Architecture: arm64
Maintainer: ota-agent maintainers <ota-agent@localhost>
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
Depends: dbus, libc6 (>= $glibc), libstdc++6 (>= 12), libgcc-s1, systemd
Recommends: rauc-service, polkitd
Suggests: ostree
Description: OTA update agent for A/B (RAUC) and OSTree devices
 Subscribes to signed MQTT update announcements, installs the new version
 into the inactive slot, reboots, health-checks the new boot and commits it,
 or reverts on its own. Ships its own Node.js 20 runtime in /opt/ota-agent.
 .
 The agent is not enabled on install: write /etc/ota-agent/config.json
 (example in /usr/share/doc/ota-agent/examples/), then
 systemctl enable --now ota-agent.service
EOF

cat >"$PKG/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# The user and directories; the units are made known but not enabled (no config yet).
set -e
if [ "$1" = configure ]; then
  systemd-sysusers ota-agent.conf
  systemd-tmpfiles --create ota-agent.conf
  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  if [ ! -e /etc/ota-agent/config.json ]; then
    echo "ota-agent: write /etc/ota-agent/config.json, then: systemctl enable --now ota-agent.service"
  fi
fi
exit 0
EOF
cat >"$PKG/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# Stop the agent before its files go; it finishes the step in progress on SIGTERM.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop ota-agent.service ota-agent-boot-check.service >/dev/null 2>&1 || true
  systemctl disable ota-agent.service ota-agent-boot-check.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat >"$PKG/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# The state (/var/lib/ota-agent) and config (/etc/ota-agent) are kept, even on purge: they say
# which update the device is in and hold its keys.
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
exit 0
EOF
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/prerm" "$PKG/DEBIAN/postrm"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)

# Stable times inside the package as in the tarball.
find "$PKG" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
DEB="$OUT/ota-agent_${VERSION}_arm64.deb"
log "building $(basename "$DEB")"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB.tmp" >/dev/null
mv "$DEB.tmp" "$DEB"
dpkg-deb -I "$DEB" >"$CACHE/deb-info.txt"
dpkg-deb -c "$DEB" >"$CACHE/deb-contents.txt"
grep -q '^ Architecture: arm64$' "$CACHE/deb-info.txt" || die "dpkg-deb -I: not Architecture: arm64"
for f in ./opt/ota-agent/bin/node ./opt/ota-agent/bin/ota-agent ./usr/bin/ota-agent ./usr/bin/ota-fleet \
  ./lib/systemd/system/ota-agent.service ./usr/lib/sysusers.d/ota-agent.conf ./usr/lib/tmpfiles.d/ota-agent.conf \
  ./usr/share/polkit-1/rules.d/50-ota-agent.rules ./opt/ota-agent/app/dist/cli/ota-agent.js ./opt/ota-agent/app/dist/bundle/ota-agent.mjs; do
  grep -q " $f\( ->\|$\)" "$CACHE/deb-contents.txt" || die "dpkg-deb -c: $f missing"
done
log "deb checked (dpkg-deb -I / -c: $CACHE/deb-info.txt, deb-contents.txt)"
