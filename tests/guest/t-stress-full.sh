#!/bin/bash
# A full subnet (issue 5): a /29 with a gateway holds 5 containers; the next
# createRuntime fails with the store's "no free address in NET" and changes
# nothing (links, state files and their contents, leases, the refused
# container's namespace). Once one container is detached, the refused one
# attaches and gets exactly the freed address. The hook is driven directly
# with runc-like state on stdin; each container is an `unshare -n sleep`.
# timeout: 180
. "$(dirname "$0")/lib.sh"

upstream_router rtr sf0 10.63.0.1/29
assert_ok ipvnet network create --subnet 10.63.0.0/29 --gateway 10.63.0.1 -o parent=sf0 full
bundle=$TEST_TMP/bundle
mkdir -p "$bundle"
cat >"$bundle/config.json" <<'EOF'
{"ociVersion": "1.0.2", "process": {"args": ["sleep", "600"], "cwd": "/"}, "root": {"path": "rootfs"},
 "annotations": {"ipvnet.network": "full"}, "linux": {"namespaces": [{"type": "network"}]}}
EOF
self_ns=$(readlink /proc/self/ns/net)

declare -A pid=()
# holder ID: a process in a new network namespace (waits until it is there).
holder() {
  unshare -n sleep 600 &
  pid[$1]=$!
  wait_until 10 ns_ready "${pid[$1]}"
}
ns_ready() { [ "$(readlink "/proc/$1/ns/net")" != "$self_ns" ]; }
state() { printf '{"ociVersion":"1.0.2","id":"%s","status":"%s",%s"bundle":"%s"}' "$1" "$2" "$3" "$bundle"; }
create() { state "$1" creating "\"pid\":${pid[$1]}," | ipvnet hook createRuntime; }
poststop() { state "$1" stopped "" | ipvnet hook poststop; }
# ns_addrs ID: the IPv4 addresses inside the container's namespace, sorted.
ns_addrs() { nsenter -t "${pid[$1]}" -n ip -o -4 addr show | awk '{print $4}' | cut -d/ -f1 | sort; }

echo "### five containers fill the /29"
for i in 1 2 3 4 5; do
  holder "f$i"
  assert_ok create "f$i"
done
declare -A addr=()
for i in 1 2 3 4 5; do
  addr[f$i]=$(ns_addrs "f$i")
  assert_match "${addr[f$i]}" '^10\.63\.0\.[2-6]$' "the address of f$i"
done
assert_eq "$(printf '%s\n' "${addr[@]}" | sort -u | wc -l)" 5 "five distinct addresses"
assert_eq "$(lease_list full | wc -l)" 5 "leases on the full network"

# Everything the refused attach could touch: links, state files with their
# contents, leases. The bitmap's first word is its next-fit cursor (where the
# next search starts, a position hint): its free/taken bits are compared.
full_state() {
  snapshot
  echo "# contents"
  (cd "$IPVNET_STATE_DIR" && find . -type f ! -name lock ! -name '*.bitmap' | sort | xargs md5sum)
  for b in "$IPVNET_STATE_DIR"/ipam/*/*.bitmap; do
    echo "$b $(tail -c +9 "$b" | md5sum)"
  done
  echo "# leases"
  ipvnet lease ls
}
before=$(full_state)

echo "### the sixth is refused and nothing changes"
holder f6
assert_fails create f6
assert_contains "$ERR" "no free address in full"
assert_contains "$ERR" "f6"
after=$(full_state)
[ "$after" == "$before" ] || fail "the refused attach changed something:
$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))"
assert_eq "$(nsenter -t "${pid[f6]}" -n ip -o link show | awk -F': ' '{print $2}')" lo "links in the refused container's namespace"
# runc runs poststop after a failed createRuntime: harmless.
assert_ok poststop f6
after=$(full_state)
[ "$after" == "$before" ] || fail "poststop of the refused container changed something:
$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))"

echo "### once one leaves, the refused one gets exactly its address"
kill -9 "${pid[f3]}"
wait "${pid[f3]}" 2>/dev/null || true
assert_ok poststop f3
assert_ok create f6
assert_eq "$(ns_addrs f6)" "${addr[f3]}" "the address f6 got"
assert_fails ipvnet lease add full --owner extra
assert_contains "$ERR" "no free address in full"

echo "### all leave"
for i in 1 2 4 5 6; do
  kill -9 "${pid[f$i]}"
  wait "${pid[f$i]}" 2>/dev/null || true
  assert_ok poststop "f$i"
done
assert_eq "$(lease_list)" "" "leases after every container left"
assert_eq "$(ls -A "$IPVNET_STATE_DIR/endpoints")" "" "records after every container left"
assert_ok ipvnet network rm full
echo "t-stress-full OK"
