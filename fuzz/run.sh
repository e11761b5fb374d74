#!/usr/bin/env bash
# Build every fuzz target once and run each for a bounded time; fails if any
# target crashes (panics, aborts, times out or runs out of memory).
#
#   fuzz/run.sh [SECONDS]      default 20 s per target (the CI step)
#   fuzz/run.sh 3600 store_load   one target for an hour
#
# Installs cargo-fuzz (and a C++ compiler, for libFuzzer) when missing. Uses
# the stable toolchain with RUSTC_BOOTSTRAP=1, since cargo-fuzz passes
# nightly-only flags. No sanitizer: ipvnet's parsers are safe Rust, where a
# bug is a panic that libFuzzer catches anyway, and AddressSanitizer would
# cost a second build and about half the executions. Crashes land in
# fuzz/artifacts/TARGET/; the growing corpus in fuzz/target/corpus/TARGET/
# (the committed seeds in fuzz/corpus/TARGET/ are only read).
set -uo pipefail
secs=${1:-20}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
flags=(--sanitizer none --codegen-units 16)

if ! command -v c++ >/dev/null && ! command -v clang++ >/dev/null; then
  echo "fuzz: installing g++ (libfuzzer-sys compiles libFuzzer)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends g++ >/dev/null || exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  t=$(date +%s)
  cargo install cargo-fuzz --locked || exit 1
  echo "fuzz: cargo-fuzz installed in $(($(date +%s) - t))s"
fi

if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
t=$(date +%s)
nice -n 10 cargo fuzz build "${flags[@]}" || exit 1
echo "fuzz: build took $(($(date +%s) - t))s"

# Scratch directories of store_load, removed at the end.
scratch_root=/dev/shm
[ -d "$scratch_root" ] || scratch_root=${TMPDIR:-/tmp}
IPVNET_FUZZ_SCRATCH=$(mktemp -d "$scratch_root/ipvnet-fuzz.XXXXXX") || exit 1
export IPVNET_FUZZ_SCRATCH
trap 'rm -rf "$IPVNET_FUZZ_SCRATCH"' EXIT

failed=()
for target in "${targets[@]}"; do
  work=target/corpus/$target
  mkdir -p "$work" "corpus/$target"
  echo "fuzz: $target for ${secs}s"
  t=$(date +%s)
  # -timeout: one input taking over 10 s counts as a crash (a hang);
  # -rss_limit_mb: so does growing past 1 GiB.
  if cargo fuzz run "${flags[@]}" "$target" "$work" "corpus/$target" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
      >"target/$target.log" 2>&1; then
    echo "fuzz: $target ok in $(($(date +%s) - t))s: $(grep -E '^stat::number_of_executed_units' "target/$target.log" | awk '{print $2}') runs"
  else
    echo "fuzz: $target FAILED; the end of its log (fuzz/target/$target.log):"
    tail -n 40 "target/$target.log"
    ls -1 "artifacts/$target/" 2>/dev/null | sed "s|^|  crash input: fuzz/artifacts/$target/|"
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (reproduce: cargo fuzz run ${flags[*]} TARGET fuzz/artifacts/TARGET/FILE, from fuzz/)"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s each without a crash"
