#!/usr/bin/env bash
# The benchmark, one command (host side):
#
#   tests/bench/run.sh [DRIVER ARGS...]     e.g. --n 50 --only attach,alloc
#
# Builds the release binaries (tests/guest/run.sh does), boots the test guest
# once running tests/guest/bench.sh (the driver `ipvnet-bench run`), copies
# its results.json to target/bench/ and renders BENCHMARKS.md at the
# repository root. Needs tests/guest/setup.sh once (containernetworking-plugins
# included). See tests/bench/README.md.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
mkdir -p target/bench
printf '%s\n' "$*" >target/bench/args
load0=$(cut -d' ' -f1-3 /proc/loadavg)
guests0=$(pgrep -c '^qemu-system' || true)
t0=$(date +%s)
tests/guest/run.sh bench 2>&1 | tee target/bench/guest-run.log
rw=$(sed -n 's/.*run dir \(.*\)$/\1/p' target/bench/guest-run.log | tail -n1)
load1=$(cut -d' ' -f1-3 /proc/loadavg)
guests1=$(pgrep -c '^qemu-system' || true)
if [ -z "$rw" ] || [ ! -s "$rw/bench/results.json" ]; then
  echo "bench: no results (run dir: ${rw:-none}); see the log above" >&2
  exit 1
fi
cp "$rw/bench/results.json" target/bench/results.json
cp "$rw/logs/bench.log" target/bench/bench.log 2>/dev/null || true
# Host facts for the report: other QEMU guests running, and the load.
export IPVNET_BENCH_HOST_NOTE="Host: $(nproc) cores, shared with other work (other helpers' builds and guests): $guests0 other QEMU guest(s) running before ours booted, $guests1 after ours ended; host load average $load0 before, $load1 after; the whole command took $(($(date +%s) - t0)) s."
target/release/ipvnet-bench render target/bench/results.json >BENCHMARKS.md.tmp && mv BENCHMARKS.md.tmp BENCHMARKS.md || exit 1
echo "bench: wrote BENCHMARKS.md (raw samples: target/bench/results.json, log: target/bench/bench.log)"
grep -A8 '^## Targets' BENCHMARKS.md
