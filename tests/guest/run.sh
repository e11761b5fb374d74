#!/usr/bin/env bash
# Runs the real-kernel tests in ONE QEMU guest (virtme-ng, Debian's kernel).
#
#   tests/guest/run.sh [TEST...]
#
# TEST is a script name (t-network, t-network.sh or tests/guest/t-network.sh)
# or `kernel` (the #[ignore]d Rust tests of tests/kernel.rs, run with
# --ignored --test-threads=1). Default: every tests/guest/t-*.sh plus kernel
# (when tests/kernel.rs exists).
#
# Environment: RUNTIME=runc|crun (default runc) is passed to the tests;
# IPVNET_TEST_TIMEOUT (default 300 s) per script, overridden by a
# `# timeout: N` line near the top of a script; IPVNET_KERNEL_TIMEOUT
# (default 1200 s) for the kernel test binary; IPVNET_GUEST_TIMEOUT (default
# 4200 s) caps the whole guest run (tests not reached by then fail as "did not
# report"); IPVNET_KERNEL_DIR (default target/guest-kernel, prepared by
# tests/guest/setup.sh).
#
# Steps: cargo build --release (workspace binaries) and the kernel test
# binary (and, for t-stress-* scripts, the one of tests/stress.rs, passed to
# the guest as IPVNET_STRESS_BIN), the busybox rootfs in target/guest/rootfs
# (built once), then one guest boot running tests/guest/guest-init.sh. The
# run's directory (target/guest/runs/ID, linked as target/guest/last) keeps
# results, logs/ and the guest's console (vng.log). Prints PASS/FAIL per
# test, the logs of failed ones, and `N passed, M failed`; exits 1 if
# anything failed or did not run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
kdir=${IPVNET_KERNEL_DIR:-$root/target/guest-kernel}
script_timeout=${IPVNET_TEST_TIMEOUT:-300}
kernel_timeout=${IPVNET_KERNEL_TIMEOUT:-1200}
runtime=${RUNTIME:-runc}
t0=$(date +%s)

