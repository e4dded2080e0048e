#!/usr/bin/env bash
# Builds the emulated arm64 device for the end-to-end scenarios (issue #9): a Debian 12 arm64 root
# filesystem with systemd, D-Bus, RAUC and the ota-agent release installed as a real systemd
# service; an arm64 kernel with a small busybox initramfs; two ext4 slot disks. The device runs in
# qemu-system-aarch64 (cross-build/device/run-scenarios.sh). See cross-build/device/README.md.
#
#   cross-build/device/build-image.sh [--agent FILE.deb|FILE.tar.gz] [--out DIR]
#
#   --agent  the arm64 release to install (default: the newest release/ota-agent_*_arm64.deb, else
#            release/ota-agent-*-linux-arm64.tar.gz; produced by cross-build/build-release.sh)
#   --out    cache and output directory (default: .tmp/device in the repository)
#
# Every stage is cached in --out with a stamp of its inputs, so a re-run with nothing changed takes
# a second; a changed release rebuilds only the last stage (about 20 s). Needs root (mmdebstrap
# --mode=root, chroot). Prints the path of device.env, which the scenario runner reads.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/.tmp/device"
agent_pkg=''

usage() {
  sed -n '7,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  [[ $# -gt 0 ]] && echo "error: $*" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --agent) [[ $# -ge 2 ]] || usage "--agent needs a file"; agent_pkg="$2"; shift 2 ;;
    --out) [[ $# -ge 2 ]] || usage "--out needs a directory"; out="$2"; shift 2 ;;
    -h | --help) usage ;;
    *) usage "unknown argument: $1" ;;
  esac
done
[[ "$(id -u)" == 0 ]] || { echo "build-image.sh must run as root (mmdebstrap --mode=root, chroot)" >&2; exit 1; }

