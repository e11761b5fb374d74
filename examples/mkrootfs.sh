#!/usr/bin/env bash
# Builds a minimal busybox-static root filesystem in DIR (replacing it), for
# the runc/crun bundles of the examples and the guest tests.
#   examples/mkrootfs.sh DIR
# Marks a complete build with DIR/.complete holding "1".
set -euo pipefail
dir=${1:?usage: mkrootfs.sh DIR}
bb=$(command -v busybox || true)
[ -n "$bb" ] || { echo "mkrootfs: no busybox: apt-get install busybox-static" >&2; exit 1; }
if ldd "$bb" >/dev/null 2>&1; then
  echo "mkrootfs: $bb is dynamically linked: apt-get install busybox-static" >&2
  exit 1
fi
tmp=$dir.tmp.$$
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,etc,proc,sys,dev,tmp,run,root,var/run,usr,home}
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
for a in $("$tmp/bin/busybox" --list); do
  [ "$a" == busybox ] || ln -sf busybox "$tmp/bin/$a"
done
ln -s bin "$tmp/sbin"
ln -s ../bin "$tmp/usr/bin"
ln -s ../bin "$tmp/usr/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$tmp/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$tmp/etc/hosts"
: >"$tmp/etc/resolv.conf"
echo 1 >"$tmp/.complete"
rm -rf "$dir" && mv "$tmp" "$dir"
