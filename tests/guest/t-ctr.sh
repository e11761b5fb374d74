#!/bin/bash
# containerd 1.7 (Debian 13's package) and ipvnet-runc: `ctr run` with and
# without the annotation, the ways ctr reaches the wrapper, and BinaryName:
#  1. `ctr run --rm --runc-binary ipvnet-runc --annotation ipvnet.network=N`:
#     eth0 with an address of N, the gateway as default route, the gateway
#     answers; after --rm: no lease, no endpoint record. ipvnet.ip is honoured.
#  2. the same without the annotation: only lo, nothing leased.
#  3. the annotation with plain runc (no wrapper): nothing happens.
#  4. `ctr run -d`: the lease is held (owner = container id) while the task
#     runs, in the test's IPVNET_STATE_DIR (containerd's environment reaches
#     shim, wrapper and hook), and released by `ctr task delete`.
#  5. BinaryName = ipvnet-runc in the CRI runc runtime options: ctr does NOT
#     use it (ctr always sends its own runc options); a CRI pod annotated
#     ipvnet.network does go through the wrapper: eth1 next to CNI's eth0,
#     released when the pod is removed.
#  6. a `runc` symlink to ipvnet-runc ahead of the real runc in containerd's
#     PATH: plain `ctr run` goes through the wrapper.
# timeout: 900
. "$(dirname "$0")/containerd-lib.sh"
PS4='+ [${SECONDS}s] '

wrapper=$(command -v ipvnet-runc) || fail "ipvnet-runc is not on PATH"
upstream_router rtr up0 192.168.80.1/24
assert_ok ipvnet network create -d ipvlan --subnet 192.168.80.0/24 --gateway 192.168.80.1 \
  -o parent=up0 -o ipvlan_mode=l2 ctrnet

# released: no lease and no endpoint record left
released() {
  local l
  l=$(lease_list)
  [ -z "$l" ] || fail "leases left: $l"
  l=$(ls "$IPVNET_STATE_DIR/endpoints" 2>/dev/null || true)
  [ -z "$l" ] || fail "endpoint records left: $l"
}
show='ip -o addr; echo ---; ip route'
# addr4 OUTPUT DEV: the IPv4 address(es) of DEV in `ip -o addr` output
addr4() { printf '%s\n' "$1" | awk -v d="$2" '$2 == d && $3 == "inet" {sub(/\/.*/, "", $4); print $4}'; }

ctrd_start
ctr_ version

echo "### 1. --runc-binary + annotation"
assert_ok ctr_ run --rm --runc-binary "$wrapper" --cap-add CAP_NET_RAW \
  --annotation ipvnet.network=ctrnet "$CTRD_IMAGE" c1 \
  sh -c "$show; echo ---; ping -c 1 -W 5 192.168.80.1 >/dev/null && echo GATEWAY-OK"
echo "$OUT"
a=$(addr4 "$OUT" eth0)
assert_match "$a" '^192\.168\.80\.([2-9]|[1-9][0-9]+)$' "c1's eth0 address"
assert_match "$OUT" '^default via 192\.168\.80\.1 dev eth0' "c1's default route"
assert_match "$OUT" '^192\.168\.80\.0/24 dev eth0' "c1's subnet route"
assert_contains "$OUT" GATEWAY-OK "c1 reaches the gateway"
released

assert_ok ctr_ run --rm --runc-binary "$wrapper" --annotation ipvnet.network=ctrnet \
  --annotation ipvnet.ip=192.168.80.50 "$CTRD_IMAGE" c1b sh -c "$show"
assert_eq "$(addr4 "$OUT" eth0)" 192.168.80.50 "static ipvnet.ip"
released

echo "### 2. --runc-binary without the annotation"
assert_ok ctr_ run --rm --runc-binary "$wrapper" "$CTRD_IMAGE" c2 sh -c "$show"
assert_eq "$(printf '%s\n' "$OUT" | awk '$3 == "inet" || $3 == "inet6" {print $2}' | sort -u)" lo \
  "c2 has only lo"
released

echo "### 3. the annotation with plain runc"
assert_ok ctr_ run --rm --annotation ipvnet.network=ctrnet "$CTRD_IMAGE" c3 sh -c "$show"
assert_not_contains "$OUT" eth0 "plain runc: no ipvnet interface"
released