t0=$(date +%s)
log() { printf '[build-image %3ss] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
die() { echo "build-image.sh: $*" >&2; exit 1; }
# stamp_of FILE... : one hash over the contents of the given inputs (files or literal strings)
stamp_of() { { for x in "$@"; do if [[ -f "$x" ]]; then sha256sum <"$x"; else printf '%s\n' "$x"; fi; done; } | sha256sum | cut -c1-64; }

# The Debian release, suite and packages of the device. Changing any of them rebuilds the base.
SUITE=bookworm
# (ca-certificates' trigger, a shell loop over every certificate, is the slowest single step under
# qemu-user; a build without it was not verified here, so it stays.)
BASE_PACKAGES=systemd-sysv,udev,dbus,kmod,iproute2,ca-certificates,rauc,rauc-service,polkitd,procps,e2fsprogs,netbase
# Kernel modules the initramfs loads (with their dependencies): disks, root filesystem, network,
# the 9p host share, and what RAUC needs for plain bundles (loop + squashfs).
MODULES="virtio_pci virtio_blk crc32c_generic ext4 virtio_net 9pnet_virtio 9p squashfs loop virtio-rng"
COMPATIBLE=ota-vm-arm64

# ---- 1. host packages ---------------------------------------------------------------------------
host_packages() {
  local need=()
  command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
  command -v qemu-img >/dev/null || need+=(qemu-utils)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  command -v arch-test >/dev/null || need+=(arch-test)
  command -v cpio >/dev/null || need+=(cpio)
  command -v depmod >/dev/null || need+=(kmod)
  command -v socat >/dev/null || need+=(socat)
  command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
  command -v rauc >/dev/null || need+=(rauc)
  command -v mksquashfs >/dev/null || need+=(squashfs-tools)
  command -v openssl >/dev/null || need+=(openssl)
  command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || need+=(mosquitto)
  # mmdebstrap runs the arm64 maintainer scripts through qemu-user + binfmt_misc.
  [[ -x /usr/bin/qemu-aarch64-static ]] || need+=(qemu-user-static)
  command -v update-binfmts >/dev/null || need+=(binfmt-support)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    need+=(__update)
  fi
  if [[ ${#need[@]} -gt 0 ]]; then
    log "apt: installing ${need[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    local pk=()
    for p in "${need[@]}"; do [[ "$p" == __update ]] || pk+=("$p"); done
    [[ ${#pk[@]} -eq 0 ]] || apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${pk[@]}" >/dev/null
  fi
  [[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || die "binfmt_misc has no qemu-aarch64 entry (qemu-user-static, binfmt-support)"
}

# ---- 2. kernel + initramfs ----------------------------------------------------------------------
kernel_and_initramfs() {
  local kdir="$out/kernel" dl="$out/dl"
  mkdir -p "$kdir" "$dl"
  local kpkg
  # linux-image-arm64 depends on the current ABI package, e.g. linux-image-6.1.0-56-arm64.
  kpkg="$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -1)"
  [[ -n "$kpkg" ]] || { apt-get -o DPkg::Lock::Timeout=600 update -qq; kpkg="$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -1)"; }
  [[ -n "$kpkg" ]] || die "cannot resolve the arm64 kernel package (apt-cache depends linux-image-arm64:arm64)"
  local stamp
  stamp="$(stamp_of "$kpkg" "$MODULES" "$(sed -n '/^# ---- 2\./,/^# ---- 3\./p' "$0")")"
  if [[ -f "$kdir/stamp" && "$(cat "$kdir/stamp")" == "$stamp" && -f "$kdir/vmlinuz" && -f "$kdir/initrd.gz" ]]; then
    log "kernel: cached ($kpkg)"
    return
  fi
  log "kernel: $kpkg + busybox initramfs"
  (cd "$dl" && rm -f linux-image-*.deb busybox-static_*.deb && apt-get download "$kpkg:arm64" busybox-static:arm64 >/dev/null 2>&1) ||
    die "apt-get download $kpkg:arm64 busybox-static:arm64 failed"
  rm -rf "$dl/k" "$dl/bb" "$kdir/initrd"
  mkdir -p "$dl/k" "$dl/bb"
  dpkg-deb -x "$dl"/linux-image-*.deb "$dl/k"
  dpkg-deb -x "$dl"/busybox-static_*.deb "$dl/bb"
  local kver
  kver="$(ls "$dl/k/lib/modules")"
  depmod -b "$dl/k" "$kver"
  cp "$dl/k/boot/vmlinuz-$kver" "$kdir/vmlinuz"

  # Modules in load order: dependencies first (modules.dep lists them per module).
  local mdir="$dl/k/lib/modules/$kver" ordered=() seen=' '
  add_mod() { # add_mod RELPATH
    [[ "$seen" == *" $1 "* ]] && return
    local deps
    deps="$(grep -m1 "^$1:" "$mdir/modules.dep" | cut -d: -f2)"
    for d in $deps; do add_mod "$d"; done
    seen+="$1 "
    ordered+=("$1")
  }
  for m in $MODULES; do
    local rel
    rel="$(grep -m1 -E "/$m\.ko(\.xz|\.zst)?:" "$mdir/modules.dep" | cut -d: -f1)"
    [[ -n "$rel" ]] || die "kernel module $m not found in $kpkg"
    add_mod "$rel"
  done
  local ird="$kdir/initrd"
  mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
  cp "$dl/bb/bin/busybox" "$ird/bin/busybox"
  for sh in sh mount umount switch_root insmod sleep cat mkdir grep; do ln -s busybox "$ird/bin/$sh"; done
  local list=''
  for rel in "${ordered[@]}"; do
    cp "$mdir/$rel" "$ird/modules/"
    list+="$(basename "$rel") "
  done
  cat >"$ird/init" <<INIT
#!/bin/sh
# initramfs of the emulated device: load the virtio/ext4/9p/loop/squashfs modules (the Debian kernel
# has them as modules; they stay loaded after switch_root), mount /dev/vda, hand over to systemd.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $list; do insmod /modules/\$m || echo "initramfs: insmod \$m failed"; done
i=0
while [ ! -b /dev/vda ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; exec sh; }
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
INIT
  chmod 755 "$ird/init"
  (cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1 >"$kdir/initrd.gz")
  echo "$kver" >"$kdir/version"
  echo "$stamp" >"$kdir/stamp"
}

# ---- 3. base root filesystem (mmdebstrap) -------------------------------------------------------
base_rootfs() {
  local stamp
  stamp="$(stamp_of "$SUITE" "$BASE_PACKAGES")"
  if [[ -f "$out/base.stamp" && "$(cat "$out/base.stamp")" == "$stamp" && -x "$out/base/sbin/init" ]]; then
    log "base rootfs: cached"
    return
  fi
  log "base rootfs: mmdebstrap $SUITE arm64 (about 2 min)"
  rm -rf "$out/base" "$out/base.tmp" "$out/base.stamp"
  mmdebstrap --arch=arm64 --variant=minbase --include="$BASE_PACKAGES" --mode=root --format=directory \
    "$SUITE" "$out/base.tmp" >"$out/mmdebstrap.log" 2>&1 || { tail -20 "$out/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $out/mmdebstrap.log)"; }
  mv "$out/base.tmp" "$out/base"
  echo "$stamp" >"$out/base.stamp"
}

# ---- 4. keys: the fleet's signing key (announcements) and the RAUC test PKI (bundles) ------------
keys() {
  local k="$out/keys"
  mkdir -p "$k"
  if [[ ! -f "$k/fleet.key" || ! -f "$k/fleet.pub" ]]; then
    [[ -f "$repo/dist/cli/ota-fleet.js" ]] || (cd "$repo" && npm run build --silent) || die "npm run build failed"
    node "$repo/dist/cli/ota-fleet.js" keygen -o "$k" >/dev/null
  fi
  if [[ ! -f "$k/pki/ca.pem" || ! -f "$k/pki/signer.key" ]]; then
    "$repo/rauc/scripts/make-test-pki.sh" "$k/pki" >/dev/null
  fi
}

# ---- 5. the agent: one function, pointed at the release .deb or tarball --------------------------
find_release() {
  [[ -n "$agent_pkg" ]] && return
  agent_pkg="$(ls -t "$repo"/release/ota-agent_*_arm64.deb 2>/dev/null | head -1 || true)"
  [[ -n "$agent_pkg" ]] || agent_pkg="$(ls -t "$repo"/release/ota-agent-*-linux-arm64.tar.gz 2>/dev/null | head -1 || true)"
  [[ -n "$agent_pkg" ]] || die "no arm64 release in $repo/release (run cross-build/build-release.sh, or pass --agent FILE)"
}

# install_agent ROOT PKG: installs the release into the root filesystem ROOT, the way a device
# would get it: the .deb through dpkg (its maintainer scripts run under qemu-user), the tarball to
# /opt/ota-agent with the units from its systemd/ folder. Either way the result is checked.
install_agent() {
  local root="$1" pkg="$2"
  case "$pkg" in
    *.deb)
      cp "$pkg" "$root/tmp/ota-agent.deb"
      # Like on a running device (and in mmdebstrap's chroots): the maintainer scripts get /proc.
      mount -t proc proc "$root/proc"
      local rc=0
      chroot "$root" dpkg -i /tmp/ota-agent.deb >"$out/dpkg-agent.log" 2>&1 || rc=$?
      umount "$root/proc"
      [[ $rc == 0 ]] || { cat "$out/dpkg-agent.log" >&2; die "dpkg -i $pkg failed in the image"; }
      rm -f "$root/tmp/ota-agent.deb"
      ;;
    *.tar.gz)
      rm -rf "$root/opt/ota-agent"
      mkdir -p "$root/opt"
      tar -C "$root/opt" -xzf "$pkg"
      [[ -x "$root/opt/ota-agent/bin/ota-agent" ]] || die "$pkg has no ota-agent/bin/ota-agent"
      printf '#!/bin/sh\nexec /opt/ota-agent/bin/ota-agent "$@"\n' >"$root/usr/bin/ota-agent"
      chmod 755 "$root/usr/bin/ota-agent"
      local s="$root/opt/ota-agent/systemd"
      install -m 0644 "$s/ota-agent.service" "$s/ota-agent-boot-check.service" "$root/usr/lib/systemd/system/"
      install -D -m 0644 "$s/ota-agent.sysusers.conf" "$root/usr/lib/sysusers.d/ota-agent.conf"
      install -D -m 0644 "$s/ota-agent.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/ota-agent.conf"
      install -D -m 0644 "$s/50-ota-agent.rules" "$root/usr/share/polkit-1/rules.d/50-ota-agent.rules"
      install -D -m 0644 "$root/opt/ota-agent/rauc/dbus/ota-agent-rauc.conf" "$root/etc/dbus-1/system.d/ota-agent-rauc.conf"
      chroot "$root" systemd-sysusers >/dev/null
      ;;
    *) die "--agent must be a .deb or a .tar.gz: $pkg" ;;
  esac
  [[ -x "$root/usr/bin/ota-agent" ]] || die "the release did not install /usr/bin/ota-agent"
  grep -q '^ota-agent:' "$root/etc/passwd" || die "the release did not create the ota-agent user"
  local unit
  unit="$(ls "$root"/usr/lib/systemd/system/ota-agent.service "$root"/lib/systemd/system/ota-agent.service 2>/dev/null | head -1)"
  [[ -n "$unit" ]] || die "the release did not install ota-agent.service"
  [[ -f "$root/usr/share/polkit-1/rules.d/50-ota-agent.rules" ]] || die "the release did not install the polkit rule (the agent could not reboot)"
  # The arm64 binary really runs (under qemu-user here): node, the app and its native modules load.
  local v
  v="$(chroot "$root" /usr/bin/ota-agent --version 2>&1)" || die "/usr/bin/ota-agent --version failed in the image: $v"
  log "agent: $(basename "$pkg") installed, ota-agent --version: $v"
}

# ---- 6. device configuration (RAUC, simulated bootloader hooks, network, agent config) ----------
configure_device() {
  local r="$1" lx="$1/usr/libexec/ota-vm"
  mkdir -p "$lx" "$r/etc/rauc" "$r/mnt/host" "$r/run" "$r/etc/systemd/network" "$r/etc/systemd/system/rauc.service.d"
  echo ota-vm >"$r/etc/hostname"
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$r/etc/machine-id"; echo >>"$r/etc/machine-id"
  printf '10.0.2.100 fleet-host\n' >>"$r/etc/hosts"

  # RAUC: two ext4 rootfs slots on the second and third virtio disk; the bootloader is the custom
  # backend below, whose state lives on the host share, where the simulated bootloader reads it.
  install -m 0644 "$out/keys/pki/ca.pem" "$r/etc/rauc/ca.pem"
  cat >"$r/etc/rauc/system.conf" <<CONF
# Emulated device (cross-build/device/build-image.sh). Slots are the 2nd and 3rd virtio disks; the
# bootloader is simulated by the host test, through the custom backend and the 9p share.
[system]
compatible=$COMPATIBLE
bootloader=custom
data-directory=/var/lib/rauc
# plain bundles are what the project's scripts build; verity would need dm-verity loaded.
bundle-formats=plain verity
max-bundle-download-size=268435456

[handlers]
bootloader-custom-backend=/usr/libexec/ota-vm/bootloader-backend

[keyring]
path=/etc/rauc/ca.pem

[slot.rootfs.0]
device=/dev/vdb
type=ext4
bootname=A

[slot.rootfs.1]
device=/dev/vdc
type=ext4
bootname=B
CONF
  mkdir -p "$r/var/lib/rauc"
  cat >"$lx/bootloader-backend" <<'SH'
#!/bin/sh
# RAUC custom bootloader backend of the emulated device. The "bootloader environment" is a set of
# files on the host share (/mnt/host/boot): primary, state.A, state.B. The host test is the
# bootloader: at every power-on it boots the primary slot if its state is good, else the other
# slot, with rauc.slot=<slot> on the kernel command line. Every call is logged to calls.log.
# Called as: get-primary | set-primary <bootname> | get-state <bootname> | set-state <bootname> good|bad
set -eu
B=/mnt/host/boot
[ -d "$B" ] || { echo "backend: $B is missing (host share not mounted)" >&2; exit 1; }
printf '%s\n' "$*" >>"$B/calls.log"
put() { printf '%s\n' "$2" >"$B/$1.tmp" && mv -f "$B/$1.tmp" "$B/$1" && sync; }
slot() { case "${1:-}" in A|B) ;; *) echo "backend: unknown bootname '${1:-}'" >&2; exit 1 ;; esac; }
case "${1:-}" in
  get-primary) cat "$B/primary" ;;
  # RAUC marks the target bad before writing it and afterwards only calls set-primary: a new
  # primary is a slot to try, i.e. good (U-Boot's BOOT_x_LEFT reset / GRUB's x_OK=1).
  set-primary) slot "${2:-}"; put primary "$2"; put "state.$2" good ;;
  get-state) slot "${2:-}"; cat "$B/state.$2" ;;
  set-state)
    slot "${2:-}"
    case "${3:-}" in good|bad) put "state.$2" "$3" ;; *) echo "backend: bad state '${3:-}'" >&2; exit 1 ;; esac ;;
  *) echo "backend: unsupported call: $*" >&2; exit 1 ;;
