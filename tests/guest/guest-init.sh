#!/bin/bash
# Runs inside the QEMU guest (started by tests/guest/run.sh through vng):
#   guest-init.sh RWDIR
# RWDIR (writable, shared with the host) holds `config` (shell variables) and
# `tests` (one line per test: NAME KIND PATH TIMEOUT_S; KIND is script or
# kernel). Writes back: booted, results (PASS name / FAIL name), logs/NAME.log,
# durations, and done (last) holding 0.
rw=$1
exec >"$rw/init.log" 2>&1
echo "$(date +%s)" >"$rw/booted"
set -u
. "$rw/config"
IPVNET_STRESS_BIN=${IPVNET_STRESS_BIN:-}
export IPVNET_ROOT IPVNET_ROOTFS RUNTIME IPVNET_STRESS_BIN IPVNET_GUEST=1
export PATH="/run/ipvnet-bin:$IPVNET_ROOT/target/release:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export HOME=/root LANG=C.UTF-8
unset XDG_RUNTIME_DIR
set -x

# Kernel modules and the mounts the runtimes and `ip netns` need.
modprobe -a ipvlan 8021q dummy macvlan veth || echo "WARNING: modprobe failed"
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
mkdir -p /run/netns /run/runc /run/crun /tmp/bundles
[ -e /dev/shm ] || mkdir -p /dev/shm
ip link set lo up

# Executing from the 9p root is slow (every exec reads the binary again from
# the host): copy the project's binaries and the busybox rootfs to tmpfs.
mkdir -p /run/ipvnet-bin
for f in "$IPVNET_ROOT"/target/release/*; do
  [ -f "$f" ] && [ -x "$f" ] && cp "$f" /run/ipvnet-bin/
done
# runc copies its own binary (~10 MB) into a memfd on every call: from tmpfs.
for b in runc crun; do
  p=$(command -v "$b") && cp "$(readlink -f "$p")" "/run/ipvnet-bin/$b"
done
# The stress test binary (tests/stress.rs), driven by the t-stress-* scripts.
if [ -n "$IPVNET_STRESS_BIN" ] && cp "$IPVNET_STRESS_BIN" /run/ipvnet-bin/ipvnet-stress-tests; then
  IPVNET_STRESS_BIN=/run/ipvnet-bin/ipvnet-stress-tests
fi
ls -la /run/ipvnet-bin
cp -a "$IPVNET_ROOTFS" /run/ipvnet-rootfs && IPVNET_ROOTFS=/run/ipvnet-rootfs
# Copy up (into the tmpfs upper layers of /usr, /etc, ...) the files run.sh
# listed: later reads come from memory instead of 9p. Opening for writing
# copies up without changing contents or times.
t_hot=$SECONDS
while IFS= read -r f; do
  [ -f "$f" ] && { : 1<>"$f"; } 2>/dev/null
done <"$rw/hot"
echo "copied up $(wc -l <"$rw/hot") files in $((SECONDS - t_hot))s"
sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 || true
ulimit -n 65536 || true
uname -a
lsmod | grep -E '^(ipvlan|8021q|dummy|macvlan|veth) ' || true

link_names() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort; }
baseline_links=$(link_names)

# Leave the guest as it was at boot for the next test.
reset_state() {
  local rt id ns l
  for rt in runc crun; do
    command -v "$rt" >/dev/null || continue
    for id in $("$rt" list -q 2>/dev/null); do
      timeout 60 "$rt" delete --force "$id" || timeout 30 "$rt" kill "$id" KILL || true
      timeout 30 "$rt" delete --force "$id" 2>/dev/null || true
    done
  done
  for ns in $(ip netns list | awk '{print $1}'); do ip netns del "$ns" || true; done
  for l in $(comm -13 <(echo "$baseline_links") <(link_names)); do
    ip link del "$l" 2>/dev/null || true
  done
  rm -rf /tmp/bundles && mkdir -p /tmp/bundles
}

: >"$rw/results"
: >"$rw/durations"
mkdir -p "$rw/logs"
while read -r name kind path tmo; do
  [ -n "$name" ] || continue
  log=$rw/logs/$name.log
  export TEST_NAME=$name
  export IPVNET_STATE_DIR=/tmp/ipvnet-state-$name
  export TEST_TMP=/tmp/test-$name
  rm -rf "$IPVNET_STATE_DIR" "$TEST_TMP"
  mkdir -p "$TEST_TMP"
  start=$(date +%s)
  echo "=== $name ($kind, timeout ${tmo}s, runtime $RUNTIME) ===" >"$log"
  rc=0
  case "$kind" in
    script)
      # timeout(1) makes itself a process-group leader: kill that group after.
      (cd "$TEST_TMP" && exec timeout -k 10 "$tmo" bash -x "$path") </dev/null >>"$log" 2>&1 &
      pid=$!
      wait "$pid" || rc=$?
      ;;
    kernel)
      (cd "$IPVNET_ROOT" && CARGO_MANIFEST_DIR=$IPVNET_ROOT RUST_BACKTRACE=1 \
        exec timeout -k 10 "$tmo" "$path" --ignored --test-threads=1) </dev/null >>"$log" 2>&1 &
      pid=$!
      wait "$pid" || rc=$?
      if [ "$rc" == 0 ]; then
        n=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
        if [ "$n" == 0 ]; then
          echo "FAIL: the kernel test binary ran no test (0 passed)" >>"$log"
          rc=1
        fi
      fi
      ;;
    *)
      echo "unknown test kind $kind" >>"$log"
      rc=1
      ;;
  esac
  pkill -KILL -g "$pid" 2>/dev/null || true
  [ "$rc" != 124 ] || echo "FAIL: timed out after ${tmo}s" >>"$log"
  echo "=== exit status $rc after $(($(date +%s) - start))s ===" >>"$log"
  if [ "$rc" == 0 ]; then echo "PASS $name" >>"$rw/results"; else echo "FAIL $name" >>"$rw/results"; fi
  echo "$name $(($(date +%s) - start))" >>"$rw/durations"
  reset_state >>"$rw/init.log" 2>&1
done <"$rw/tests"

sync
echo 0 >"$rw/done"
