#!/bin/bash
# The OCI hook with real runc and crun containers: 32 containers started in
# parallel on one network (issue 3, scenario 11) get 32 distinct addresses,
# as seen inside each container and by `network inspect`, and give them all
# back when removed. runc's 32 first, then crun's 32. Prints TIMING lines.
# timeout: 1500
. "$(dirname "$0")/hook-lib.sh"
PS4='+ [${SECONDS}s] '
N=${HOOK_PARALLEL:-32}

upstream_router rtr up0 192.168.50.1/24
assert_ok ipvnet network create --subnet 192.168.50.0/24 -o parent=up0 par

# N bundles: copies of one config.json, each with its own hook.out/err.
hk_bundle p-base ipvnet.network=par
for i in $(seq "$N"); do
  mkdir -p "/tmp/bundles/p$i"
  sed "s#/tmp/bundles/p-base/#/tmp/bundles/p$i/#g" /tmp/bundles/p-base/config.json >"/tmp/bundles/p$i/config.json"
done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# par_all CMD-TEMPLATE: run `eval CMD` for i = 1..N in parallel (i is set),
# stdout in $TEST_TMP/job.$i, stderr in job.$i.err; fails listing the jobs that failed.
par_all() {
  local i pids=() bad=()
  for i in $(seq "$N"); do
    (eval "$1") >"$TEST_TMP/job.$i" 2>"$TEST_TMP/job.$i.err" &
    pids+=($!)
  done
  for i in $(seq "$N"); do
    wait "${pids[i - 1]}" || bad+=("$i: $(tail -n 8 "$TEST_TMP/job.$i.err")")
  done
  ((${#bad[@]} == 0)) || fail "$((${#bad[@]})) of $N jobs failed [$1]:
$(printf '%s\n' "${bad[@]}")"
}

for RUNTIME in $HOOK_RUNTIMES; do
  export RUNTIME
  r=$RUNTIME
  echo "################ runtime $r: $N containers at once"
  t0=$(now)
  par_all 'container_create "p$i" "p$i-$r" && container_start "p$i-$r"'
  t_start=$(since "$t0")

  # Addresses as each container sees them.
  par_all 'container_exec "p$i-$r" ip -o -4 addr show dev eth0'
  inside=$(for i in $(seq "$N"); do
    awk '{for (j = 1; j < NF; j++) if ($j == "inet") print $(j + 1)}' "$TEST_TMP/job.$i" | cut -d/ -f1
  done | sort)
  assert_eq "$(printf '%s\n' "$inside" | grep -c '^192\.168\.50\.')" "$N" "one 192.168.50.x address per container: $inside"
  assert_eq "$(printf '%s\n' "$inside" | sort -u | grep -c .)" "$N" "distinct addresses: $(printf '%s\n' "$inside" | uniq -d)"
  ! printf '%s\n' "$inside" | grep -qx 192.168.50.1 || fail "the gateway 192.168.50.1 was handed out"
  # The same addresses in the store and in inspect.
  leased=$(lease_list par | awk '{print $2}' | sort)
  assert_eq "$leased" "$inside" "leases = addresses inside"
  owners=$(lease_list par | awk '{print $3}' | sort -u | grep -c "^p[0-9]*-$r\$")
  assert_eq "$owners" "$N" "one lease per container"
  inspected=$(ipvnet network inspect par |
    json '"\n".join(sorted(c["IPv4Address"].split("/")[0] for c in d[0]["Containers"].values()))')
  assert_eq "$inspected" "$inside" "network inspect = addresses inside"
  hk_ping "p1-$r" "$(printf '%s\n' "$inside" | tail -n1)" 192.168.50.1

  t0=$(now)
  par_all 'container_rm "p$i-$r"'
  t_rm=$(since "$t0")
  hk_released
  assert_eq "$(grep -c '#' "$IPVNET_STATE_DIR/hosts/par" || true)" 0 "hosts file emptied"
  ! ip -o link show | grep -q ipvt || fail "a temporary ipvt* link is left in the host namespace"
  echo "TIMING $r: $N containers created+started in parallel in ${t_start}s, removed in parallel in ${t_rm}s"
done
assert_ok ipvnet network rm par
echo "t-hook-parallel OK"