esac
SH
  chmod 755 "$lx/bootloader-backend"

  # The host share: the bootloader state above, and per-boot diagnostics.
  cat >"$r/etc/systemd/system/mnt-host.mount" <<'UNIT'
[Unit]
Description=Host share (simulated bootloader state)
DefaultDependencies=no
After=systemd-remount-fs.service
Before=local-fs.target umount.target
Conflicts=umount.target

[Mount]
What=hostshare
Where=/mnt/host
Type=9p
Options=trans=virtio,version=9p2000.L,msize=262144

[Install]
RequiredBy=local-fs.target
UNIT
  printf '[Unit]\nRequiresMountsFor=/mnt/host\n' >"$r/etc/systemd/system/rauc.service.d/host-share.conf"

  # The booted slot, mounted read-only at /run/ota-slot: the "running system" of this device. Its
  # /etc/os-release tells the version, its /health file is what the health check reads.
  cat >"$lx/mount-booted-slot" <<'SH'
#!/bin/sh
# Mounts the slot named by rauc.slot= on the kernel command line (A = /dev/vdb, B = /dev/vdc)
# read-only at /run/ota-slot. A slot without a filesystem stays unmounted (its health check fails).
set -u
slot=$(sed -n 's/.*rauc\.slot=\([AB]\).*/\1/p' /proc/cmdline)
case "$slot" in A) dev=/dev/vdb ;; B) dev=/dev/vdc ;; *) echo "no rauc.slot=A|B on the kernel command line" >&2; exit 1 ;; esac
mkdir -p /run/ota-slot
if mount -t ext4 -o ro "$dev" /run/ota-slot; then
  echo "booted slot $slot ($dev): $(grep '^VERSION_ID=' /run/ota-slot/etc/os-release 2>/dev/null || echo 'no os-release')"
