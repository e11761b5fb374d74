#!/bin/bash
# IPAM under contention: 64 `ipvnet lease add` processes at once on one /24
# get 64 distinct usable addresses (never the network, broadcast or gateway
# address); all are released in parallel too. Also exhaustion under
# contention (/29) and dual-stack leases.
# timeout: 420
. "$(dirname "$0")/lib.sh"

# check_addrs SUBNET RESERVED... < addresses: each in SUBNET, distinct, not a
# reserved one, not the network or (IPv4) broadcast address. Prints the count.
check_addrs() {
  python3 -c '
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1])
reserved = {ipaddress.ip_address(a) for a in sys.argv[2:]}
seen = set()
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    a = ipaddress.ip_address(line.split("/")[0])
    if a in seen:
        sys.exit(f"address {a} handed out twice")
    seen.add(a)
    if a not in net:
        sys.exit(f"address {a} is outside {net}")
    if a == net.network_address:
        sys.exit(f"address {a} is the network address of {net}")
    if net.version == 4 and a == net.broadcast_address:
        sys.exit(f"address {a} is the broadcast address of {net}")
    if a in reserved:
        sys.exit(f"address {a} is reserved (gateway)")
print(len(seen))
' "$@"
}

# par_add NETWORK N PREFIX: N lease adds at once (owners PREFIX1..PREFIXN);
# outputs in $TEST_TMP/PREFIX.I.out/.err; prints how many failed.
par_add() {
  local net=$1 n=$2 p=$3 i bad=0
  local -a pids=()
  for ((i = 1; i <= n; i++)); do
    ipvnet lease add "$net" --owner "$p$i" >"$TEST_TMP/$p.$i.out" 2>"$TEST_TMP/$p.$i.err" &
    pids[i]=$!
  done
  for ((i = 1; i <= n; i++)); do
    if ! wait "${pids[i]}"; then
      bad=$((bad + 1))
      echo "lease add $net --owner $p$i failed: $(cat "$TEST_TMP/$p.$i.err")" >&2
    fi
  done
  echo "$bad"
}

par_rm() {
  local n=$1 p=$2 i bad=0
  local -a pids=()
  for ((i = 1; i <= n; i++)); do
    ipvnet lease rm --owner "$p$i" >"$TEST_TMP/rm-$p.$i.out" 2>"$TEST_TMP/rm-$p.$i.err" &
    pids[i]=$!
  done
  for ((i = 1; i <= n; i++)); do
    if ! wait "${pids[i]}"; then
      bad=$((bad + 1))
      echo "lease rm --owner $p$i failed: $(cat "$TEST_TMP/rm-$p.$i.err")" >&2
    fi
  done
  echo "$bad"
}

echo "### 64 at once on a /24"
assert_ok ipvnet network create --internal --subnet 10.20.30.0/24 --gateway 10.20.30.1 par
t0=$EPOCHREALTIME
assert_eq "$(par_add par 64 own)" 0 "failed lease adds"
echo "64 parallel lease adds took $(python3 -c "print(round($EPOCHREALTIME - $t0, 2))")s"
# expected_ls NETWORK N PREFIX: the lease ls lines the adds' outputs imply.
expected_ls() {
  local i a lines
  for ((i = 1; i <= $2; i++)); do
    mapfile -t lines <"$TEST_TMP/$3.$i.out"
    for a in "${lines[@]}"; do echo "$1 ${a%%/*} $3$i"; done
  done | sort
}
for ((i = 1; i <= 64; i++)); do
  mapfile -t lines <"$TEST_TMP/own.$i.out"
  assert_eq "${#lines[@]}" 1 "lease add own$i prints one address (single-stack network)"
done
cat "$TEST_TMP"/own.*.out >"$TEST_TMP/all"
assert_eq "$(check_addrs 10.20.30.0/24 10.20.30.1 <"$TEST_TMP/all")" 64 "distinct addresses"

# lease ls agrees with what each process printed.
lease_list par | sort >"$TEST_TMP/ls"
expected_ls par 64 own >"$TEST_TMP/expected"
diff "$TEST_TMP/expected" "$TEST_TMP/ls" || fail "lease ls par differs from the addresses lease add printed"
assert_eq "$(lease_list | sort)" "$(cat "$TEST_TMP/ls")" "lease ls without a network"

expect_rm_refused() { assert_fails ipvnet network rm par; assert_contains "$ERR" par; }
expect_rm_refused

echo "### all released at once"
assert_eq "$(par_rm 64 own)" 0 "failed lease rms"
assert_eq "$(lease_list par)" "" "lease ls par after releasing everything"
assert_eq "$(lease_list)" "" "lease ls after releasing everything"
assert_ok ipvnet lease rm --owner own1

echo "### and again: released addresses are usable"
assert_eq "$(par_add par 64 again)" 0 "failed lease adds (second round)"
cat "$TEST_TMP"/again.*.out | check_addrs 10.20.30.0/24 10.20.30.1 >/dev/null
assert_eq "$(par_rm 64 again)" 0
assert_ok ipvnet network rm par

echo "### exhaustion under contention: a /29 with a gateway has 5 addresses for 8 callers"
assert_ok ipvnet network create --internal --subnet 10.20.31.0/29 --gateway 10.20.31.1 small
bad=$(par_add small 8 sm)
assert_eq "$bad" 3 "lease adds refused on a full /29"
cat "$TEST_TMP"/sm.*.out >"$TEST_TMP/small"
assert_eq "$(check_addrs 10.20.31.0/29 10.20.31.1 <"$TEST_TMP/small")" 5
assert_eq "$(lease_list small | wc -l)" 5
assert_eq "$(par_rm 8 sm)" 0
assert_eq "$(lease_list small)" ""
assert_ok ipvnet network rm small

echo "### dual stack: one IPv4 and one IPv6 address per lease"
assert_ok ipvnet network create --internal --subnet 10.20.32.0/24 --gateway 10.20.32.1 \
  --subnet fd00:20:32::/64 --gateway fd00:20:32::1 dual
assert_eq "$(par_add dual 16 du)" 0
for ((i = 1; i <= 16; i++)); do
  mapfile -t lines <"$TEST_TMP/du.$i.out"
  assert_eq "${#lines[@]}" 2 "lease add on a dual-stack network prints two addresses"
done
cat "$TEST_TMP"/du.*.out | grep -v : | check_addrs 10.20.32.0/24 10.20.32.1 >/dev/null
cat "$TEST_TMP"/du.*.out | grep : | check_addrs fd00:20:32::/64 fd00:20:32::1 >/dev/null
lease_list dual | sort >"$TEST_TMP/ls"
expected_ls dual 16 du >"$TEST_TMP/expected"
diff "$TEST_TMP/expected" "$TEST_TMP/ls" || fail "lease ls dual differs from the addresses lease add printed"
assert_eq "$(par_rm 16 du)" 0
assert_eq "$(lease_list)" ""
assert_ok ipvnet network rm dual
echo "t-ipam-parallel OK"
