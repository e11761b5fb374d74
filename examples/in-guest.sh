#!/usr/bin/env bash
# Runs a command as root in a throwaway QEMU guest booted from Debian's kernel
# (which has ipvlan, 8021q and dummy), for machines whose kernel lacks them:
#
#   examples/in-guest.sh CMD [ARG...]
#   examples/in-guest.sh examples/04-vlan-trunk.sh
#   examples/in-guest.sh env RUNTIME=crun examples/02-l2-name-resolution.sh
#   examples/in-guest.sh sh -c 'for s in examples/[0-9]*.sh; do $s || exit; done'
#
# Needs what tests/guest/setup.sh installs (QEMU, virtme-ng, runc, crun,
# busybox-static, the kernel in target/guest-kernel) and a built ipvnet. The
# guest sees the host's filesystem read-only (/etc, /var/lib, /tmp writable
# copies that vanish with it; /run empty), starts in the current directory,
# loads the modules, mounts cgroup2 and runs CMD with stdin from /dev/null.
# CMD's output is shown as it comes (and kept in target/guest-runs/ID/out.log);
# the exit status is CMD's.
# Environment: IPVNET_KVM=1 to use KVM (default: software emulation), IPVNET_GUEST_TIMEOUT
# (seconds, default 1800), IPVNET_KERNEL_DIR (default target/guest-kernel).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# ------------------------------------------------------------ in the guest --
if [ "${1:-}" == --inside ]; then
  rw=$2
  shift 2
  exec </dev/null >>"$rw/out.log" 2>&1
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
  unset XDG_RUNTIME_DIR
  modprobe -a ipvlan 8021q dummy veth || echo "in-guest.sh: modprobe failed"
  mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
  mkdir -p /run/netns /run/runc /run/crun
  ip link set lo up
  echo "(guest: $(uname -sr))"
  rc=0
  "$@" || rc=$?
  sync
  echo "$rc" >"$rw/status"
  exit 0
fi

# ------------------------------------------------------------- on the host --
(($#)) || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
kernel=$(ls "${IPVNET_KERNEL_DIR:-$root/target/guest-kernel}"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
[ -n "$kernel" ] || { echo "in-guest.sh: no guest kernel in target/guest-kernel: run tests/guest/setup.sh" >&2; exit 1; }
command -v vng >/dev/null || { echo "in-guest.sh: no vng (virtme-ng): run tests/guest/setup.sh" >&2; exit 1; }

# TCG unless IPVNET_KVM=1: a writable /dev/kvm proves nothing (on nested or
# restricted hosts QEMU aborts at once, or hangs once the guest runs, while
# a paused probe looks fine), and a TCG boot takes only ~30 s.
kvm=--disable-kvm
if [ "${IPVNET_KVM:-0}" == 1 ]; then kvm=; fi
user=()
if [ "$(id -u)" != 0 ]; then user=(--user root); fi

mkdir -p "$root/target/guest-runs"
rw=$(mktemp -d "$root/target/guest-runs/$(date +%Y%m%d-%H%M%S)-XXXX")
: >"$rw/out.log"
echo "in-guest.sh: booting $(basename "$kernel")${kvm:+ without KVM}; output also in $rw/out.log" >&2
cmd="bash $(printf '%q' "$root/examples/in-guest.sh") --inside $(printf '%q' "$rw")$(printf ' %q' "$@")"
timeout -k 30 "${IPVNET_GUEST_TIMEOUT:-1800}" vng --run "$kernel" $kvm --force-9p "${user[@]}" \
  --rwdir "$rw" --memory 2G --cpus 2 --exec "$cmd" </dev/null >"$rw/vng.log" 2>&1 &
vng_pid=$!
tail -n +1 -f --pid="$vng_pid" "$rw/out.log" || true
wait "$vng_pid" || true # vng's own status says nothing about the guest's
if [ ! -s "$rw/status" ]; then
  echo "in-guest.sh: the guest did not finish; the last lines of its console ($rw/vng.log):" >&2
  tail -n 30 "$rw/vng.log" >&2
  exit 1
fi
exit "$(cat "$rw/status")"