else
  echo "booted slot $slot ($dev): no filesystem" >&2
fi
exit 0
SH
  chmod 755 "$lx/mount-booted-slot"
  cat >"$r/etc/systemd/system/ota-slot.service" <<'UNIT'
[Unit]
Description=Mount the booted A/B slot at /run/ota-slot
Requires=dev-vdb.device dev-vdc.device
After=dev-vdb.device dev-vdc.device local-fs.target
Before=ota-agent.service rauc.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/libexec/ota-vm/mount-booted-slot
ExecStop=-/bin/umount /run/ota-slot

[Install]
WantedBy=multi-user.target
UNIT

  # The health check: the booted slot's /health must say "ok" (a bundle can make it fail).
  cat >"$lx/slot-health" <<'SH'
#!/bin/sh
# Health check of the emulated device: passes iff /health in the booted slot is exactly "ok".
f=/run/ota-slot/health
v=$(sed -n 's/^VERSION_ID=//p' /run/ota-slot/etc/os-release 2>/dev/null)
c=$(cat "$f" 2>/dev/null) || c=''
echo "slot version ${v:-unknown}, /health: ${c:-<missing>}"
[ "$c" = ok ]
SH
  chmod 755 "$lx/slot-health"

  # Network: static address on the user-mode network; only 10.0.2.100 (the host's broker and
  # bundle server, through guestfwd) is reachable.
  cat >"$r/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