passed=0 failed=0
declare -a failures=()
say() { echo "run.sh: $*"; }
finish() {
  echo
  if ((${#failures[@]})); then say "failed: ${failures[*]}"; fi
  echo "$passed passed, $failed failed"
  say "wall time $(($(date +%s) - t0))s"
  ((failed == 0))
  exit
}
fail_early() {  # NAME MESSAGE: a failure before the guest ran
  echo "FAIL $1"
  echo "    $2"
  failures+=("$1")
  failed=$((failed + 1))
}

# ------------------------------------------------------------ test list --
declare -a want=()
has_kernel_rs=0
[ -f tests/kernel.rs ] && has_kernel_rs=1
if (($#)); then
  for t in "$@"; do
    t=$(basename "$t" .sh)
    want+=("$t")
  done
else
  for f in "$here"/t-*.sh; do
    [ -e "$f" ] && want+=("$(basename "$f" .sh)")
  done
  if ((has_kernel_rs)); then want+=(kernel); else say "tests/kernel.rs does not exist: no kernel test binary"; fi
fi
((${#want[@]})) || { fail_early tests "no test to run"; finish; }

# ---------------------------------------------------------------- build --
kernel_image=$(ls "$kdir"/boot/vmlinuz-* 2>/dev/null | head -n1)
if [ -z "$kernel_image" ]; then
  fail_early guest "no guest kernel in $kdir/boot: run tests/guest/setup.sh"
  for t in "${want[@]}"; do fail_early "$t" "not run: no guest kernel"; done
  finish
fi

say "building (release)"
if ! nice -n 10 cargo build --release --workspace --bins; then
  fail_early build "cargo build --release --workspace --bins failed"
  for t in "${want[@]}"; do fail_early "$t" "not run: the build failed"; done
  finish
fi

# test_bin NAME: build the test binary of tests/NAME.rs (release, not run);
# prints its path (nothing if the build failed).
test_bin() {
  local json
  json=$(nice -n 10 cargo test --release --test "$1" --no-run --message-format=json) || {
    say "cargo test --release --test $1 --no-run failed" >&2
  }
  printf '%s\n' "$json" | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == sys.argv[1] \
            and m.get("executable"):
        print(m["executable"])
' "$1"
}

kernel_bin=
for t in "${want[@]}"; do
  [ "$t" == kernel ] || continue
  if ((!has_kernel_rs)); then
    break # reported as "did not report" below
  fi
  say "building the kernel test binary"
  kernel_bin=$(test_bin kernel)
done

# The t-stress-* scripts drive the #[ignore]d tests of tests/stress.rs
# (IPVNET_STRESS_BIN in the guest; a script fails if it is empty).
stress_bin=
for t in "${want[@]}"; do
  case "$t" in t-stress-*) ;; *) continue ;; esac
  if [ -f tests/stress.rs ]; then
    say "building the stress test binary"
    stress_bin=$(test_bin stress)
  fi
  break
done

# --------------------------------------------------------------- rootfs --
rootfs=$root/target/guest/rootfs
rootfs_version=1
if [ "$(cat "$rootfs/.complete" 2>/dev/null)" != "$rootfs_version" ]; then
  say "building the busybox rootfs in $rootfs"
  "$root/examples/mkrootfs.sh" "$rootfs" || { fail_early rootfs "could not build the rootfs (run tests/guest/setup.sh)"; finish; }
fi

# ------------------------------------------------------------ the guest --
mkdir -p "$root/target/guest/runs"
rw=$(mktemp -d "$root/target/guest/runs/$(date +%Y%m%d-%H%M%S)-XXXX")
ln -sfn "$rw" "$root/target/guest/last"
# The guest runs a snapshot of tests/guest: editing the tree while a guest is
# running (bash reads scripts as it goes) must not change what it runs.
mkdir -p "$rw/guest"
cp -a "$here/." "$rw/guest/"
gdir=$rw/guest
# Files the guest copies up into its tmpfs overlays once (exec and python
# imports from the 9p root are slow): hot binaries, their libraries, and the
# compiled python modules the tests' helpers import.
{
  for b in bash timeout cat grep sed awk sort cut comm diff head tail wc mktemp rm \
    mkdir cp mv ln sleep date env seq stat tr uniq readlink dirname basename touch \
    chmod ls kill pkill pgrep ps nsenter unshare mount umount mountpoint sysctl ip \
    ping jq setsid flock find xargs id hostname; do
    p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$b") && readlink -f "$p"
  done | sort -u >"$rw/hot.bins"
  readlink -f /usr/bin/python3 >>"$rw/hot.bins"
  cat "$rw/hot.bins"
  xargs -a "$rw/hot.bins" -d '\n' ldd 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}' |
    xargs -r readlink -f
  /usr/bin/python3 -c '
import sys, json, ipaddress, collections, re, os, subprocess, tempfile, shutil
for m in list(sys.modules.values()):
    for f in (getattr(m, "__cached__", None), getattr(m, "__file__", None)):
        if f and os.path.exists(f):
            print(os.path.realpath(f))
' 2>/dev/null
} | sort -u >"$rw/hot" || true
rm -f "$rw/hot.bins"
{
  printf 'IPVNET_ROOT=%q\n' "$root"
  printf 'IPVNET_ROOTFS=%q\n' "$rootfs"
  printf 'RUNTIME=%q\n' "$runtime"
  printf 'IPVNET_STRESS_BIN=%q\n' "$stress_bin"
} >"$rw/config"

total_timeout=120
: >"$rw/tests"
for t in "${want[@]}"; do
  if [ "$t" == kernel ]; then
    [ -n "$kernel_bin" ] || continue
    echo "kernel kernel $kernel_bin $kernel_timeout" >>"$rw/tests"
    total_timeout=$((total_timeout + kernel_timeout + 30))
  elif [ -f "$here/$t.sh" ]; then
    tmo=$(sed -n '1,20s/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$here/$t.sh" | head -n1)
    tmo=${tmo:-$script_timeout}
    echo "$t script $gdir/$t.sh $tmo" >>"$rw/tests"
    total_timeout=$((total_timeout + tmo + 30))
  fi
done

guest_cap=${IPVNET_GUEST_TIMEOUT:-4200}
((total_timeout <= guest_cap)) || total_timeout=$guest_cap
if [ -s "$rw/tests" ]; then
  say "booting $(basename "$kernel_image") for $(wc -l <"$rw/tests") test(s), runtime $runtime (limit ${total_timeout}s); run dir $rw"
  boot0=$(date +%s)
  timeout -k 30 "$total_timeout" vng --run "$kernel_image" --disable-kvm --force-9p \
    --rwdir "$rw" --memory 2G --cpus 2 \
    --exec "bash $gdir/guest-init.sh $rw" </dev/null >"$rw/vng.log" 2>&1
  say "guest ran $(($(date +%s) - boot0))s"
fi

# -------------------------------------------------------------- results --
guest_problem=
if [ -s "$rw/tests" ]; then
  if [ ! -f "$rw/booted" ]; then
    guest_problem="the guest did not boot (or could not run guest-init.sh)"
  elif [ "$(cat "$rw/done" 2>/dev/null)" != 0 ]; then
    guest_problem="the guest did not finish"
  fi
fi

for t in "${want[@]}"; do
  r=$(grep -E "^(PASS|FAIL) $t\$" "$rw/results" 2>/dev/null | tail -n1 | cut -d' ' -f1)
  d=$(awk -v t="$t" '$1 == t {print " (" $2 "s)"}' "$rw/durations" 2>/dev/null)
  case "$r" in
    PASS)
      echo "PASS $t$d"
      passed=$((passed + 1))
      ;;
    FAIL)
      echo "FAIL $t$d"
      echo "----- log of $t ($rw/logs/$t.log) -----"
      tail -n 300 "$rw/logs/$t.log" 2>/dev/null | sed 's/^/    /'
      echo "----- end of log of $t -----"
      failures+=("$t")
      failed=$((failed + 1))
      ;;
    *)
      why="did not report"
      if [ "$t" == kernel ] && ((!has_kernel_rs)); then why="tests/kernel.rs does not exist"
      elif [ "$t" == kernel ] && [ -z "$kernel_bin" ]; then why="the kernel test binary did not build"
      elif [ "$t" != kernel ] && [ ! -f "$here/$t.sh" ]; then why="no such test: $here/$t.sh"
      elif [ -n "$guest_problem" ]; then why="did not report: $guest_problem"
      fi
      echo "FAIL $t ($why)"
      if [ -f "$rw/logs/$t.log" ]; then
        tail -n 300 "$rw/logs/$t.log" | sed 's/^/    /'
      fi
      failures+=("$t")
      failed=$((failed + 1))
      ;;
  esac
done

if [ -n "$guest_problem" ]; then
  fail_early guest "$guest_problem; last lines of the guest's output:"
  tail -n 40 "$rw/init.log" 2>/dev/null | sed 's/^/    init: /'
  tail -n 40 "$rw/vng.log" 2>/dev/null | tr -cd '\11\12\40-\176' | sed 's/^/    vng: /'
fi
finish
