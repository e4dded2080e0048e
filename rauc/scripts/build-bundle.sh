#!/usr/bin/env bash
# Builds a signed RAUC bundle (format=plain) holding one ext4 rootfs image, from files given on the
# command line. Meant for tests and for trying out a device's RAUC setup; real images come from
# your build system (Yocto, Buildroot, ...), but the manifest layout is the same.
#
#   build-bundle.sh --out FILE --compatible C --version V --cert PEM --key PEM
#                   [--keyring CA_PEM] [--file NAME=CONTENT ...] [--size-mib N]
#
#   --out FILE          bundle to write (overwritten if it exists); its absolute path is printed
#   --compatible C      must equal `compatible` in the device's system.conf
#   --version V         manifest [update] version, also written as VERSION_ID=V to /etc/os-release
#   --cert/--key PEM    signing certificate and key
#   --keyring CA_PEM    check the signature against this CA right after signing (recommended)
#   --file NAME=CONTENT put a file NAME (relative path, e.g. health or etc/motd) with CONTENT into
#                       the image; repeatable; a later --file for the same NAME wins, and a
#                       --file etc/os-release=... replaces the generated one
#   --size-mib N        size of the ext4 image in MiB (default 8)
#
# Needs: rauc (bundle), mksquashfs (squashfs-tools, used by `rauc bundle`), mkfs.ext4 (e2fsprogs).
# No root needed: the image is made with `mkfs.ext4 -d`, nothing is mounted.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"

usage() {
  sed -n '6,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  [[ $# -gt 0 ]] && echo "error: $*" >&2
  exit 2
}

out='' compatible='' version='' cert='' key='' keyring='' size_mib=8
files=()
while [[ $# -gt 0 ]]; do
  opt="$1"
  case "$opt" in
    --out | --compatible | --version | --cert | --key | --keyring | --file | --size-mib)
      [[ $# -ge 2 ]] || usage "$opt needs a value"
      val="$2"
      shift 2
      ;;
    --out=* | --compatible=* | --version=* | --cert=* | --key=* | --keyring=* | --file=* | --size-mib=*)
      val="${opt#*=}"
      opt="${opt%%=*}"
      shift
      ;;
    -h | --help) usage ;;
    *) usage "unknown argument: $opt" ;;
  esac
  case "$opt" in
    --out) out="$val" ;;
    --compatible) compatible="$val" ;;
    --version) version="$val" ;;
    --cert) cert="$val" ;;
    --key) key="$val" ;;
    --keyring) keyring="$val" ;;
    --file) files+=("$val") ;;
    --size-mib) size_mib="$val" ;;
  esac
done

[[ -n "$out" ]] || usage "--out is required"
[[ -n "$compatible" ]] || usage "--compatible is required"
[[ -n "$version" ]] || usage "--version is required"
[[ -n "$cert" ]] || usage "--cert is required"
[[ -n "$key" ]] || usage "--key is required"
[[ "$size_mib" =~ ^[1-9][0-9]{0,5}$ ]] || usage "--size-mib must be a positive integer, got '$size_mib'"
# Manifest values are written into a key file: no line breaks.
for v in "$compatible" "$version"; do
  [[ "$v" != *$'\n'* && "$v" != *$'\r'* ]] || usage "--compatible/--version must be one line"
done
[[ -r "$cert" ]] || usage "cannot read --cert $cert"
[[ -r "$key" ]] || usage "cannot read --key $key"
[[ -z "$keyring" || -r "$keyring" ]] || usage "cannot read --keyring $keyring"

need() { # need BINARY PACKAGE
  command -v "$1" >/dev/null 2>&1 || {
    echo "$1 is not installed: apt-get install -y $2" >&2
    exit 1
  }
}
need rauc rauc
need mksquashfs squashfs-tools
need mkfs.ext4 e2fsprogs

abspath() { # absolute path of a (possibly not yet existing) file, without resolving symlinks
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$PWD" "$1" ;;
  esac
}
out="$(abspath "$out")"
cert="$(abspath "$cert")"
key="$(abspath "$key")"
[[ -z "$keyring" ]] || keyring="$(abspath "$keyring")"
[[ -d "$(dirname -- "$out")" ]] || usage "directory of --out does not exist: $(dirname -- "$out")"

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
root="$work/root"
content="$work/content"
mkdir -p -- "$root/etc" "$content"

# Generated /etc/os-release first, so a --file etc/os-release=... can replace it.
printf 'NAME="ota-agent test image"\nID=ota-test\nVERSION_ID=%s\nVERSION="%s"\n' "$version" "$version" >"$root/etc/os-release"

for spec in ${files[@]+"${files[@]}"}; do
  [[ "$spec" == *=* ]] || usage "--file wants NAME=CONTENT, got '$spec'"
  name="${spec%%=*}"
  data="${spec#*=}"
  # Relative paths inside the image only: no absolute paths, no '..', no empty components.
  if [[ -z "$name" || "$name" == /* || "$name" == */ || "/$name/" == */../* || "/$name/" == */./* || "$name" == *//* ]]; then
    usage "--file NAME must be a plain relative path, got '$name'"
  fi
  mkdir -p -- "$(dirname -- "$root/$name")"
  printf '%s' "$data" >"$root/$name"
done

img="$content/rootfs.ext4"
truncate -s "${size_mib}M" -- "$img"
# -d populates the filesystem from a directory without mounting it; root_owner keeps / owned by
# root even when a non-root user builds.
if ! mkfs_out="$(mkfs.ext4 -q -F -L rootfs -E root_owner=0:0 -d "$root" "$img" 2>&1)"; then
  printf '%s\n' "$mkfs_out" >&2
  echo "mkfs.ext4 failed (image too small for the files? try a larger --size-mib)" >&2
  exit 1
fi

cat >"$content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version
build=$(date -u +%Y%m%dT%H%M%SZ)

[bundle]
format=plain

[image.rootfs]
filename=rootfs.ext4
MANIFEST

rm -f -- "$out"
bundle_args=(bundle --cert="$cert" --key="$key")
[[ -z "$keyring" ]] || bundle_args+=(--keyring="$keyring")
bundle_args+=("$content" "$out")
if ! rauc_out="$(rauc "${bundle_args[@]}" 2>&1)"; then
  printf '%s\n' "$rauc_out" >&2
  echo "rauc bundle failed" >&2
  exit 1
fi
printf '%s\n' "$out"