NET

  # The agent's configuration: broker and bundle server on the host, the fleet key, RAUC.
  mkdir -p "$r/etc/ota-agent/keys"
  install -m 0644 "$out/keys/fleet.pub" "$r/etc/ota-agent/keys/fleet.pub"
  cat >"$r/etc/ota-agent/config.json" <<JSON
{
  "deviceId": "arm64-vm-1",
  "compatible": "$COMPATIBLE",
  "channels": ["stable"],
  "stateDir": "/var/lib/ota-agent",
  "mqtt": { "url": "mqtt://10.0.2.100:1883", "allowPlaintext": true, "reconnectPeriodMs": 1000, "keepaliveSeconds": 30 },
  "trust": { "keys": [{ "publicKeyFile": "/etc/ota-agent/keys/fleet.pub", "comment": "device test fleet key" }] },
  "backend": { "type": "rauc", "slotClass": "rootfs", "fallbackVersion": "1.0.0", "retryDelayMs": 1000, "reboot": { "method": "logind" } },
  "healthChecks": [
    { "kind": "command", "name": "slot-health", "argv": ["/usr/libexec/ota-vm/slot-health"], "timeoutMs": 30000, "retries": 2, "intervalMs": 1000 },
    { "kind": "systemd-unit", "name": "rauc-service", "unit": "rauc.service", "required": false }
  ],
  "artifacts": { "allowedSchemes": ["http"], "allowedHosts": ["10.0.2.100"] },
  "log": { "level": "info" }
}
JSON
  chroot "$r" chown -R root:ota-agent /etc/ota-agent
  chmod 0750 "$r/etc/ota-agent" "$r/etc/ota-agent/keys"
  chmod 0640 "$r/etc/ota-agent/config.json" "$r/etc/ota-agent/keys/fleet.pub"

  # Units: the agent, the slot mount, networkd; nothing slow or pointless in a VM.
  systemctl --root="$r" enable systemd-networkd.service ota-slot.service mnt-host.mount ota-agent.service >/dev/null 2>&1
  systemctl --root="$r" mask serial-getty@ttyAMA0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service dpkg-db-backup.timer \
    systemd-tmpfiles-clean.timer systemd-update-utmp.service systemd-update-utmp-runlevel.service >/dev/null 2>&1
  # Logs go to the serial console too, which the runner saves per boot (boot-N.log).
  mkdir -p "$r/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\nForwardToConsole=yes\nMaxLevelConsole=info\nTTYPath=/dev/ttyAMA0\n' >"$r/etc/systemd/journald.conf.d/console.conf"
}