echo "### 4. ctr run -d: lease held while the task runs, released by task delete"
assert_ok ctr_ run -d --runc-binary "$wrapper" --annotation ipvnet.network=ctrnet \
  "$CTRD_IMAGE" c4 sleep 3600
l=$(lease_list ctrnet)
assert_match "$l" '^ctrnet 192\.168\.80\.[0-9]+ c4$' "c4's lease in $IPVNET_STATE_DIR"
[ -f "$IPVNET_STATE_DIR/endpoints/c4.json" ] || fail "no endpoint record for c4"
assert_ok ctr_ tasks exec --exec-id x1 c4 ip -o -4 addr show dev eth0
assert_contains "$OUT" "$(echo "$l" | awk '{print $2}')/24" "c4 holds its leased address"
[ ! -e /var/lib/ipvnet/endpoints/c4.json ] || fail "the hook used /var/lib/ipvnet, not IPVNET_STATE_DIR"
assert_ok ctr_ tasks kill -s KILL c4
wait_until 30 sh -c "ctr --address $CTRD_SOCK tasks ls | grep -q 'c4 .*STOPPED'"
assert_ok ctr_ tasks delete c4
released
assert_ok ctr_ containers delete c4

echo "### 5. BinaryName in the CRI runc options: not used by ctr, used by CRI"
ctrd_restart binary_name="$wrapper" nri=0
assert_ok ctr_ run --rm --annotation ipvnet.network=ctrnet "$CTRD_IMAGE" c5 sh -c "$show"
assert_not_contains "$OUT" eth0 "ctr with BinaryName set for CRI: no wrapper, no interface"
released
assert_ok ctr_ run --rm --runc-binary "$wrapper" --annotation ipvnet.network=ctrnet \
  "$CTRD_IMAGE" c5b sh -c "$show"
assert_match "$(addr4 "$OUT" eth0)" '^192\.168\.80\.' "--runc-binary still works"
released

# A CRI pod on that containerd: the wrapper hooks the sandbox (pause) container.
assert_ok ipvnet network create --subnet 172.30.5.0/24 -o k8s_namespaces='*' podnet5
assert_ok cri run-pod --name p5 --namespace default --uid uid-p5 --annotation ipvnet.network=podnet5
pod=$OUT
l=$(lease_list podnet5)
assert_match "$l" "^podnet5 172\\.30\\.5\\.[0-9]+ $pod\$" "the pod's lease is owned by the sandbox"
assert_ok cri create-container "$pod" --name app --image "$CTRD_IMAGE" -- sleep 3600
ctrid=$OUT
assert_ok cri start "$ctrid"
assert_ok cri exec-sync "$ctrid" sh -c "$show"
echo "$OUT"
assert_match "$(addr4 "$OUT" eth0)" '^10\.88\.' "CNI's eth0"
assert_eq "$(addr4 "$OUT" eth1)" "$(echo "$l" | awk '{print $2}')" "ipvnet's eth1 holds the lease"
assert_match "$OUT" '^default via 10\.88\.0\.1 dev eth0' "the default route stays CNI's"
assert_eq "$(lease_list podnet5 | wc -l)" 1 "the app container took no lease of its own"
assert_ok cri stop-pod "$pod"
assert_ok cri remove-pod "$pod"
released

echo "### 6. runc -> ipvnet-runc ahead of the real runc in containerd's PATH"
mkdir -p "$TEST_TMP/wrapbin"
ln -sf "$wrapper" "$TEST_TMP/wrapbin/runc"
ctrd_restart path="$TEST_TMP/wrapbin" nri=0
assert_ok ctr_ run --rm --cap-add CAP_NET_RAW --annotation ipvnet.network=ctrnet "$CTRD_IMAGE" c6 \
  sh -c "$show; ping -c 1 -W 5 192.168.80.1 >/dev/null && echo GATEWAY-OK"
assert_match "$(addr4 "$OUT" eth0)" '^192\.168\.80\.' "c6 through the runc symlink"
assert_contains "$OUT" GATEWAY-OK
released
assert_ok ctr_ run --rm "$CTRD_IMAGE" c6b sh -c "$show"
assert_not_contains "$OUT" eth0 "no annotation: untouched"
released
echo "t-ctr: all done"
