#!/usr/bin/env bash
# timeout: 3000
# Not a test: the benchmark driver, run in the guest by tests/bench/run.sh
# (`tests/guest/run.sh bench`; the t-*.sh glob of a normal run skips it).
# Results go to RUNDIR/bench/ (this script runs from RUNDIR/guest/); extra
# driver arguments come from target/bench/args (written by tests/bench/run.sh).
set -euo pipefail
out=$(cd "$(dirname "$0")/.." && pwd)/bench
mkdir -p "$out"
command -v ipvnet-bench >/dev/null || { echo "ipvnet-bench is not built" >&2; exit 1; }
[ -x /usr/lib/cni/ipvlan ] && [ -x /usr/lib/cni/host-local ] ||
  { echo "no /usr/lib/cni/ipvlan or host-local: run tests/guest/setup.sh" >&2; exit 1; }
args=$(cat "$IPVNET_ROOT/target/bench/args" 2>/dev/null || true)
# shellcheck disable=SC2086
ipvnet-bench run --out "$out" $args
