#!/bin/bash
# The ipvnet NRI plugin with containerd 1.7 (NRI enabled) and CRI pods driven
# by tests/cri-client; CNI's bridge gives every pod eth0, ipvnet adds eth1:
#  1. two pods annotated ipvnet.network=podnet, in two namespaces the network
#     allows, get eth1 with a lease owned by the pod id, keep CNI's default
#     route, and reach each other over eth1 (ipvlan);
#  2. a pod of a namespace the network does not allow (and one on a network
#     without k8s_namespaces) fails, with a message naming the network and the
#     namespace; nothing is leased; an unannotated pod is left alone;
#  3. the plugin is killed (SIGKILL) and restarted while a pod runs: the
#     restarted plugin's Synchronize keeps the pod's lease; removing the pod
#     then releases it;
#  4. a pod removed while the plugin is down (attached more than a minute
#     before, past the plugin's Synchronize grace) is released by Synchronize
#     when the plugin comes back; live pods keep their leases;
#  5. the pre-registered layout: containerd starts $plugin_path/10-ipvnet
#     itself, its conf.d file names the state dir; a pod gets eth1, removing
#     it releases the lease. (containerd 1.7.24, NRI v0.6.1, sends no
#     Synchronize to a pre-registered plugin: only external plugins get one.)
# timeout: 1200
. "$(dirname "$0")/containerd-lib.sh"
PS4='+ [${SECONDS}s] '

NRI_PID= NRI_N=0 NRI_LOG=
nri_start() {
  NRI_N=$((NRI_N + 1))
  NRI_LOG=$TEST_TMP/nri-$NRI_N.log
  ipvnet nri --socket "$NRI_SOCKET" --log-file "$NRI_LOG" --debug </dev/null >/dev/null 2>>"$NRI_LOG" &
  NRI_PID=$!
  wait_until 60 grep -q 'synchronize:' "$NRI_LOG"
  grep 'synchronize:' "$NRI_LOG" >&2
}
nri_kill() {
  [ -n "$NRI_PID" ] || return 0
  kill -KILL "$NRI_PID" 2>/dev/null || true
  wait "$NRI_PID" 2>/dev/null || true
  NRI_PID=
}
nri_dump() {
  local f
  for f in "$TEST_TMP"/nri-*.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last lines) -----" >&2
    tail -n 40 "$f" >&2
  done
}
on_exit nri_kill
on_exit '[ "${rc:-1}" == 0 ] || nri_dump'

# pod_run NAME NAMESPACE [ANNOTATION...]: POD = its id (the test fails if not READY)
pod_run() {
  local name=$1 ns=$2 a args=()
  shift 2
  for a in "$@"; do args+=(--annotation "$a"); done
  assert_ok cri run-pod --name "$name" --namespace "$ns" --uid "uid-$name" "${args[@]}"
  POD=$OUT
  assert_ok cri pod-status "$POD"
  assert_match "$OUT" "^$POD READY 10\\.88\\." "pod $name is ready with CNI's address"
}
# app_run POD NAME: CTR = a running busybox container in the pod
app_run() {
  assert_ok cri create-container "$1" --name "$2" --image "$CTRD_IMAGE" --cap-add NET_RAW -- sleep 3600
  CTR=$OUT
  assert_ok cri start "$CTR"
}
# in_ctr CTR CMD...: exec-sync, the test fails on a non-zero status; output in OUT
in_ctr() { assert_ok cri exec-sync "$@"; }
addr4() { printf '%s\n' "$1" | awk -v d="$2" '$2 == d && $3 == "inet" {sub(/\/.*/, "", $4); print $4}'; }
lease_of() { lease_list | awk -v o="$1" '$3 == o {print $2}'; }
pod_gone() {
  cri stop-pod "$1" && cri remove-pod "$1"
}
show='ip -o addr; echo ---; ip route'

assert_ok ipvnet network create --subnet 172.30.0.0/24 -o k8s_namespaces=team-a,team-b podnet
assert_ok ipvnet network create --subnet 172.30.1.0/24 closed

ctrd_start
nri_start

echo "### 4 (setup). pod C, to be removed while the plugin is down"
pod_run pc team-b ipvnet.network=podnet
pod_c=$POD t_c=$SECONDS
ip_c=$(lease_of "$pod_c")
assert_match "$ip_c" '^172\.30\.0\.[0-9]+$' "pod C's lease"

echo "### 1. two pods on podnet reach each other over ipvlan"
pod_run pa team-a ipvnet.network=podnet
pod_a=$POD
app_run "$pod_a" app
ctr_a=$CTR
pod_run pb team-b ipvnet.network=podnet ipvnet.ip=172.30.0.77
pod_b=$POD
app_run "$pod_b" app
ctr_b=$CTR

in_ctr "$ctr_a" sh -c "$show"
echo "$OUT"
ip_a=$(addr4 "$OUT" eth1)
assert_match "$(addr4 "$OUT" eth0)" '^10\.88\.' "pod A: CNI's eth0"
assert_match "$ip_a" '^172\.30\.0\.[0-9]+$' "pod A: ipvnet's eth1"
assert_match "$OUT" '^default via 10\.88\.0\.1 dev eth0' "pod A: CNI's default route"
assert_match "$OUT" '^172\.30\.0\.0/24 dev eth1' "pod A: the subnet route on eth1"
assert_eq "$(printf '%s\n' "$OUT" | grep -c '^default' || true)" 1 "pod A: one default route"
assert_eq "$(lease_of "$pod_a")" "$ip_a" "pod A's lease is owned by the pod id"

