#!/bin/bash
# Two networks on two parents, 4 writers each, for 60 s (issue 5). Writers
# are attach/detach cycles through the OCI hook (tests/stress.rs `writers`:
# fast enough from Rust, and they exercise the whole path, netlink included,
# not just the store), each keeping up to two containers at once on a /27.
# A checker looks into every live namespace meanwhile: no address held by two
# live containers, each one leased to its holder. Afterwards: no lease left
# (no lost release), and each network can be filled completely again: every
# address (29 on the L2 /27 with its gateway, 30 on the L3 one, which has no
# gateway), then "no free address".
# timeout: 300
. "$(dirname "$0")/lib.sh"

[ -n "${IPVNET_STRESS_BIN:-}" ] && [ -x "$IPVNET_STRESS_BIN" ] ||
  fail "no stress test binary (IPVNET_STRESS_BIN is [${IPVNET_STRESS_BIN:-}]): tests/guest/run.sh builds it for t-stress-* tests"

upstream_router rtra wa0 10.61.0.1/27
upstream_router rtrb wb0 10.62.0.1/27
assert_ok ipvnet network create --subnet 10.61.0.0/27 --gateway 10.61.0.1 -o parent=wa0 wa
assert_ok ipvnet network create --subnet 10.62.0.0/27 -o ipvlan_mode=l3 -o parent=wb0 wb
links_before=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort)

rc=0
env STRESS_NETS=wa,wb STRESS_WRITERS="${STRESS_WRITERS:-4}" STRESS_SECONDS="${STRESS_SECONDS:-60}" \
  STRESS_BUNDLE="$TEST_TMP/bundles" "$IPVNET_STRESS_BIN" --ignored --exact writers --nocapture --test-threads=1 \
  2>&1 | tee "$TEST_TMP/driver.out" || rc=$?
assert_eq "$rc" 0 "the writers driver's exit status"
out=$(<"$TEST_TMP/driver.out")
assert_contains "$out" "writers OK"
assert_contains "$out" "1 passed"

echo "### no lost release"
assert_eq "$(lease_list)" "" "leases after every container was detached"
assert_eq "$(ls -A "$IPVNET_STATE_DIR/endpoints")" "" "endpoint records after every container was detached"
links_after=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort)
assert_eq "$links_after" "$links_before" "host links after the writers"

echo "### each network fills completely again"
for net_n in wa:29 wb:30; do
  net=${net_n%:*} n=${net_n#*:}
  for ((i = 1; i <= n; i++)); do
    ipvnet lease add "$net" --owner "fill-$net-$i" >/dev/null || fail "lease $i of $n on $net refused"
  done
  assert_fails ipvnet lease add "$net" --owner "fill-$net-extra"
  assert_contains "$ERR" "no free address in $net"
  assert_eq "$(lease_list "$net" | awk '{print $2}' | sort -u | wc -l)" "$n" "distinct leases on $net"
done
assert_ok ipvnet network inspect wa wb
echo "t-stress-writers OK"
