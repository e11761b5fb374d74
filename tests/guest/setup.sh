#!/usr/bin/env bash
# Installs what the in-guest tests need: QEMU, virtme-ng, runc, crun, busybox,
# and Debian's stock kernel (which ships ipvlan, 8021q and dummy as modules).
# Idempotent; safe to run on every CI run. Usage: tests/guest/setup.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kdir=${IPVNET_KERNEL_DIR:-$root/target/guest-kernel}

pkgs=(qemu-system-x86 kmod busybox-static runc crun iproute2 iputils-ping
      containernetworking-plugins python3-pip procps util-linux
      g++)  # g++: libfuzzer-sys builds libFuzzer for fuzz/run.sh
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v vng >/dev/null; then
  pip install -q virtme-ng==1.42 || pip install -q --break-system-packages virtme-ng==1.42
fi

# The kernel: extract the package once, then depmod so vng finds the modules.
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
  [ -n "$(apt-cache depends linux-image-amd64 2>/dev/null)" ] || apt-get update -qq
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq "$pkg")
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
  dpkg -x "$tmp"/*.deb "$kdir.tmp"
  rm -rf "$tmp"
  ver=$(ls "$kdir.tmp/lib/modules")
  depmod -b "$kdir.tmp" "$ver"
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
fi
ls "$kdir"/boot/vmlinuz-*
"$here/setup-containerd.sh"  # containerd 1.7 and the local images for t-ctr, t-nri