in_ctr "$ctr_b" sh -c "$show"
assert_eq "$(addr4 "$OUT" eth1)" 172.30.0.77 "pod B: ipvnet.ip"
assert_eq "$(lease_of "$pod_b")" 172.30.0.77 "pod B's lease"
assert_eq "$(lease_list podnet | wc -l)" 3 "three pods, three leases (no lease for app containers)"

in_ctr "$ctr_a" ip route get 172.30.0.77
assert_contains "$OUT" "dev eth1" "A reaches B through eth1"
in_ctr "$ctr_a" ping -c 2 -W 5 172.30.0.77
in_ctr "$ctr_b" ping -c 2 -W 5 "$ip_a"
in_ctr "$ctr_b" ping -c 1 -W 5 "$ip_c"

echo "### 2. admission: namespaces the network does not allow"
before=$(lease_list; ls "$IPVNET_STATE_DIR/endpoints")
assert_fails cri run-pod --name px --namespace team-x --uid uid-px --annotation ipvnet.network=podnet
assert_contains "$ERR" 'network "podnet"' "the message names the network"
assert_contains "$ERR" 'namespace "team-x"' "the message names the namespace"
assert_fails cri run-pod --name py --namespace team-a --uid uid-py --annotation ipvnet.network=closed
assert_contains "$ERR" 'network "closed"'
assert_contains "$ERR" 'namespace "team-a"'
assert_eq "$(lease_list; ls "$IPVNET_STATE_DIR/endpoints")" "$before" "a refused pod takes nothing"
assert_ok cri list-pods
assert_not_contains "$OUT" "team-x/px READY" "the refused pod does not run"
assert_not_contains "$OUT" "team-a/py READY"

pod_run pn team-x
pod_n=$POD
assert_eq "$(lease_of "$pod_n")" "" "an unannotated pod has no lease"
assert_ok pod_gone "$pod_n"

echo "### 3. kill -9 and restart the plugin while pod A runs, then remove A"
nri_kill
nri_start
assert_contains "$(grep 'synchronize:' "$NRI_LOG")" "released 0 stale" "the restarted plugin keeps live pods"
assert_eq "$(lease_of "$pod_a")" "$ip_a" "pod A keeps its lease over the restart"
in_ctr "$ctr_a" ping -c 1 -W 5 172.30.0.77
assert_ok pod_gone "$pod_a"
assert_eq "$(lease_of "$pod_a")" "" "removing A after the restart released its lease"
[ ! -e "$IPVNET_STATE_DIR/endpoints/$pod_a.json" ] || fail "pod A's record is left"

echo "### 4. pod C removed while the plugin is down: Synchronize releases it"
nri_kill
assert_ok pod_gone "$pod_c"
assert_eq "$(lease_of "$pod_c")" "$ip_c" "nobody released C while the plugin was down"
# Synchronize spares records attached less than a minute ago.
left=$((t_c + 62 - SECONDS))
if ((left > 0)); then sleep "$left"; fi
nri_start
assert_contains "$(grep 'synchronize:' "$NRI_LOG")" "released 1 stale"
assert_eq "$(lease_of "$pod_c")" "" "Synchronize released pod C"
[ ! -e "$IPVNET_STATE_DIR/endpoints/$pod_c.json" ] || fail "pod C's record is left"
assert_eq "$(lease_of "$pod_b")" 172.30.0.77 "the live pod B keeps its lease"
assert_ok pod_gone "$pod_b"
assert_eq "$(lease_list)" "" "no lease left"
assert_eq "$(ls "$IPVNET_STATE_DIR/endpoints")" "" "no record left"

echo "### 5. the pre-registered plugin (containerd starts it)"
nri_kill
ln -sf "$(command -v ipvnet)" "$TEST_TMP/nri/plugins/10-ipvnet"
printf 'state_dir = %s\nlog_file = %s\ndebug = true\n' "$IPVNET_STATE_DIR" "$TEST_TMP/nri-pre.log" \
  >"$TEST_TMP/nri/conf.d/10-ipvnet.conf"
ctrd_restart
# The plugin opens the conf.d log file at Configure (no Synchronize follows here).
wait_until 60 test -e "$TEST_TMP/nri-pre.log"
pod_run pp team-a ipvnet.network=podnet
pod_p=$POD
app_run "$pod_p" app
in_ctr "$CTR" sh -c "$show"
ip_p=$(addr4 "$OUT" eth1)
assert_match "$ip_p" '^172\.30\.0\.[0-9]+$' "pre-registered: eth1"
assert_eq "$(lease_of "$pod_p")" "$ip_p" "pre-registered: the lease, in the conf.d state_dir"
assert_ok pod_gone "$pod_p"
assert_eq "$(lease_list)" "" "pre-registered: released"
# How long the plugin's attachments took (its budget: ~2 s, containerd 1.7's
# NRI v0.6 does not tell the plugin the configured request timeout).
grep -h 'attached in' "$TEST_TMP"/nri-*.log >&2 || true
echo "t-nri: all done"
