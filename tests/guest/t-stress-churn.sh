#!/bin/bash
# Churn with crashes (issue 5): 1000 containers attached and detached by the
# OCI hook on one ipvlan network (veth parent), 4 at a time (no new one after
# 300 s on a slow or busy machine; at least 200 must run), while hook
# processes (and gc runs) are SIGKILLed at random instants and the "runtime"
# sometimes never runs poststop or leaves a container running. Driven by
# tests/stress.rs `churn` (exec is too slow here for a shell loop): each
# container is a forked process in its own network namespace, the hook gets
# runc-like state on stdin. While it runs, a checker looks into every live
# namespace: no address held twice, every address a namespace holds (even on
# a half-made interface) leased to that container; gc must keep every live
# container. Afterwards (every container gone) `ipvnet gc` must leave no
# lease, no record, no hosts line, no temporary file and no host link.
# timeout: 480
. "$(dirname "$0")/lib.sh"

[ -n "${IPVNET_STRESS_BIN:-}" ] && [ -x "$IPVNET_STRESS_BIN" ] ||
  fail "no stress test binary (IPVNET_STRESS_BIN is [${IPVNET_STRESS_BIN:-}]): tests/guest/run.sh builds it for t-stress-* tests"

upstream_router rtr st0 10.60.0.1/22
assert_ok ipvnet network create --subnet 10.60.0.0/22 --gateway 10.60.0.1 -o parent=st0 churn
links_before=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort)
hosts_before=$(cat "$IPVNET_STATE_DIR/hosts/churn")

rc=0
env STRESS_NETS=churn STRESS_CYCLES="${STRESS_CYCLES:-1000}" STRESS_WORKERS="${STRESS_WORKERS:-4}" \
  STRESS_BUNDLE="$TEST_TMP/bundles" "$IPVNET_STRESS_BIN" --ignored --exact churn --nocapture --test-threads=1 \
  2>&1 | tee "$TEST_TMP/driver.out" || rc=$?
assert_eq "$rc" 0 "the churn driver's exit status"
out=$(<"$TEST_TMP/driver.out")
assert_contains "$out" "churn OK"
assert_contains "$out" "1 passed"

echo "### every container is gone: gc releases what they still held"
echo "records before gc: $(ls "$IPVNET_STATE_DIR/endpoints" | wc -l), leases: $(ls "$IPVNET_STATE_DIR/ipam/churn/leases" | wc -l)"
assert_ok ipvnet gc
echo "gc: $ERR"
assert_ok ipvnet lease ls
assert_eq "$(lease_list)" "" "leases after gc"
assert_eq "$(ls -A "$IPVNET_STATE_DIR/endpoints")" "" "endpoint records (or temporary files) after gc"
assert_eq "$(ls -A "$IPVNET_STATE_DIR/ipam/churn/leases")" "" "lease files after gc"
assert_eq "$(cat "$IPVNET_STATE_DIR/hosts/churn")" "$hosts_before" "hosts file after gc"
tmp=$(find "$IPVNET_STATE_DIR" -name '*.tmp.*')
assert_eq "$tmp" "" "temporary files left in the state dir"
assert_ok ipvnet gc
assert_contains "$ERR" "released 0," "a second gc has nothing to do"

echo "### no link left in the host namespace"
links_after=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort)
assert_eq "$links_after" "$links_before" "host links after the churn"

echo "### every store file loads; the network is whole"
assert_ok ipvnet network inspect churn
assert_contains "$OUT" '"Name": "churn"'
assert_ok ipvnet network ls
assert_contains "$OUT" churn
# The allocator hands out addresses again (bitmap and lease files agree).
assert_ok ipvnet lease add churn --owner after
assert_match "$OUT" '^10\.60\.[0-3]\.[0-9]+$'
assert_ok ipvnet lease rm --owner after
assert_ok ipvnet network rm churn
echo "t-stress-churn OK"