# ---- 7. images: rootfs.ext4 (the OS, shared by both slots here), the factory slot A, slot B -----
images() {
  local stamp img="$out/image"
  stamp="$(stamp_of "$agent_pkg" "$0" "$out/base.stamp" "$out/keys/fleet.pub" "$out/keys/pki/ca.pem")"
  if [[ -f "$img/stamp" && "$(cat "$img/stamp")" == "$stamp" && -f "$img/rootfs.ext4" ]]; then
    log "image: cached"
    return
  fi
  log "image: staging root filesystem"
  rm -rf "$out/stage" "$img"
  mkdir -p "$img"
  cp -a "$out/base" "$out/stage"
  install_agent "$out/stage" "$agent_pkg"
  configure_device "$out/stage"
  rm -rf "$out/stage/var/cache/apt/archives/"*.deb "$out/stage/var/lib/apt/lists/"*_Packages 2>/dev/null || true
  truncate -s 1536M "$img/rootfs.ext4"
  mkfs.ext4 -q -F -L arm64root -d "$out/stage" "$img/rootfs.ext4"
  # Factory slot A: version 1.0.0, healthy. Slot B: empty (the first update writes it).
  local seed="$out/seed"
  rm -rf "$seed" && mkdir -p "$seed/etc"
  printf 'ok' >"$seed/health"
  printf 'NAME="ota-agent test image"\nID=ota-test\nVERSION_ID=1.0.0\nVERSION="1.0.0"\n' >"$seed/etc/os-release"
  truncate -s 64M "$img/slot-a.img" "$img/slot-b.img"
  mkfs.ext4 -q -F -L rootfs -E root_owner=0:0 -d "$seed" "$img/slot-a.img"
  rm -rf "$out/stage" "$seed"
  echo "$stamp" >"$img/stamp"
}

mkdir -p "$out"
out="$(cd "$out" && pwd)"
host_packages
kernel_and_initramfs
base_rootfs
keys
find_release
[[ -f "$agent_pkg" ]] || die "no such release file: $agent_pkg"
agent_pkg="$(cd "$(dirname "$agent_pkg")" && pwd)/$(basename "$agent_pkg")"
images
cat >"$out/device.env" <<ENV
# written by cross-build/device/build-image.sh
DEVICE_DIR=$out
KERNEL=$out/kernel/vmlinuz
INITRD=$out/kernel/initrd.gz
ROOTFS=$out/image/rootfs.ext4
SLOT_A=$out/image/slot-a.img
SLOT_B=$out/image/slot-b.img
FLEET_KEY=$out/keys/fleet.key
PKI_DIR=$out/keys/pki
COMPATIBLE=$COMPATIBLE
AGENT_PACKAGE=$agent_pkg
ENV
log "done"
echo "$out/device.env"
