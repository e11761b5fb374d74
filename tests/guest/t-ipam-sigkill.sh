#!/bin/bash
# IPAM crash safety: lease add/rm processes SIGKILLed at random points (200
# rounds, two processes per round) must leave state that loads, holds no
# address twice, names only owners that were used, does not block later
# callers, and empties after `lease rm --owner` for every owner. A static
# --ip that is taken is refused.
# timeout: 600
. "$(dirname "$0")/lib.sh"

ROUNDS=${SIGKILL_ROUNDS:-200}
OWNERS=16
SUBNET=10.40.0.0/24 GW=10.40.0.1

assert_ok ipvnet network create --internal --subnet $SUBNET --gateway $GW sk

# A sleep without exec (an exec costs ~100 ms here): read with a timeout on
# a FIFO nobody writes.
mkfifo "$TEST_TMP/never"
exec 9<>"$TEST_TMP/never"
nap() { read -r -t "$1" -u 9 _ || true; }

# Calibrate: how long does a lease add/rm take in this guest?
t0=$EPOCHREALTIME
for i in 1 2 3 4 5; do
  ipvnet lease add sk --owner calib >/dev/null
  ipvnet lease rm --owner calib >/dev/null
done
per_op=$(python3 -c "print(($EPOCHREALTIME - $t0) / 10)")
max_us=$(python3 -c "print(max(20000, int($per_op * 1.6e6)))")
echo "one lease operation takes ${per_op}s; kills come after 0..${max_us}us"
[ -z "$(lease_list)" ] || fail "calibration left leases: $(lease_list)"

declare -A used=([calib]=1)
killed=0 finished=0 failed_ops=0
for ((r = 1; r <= ROUNDS; r++)); do
  pids=()
  for k in 1 2; do
    o=k$((RANDOM % OWNERS))
    used[$o]=1
    if ((RANDOM % 3)); then
      ipvnet lease add sk --owner "$o" >/dev/null 2>>"$TEST_TMP/op.err" &
    else
      ipvnet lease rm --owner "$o" >/dev/null 2>>"$TEST_TMP/op.err" &
    fi
    pids+=($!)
  done
  d=$(((RANDOM * 32768 + RANDOM) % max_us))
  nap "$(printf '%d.%06d' $((d / 1000000)) $((d % 1000000)))"
  kill -9 "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do
    rc=0
    wait "$p" 2>/dev/null || rc=$?
    case $rc in
      0) finished=$((finished + 1)) ;;
      137) killed=$((killed + 1)) ;;
      *) failed_ops=$((failed_ops + 1)) ;;
    esac
  done
done
echo "$((2 * ROUNDS)) processes: $killed killed, $finished finished, $failed_ops failed by themselves"
if ((failed_ops)); then
  echo "errors of the operations that failed by themselves:"
  sort "$TEST_TMP/op.err" | uniq -c | sort -rn | head -n 20
fi
# The test means something only if both outcomes happened often.
((killed >= 20)) || fail "only $killed processes were killed mid-way: the kills came too late"
((finished >= 20)) || fail "only $finished processes finished: the kills came too early"

echo "### the state loads and is consistent"
assert_ok ipvnet lease ls
assert_ok ipvnet lease ls sk
lease_list sk >"$TEST_TMP/ls"
echo "$(wc -l <"$TEST_TMP/ls") leases survive"
cat "$TEST_TMP/ls"
python3 - "$TEST_TMP/ls" "$SUBNET" "$GW" "${!used[@]}" <<'EOF' || fail "inconsistent lease state"
import collections, ipaddress, sys
path, subnet, gw, owners = sys.argv[1], ipaddress.ip_network(sys.argv[2]), ipaddress.ip_address(sys.argv[3]), set(sys.argv[4:])
rows = [l.split() for l in open(path) if l.strip()]
bad = []
count = collections.Counter(r[1] for r in rows)
bad += [f"address {a} listed {n} times" for a, n in count.items() if n > 1]
for r in rows:
    if len(r) != 3:
        bad.append(f"malformed line {r}")
        continue
    net, a, owner = r[0], ipaddress.ip_address(r[1]), r[2]
    if net != "sk":
        bad.append(f"lease on unknown network {net}")
    if a not in subnet or a in (subnet.network_address, subnet.broadcast_address, gw):
        bad.append(f"address {a} is not a usable address of {subnet}")
    if owner not in owners:
        bad.append(f"owner {owner} was never used")
if bad:
    sys.exit("\n".join(bad))
EOF

echo "### nothing is left locked: new callers go through"
assert_ok timeout 60 ipvnet lease add sk --owner fresh
used[fresh]=1
fresh=$(printf '%s\n' "$OUT" | head -n1 | cut -d/ -f1)
grep -q " $fresh " "$TEST_TMP/ls" && fail "fresh lease $fresh was already leased"

echo "### a static address that is taken is refused"
static=10.40.0.250
if grep -q " $static " "$TEST_TMP/ls" || [ "$fresh" == "$static" ]; then static=10.40.0.251; fi
assert_ok ipvnet lease add sk --owner s1 --ip $static
used[s1]=1
assert_eq "$(printf '%s\n' "$OUT" | head -n1 | cut -d/ -f1)" $static "lease add --ip prints the requested address"
assert_fails ipvnet lease add sk --owner s2 --ip $static
assert_contains "$ERR" $static
assert_fails ipvnet lease add sk --owner s2 --ip "$fresh"
assert_contains "$ERR" "$fresh"
assert_fails ipvnet lease add sk --owner s2 --ip 10.41.0.5
assert_contains "$ERR" 10.41.0.5
assert_fails ipvnet lease add sk --owner s2 --ip $GW
assert_contains "$ERR" $GW
assert_eq "$(lease_list sk | grep -c ' s2$' || true)" 0 "refused static leases left a lease behind"

echo "### releasing every owner empties the state"
for o in "${!used[@]}" s2; do
  assert_ok timeout 60 ipvnet lease rm --owner "$o"
done
assert_eq "$(lease_list)" "" "lease ls after releasing every owner"
assert_ok ipvnet lease rm --owner k0
assert_ok ipvnet network rm sk
echo "t-ipam-sigkill OK"
