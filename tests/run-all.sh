#!/usr/bin/env bash
# The one command that runs every test (CI runs exactly this, via .ci/run):
#   1. tests/guest/setup.sh   installs QEMU, virtme-ng, runc, crun, busybox and
#                             the guest kernel (idempotent)
#   2. cargo test --workspace host unit and integration tests
#   3. tests/guest/run.sh     the real-kernel tests, in one QEMU guest
#   4. fuzz/run.sh            every fuzz target for a bounded time (20 s each)
# Needs root on Debian 12 with a Rust toolchain. Extra arguments are passed to
# tests/guest/run.sh (test names). Prints a summary; exits 1 if anything failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t0=$(date +%s)
declare -a summary=()
status=0

step() {  # step NAME CMD...
  local name=$1 s rc=0
  shift
  s=$(date +%s)
  echo
  echo "=============== $name: $* ==============="
  "$@" || rc=$?
  local took=$(($(date +%s) - s))
  if [ "$rc" == 0 ]; then
    summary+=("PASS  $name (${took}s)")
  else
    summary+=("FAIL  $name (exit $rc, ${took}s)")
    status=1
  fi
  return "$rc"
}

if step setup tests/guest/setup.sh; then
  step host-tests nice -n 10 cargo test --workspace
  step guest-tests tests/guest/run.sh "$@"
else
  summary+=("FAIL  host-tests (not run: setup failed)" "FAIL  guest-tests (not run: setup failed)")
fi
step fuzz fuzz/run.sh 20

echo
echo "=============== summary ==============="
printf '%s\n' "${summary[@]}"
echo "total wall time $(($(date +%s) - t0))s"
if [ "$status" == 0 ]; then echo "ALL PASSED"; else echo "SOME FAILED"; fi
exit "$status"
