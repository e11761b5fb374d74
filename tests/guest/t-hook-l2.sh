#!/bin/bash
# The OCI hook with real runc and crun containers, L2 networks (issue 3,
# scenarios 1, 2, 5, 9, 12), plus a container without the annotation:
#  1. two containers on an L2 network reach each other and the upstream
#     gateway, never the host's own address on the parent;
#  2. the gateway defaults to the first usable address: `default via` it;
#  5. multi-subnet L2, a static ipvnet.ip in the second subnet;
#  9. name resolution by container name (the network's hosts file mounted
#     at /etc/hosts), kept current as containers come and go;
# 12. two networks in one container: eth0 and eth1, one default route per
#     family (and an internal first network leaves it to the second).
# timeout: 900
. "$(dirname "$0")/hook-lib.sh"
PS4='+ [${SECONDS}s] '

# The upstream router on up0 holds the gateways of every subnet used here;
# up1 leads to a second router for the second network of scenario 12.
upstream_router rtr up0 192.168.50.1/24 2001:db8:50::1/64 192.168.60.1/24 \
  192.168.114.254/24 192.168.116.254/24
upstream_router rtr1 up1 192.168.70.1/24 2001:db8:70::1/64
# The host's own addresses on the parent: ipvlan L2 slaves cannot reach them.
ip addr add 192.168.50.254/24 dev up0
ip -6 addr add 2001:db8:50::fe/64 dev up0 nodad

assert_ok ipvnet network create -d ipvlan --subnet 192.168.50.0/24 --gateway 192.168.50.1 \
  --subnet 2001:db8:50::/64 --gateway 2001:db8:50::1 -o parent=up0 -o ipvlan_mode=l2 l2a
assert_ok ipvnet network create --subnet 192.168.60.0/24 -o parent=up0 gw60
assert_ok ipvnet network create --subnet 192.168.114.0/24 --subnet 192.168.116.0/24 \
  --gateway 192.168.114.254 --gateway 192.168.116.254 -o parent=up0 -o ipvlan_mode=l2 ms
assert_ok ipvnet network create --subnet 192.168.70.0/24 --subnet 2001:db8:70::/64 -o parent=up1 l2b
assert_ok ipvnet network create --internal --subnet 10.66.0.0/24 int66

echo "### 2. the gateway of gw60 defaults to the first usable address"
assert_eq "$(ipvnet network inspect gw60 | json 'd[0]["IPAM"]["Config"][0]["Gateway"]')" 192.168.60.1
assert_eq "$(ipvnet network inspect l2b | json '[c.get("Gateway") for c in d[0]["IPAM"]["Config"]]')" \
  '["192.168.70.1", "2001:db8:70::1"]'

for RUNTIME in $HOOK_RUNTIMES; do
  export RUNTIME
  r=$RUNTIME
  echo "################ runtime $r"

  echo "### 1. L2: two containers reach each other and the gateway, not the host ($r)"
  hk_run_many "c1-$r ipvnet.network=l2a" "c2-$r ipvnet.network=l2a"
  hk_info "c1-$r" "c2-$r"
  a1=$(hk_addr "c1-$r") a2=$(hk_addr "c2-$r")
  a16=$(hk_addr "c1-$r" eth0 6) a26=$(hk_addr "c2-$r" eth0 6)
  assert_match "$a1" '^192\.168\.50\.' "c1 IPv4"
  assert_match "$a2" '^192\.168\.50\.' "c2 IPv4"
  assert_match "$a16" '^2001:db8:50::' "c1 IPv6"
  assert_ne "$a1" "$a2" "two containers, two addresses"
  assert_ne "$a16" "$a26"
  eth0=$(hk_links "c1-$r" | grep ': eth0[:@]') || fail "no eth0 in c1-$r: $(hk_links "c1-$r")"
  assert_not_contains "$eth0" "NOARP" "an L2 slave does ARP"
  leases=$(lease_list l2a)
  assert_contains "$leases" "l2a $a1 c1-$r"
  assert_contains "$leases" "l2a $a2 c2-$r"
  assert_contains "$leases" "l2a $a16 c1-$r"
  [ -f "$IPVNET_STATE_DIR/endpoints/c1-$r.json" ] || fail "no endpoint record for c1-$r"
  routes=$(hk_routes "c1-$r") routes6=$(hk_routes "c1-$r" 6)
  assert_eq "$(hk_count_default "$routes")" 1 "one IPv4 default route: $routes"
  assert_match "$routes" '^default via 192\.168\.50\.1 dev eth0' "c1 IPv4 default route"
  assert_eq "$(hk_count_default "$routes6")" 1 "one IPv6 default route: $routes6"
  assert_match "$routes6" '^default via 2001:db8:50::1 dev eth0' "c1 IPv6 default route"
  hk_ping "c1-$r" "$a2" 192.168.50.1 "$a26" 2001:db8:50::1
  hk_ping "c2-$r" "$a1" 192.168.50.1 "$a16"
  # ipvlan isolation: the parent's own addresses are not reachable.
  hk_no_ping "c1-$r" 192.168.50.254 2001:db8:50::fe
  # No ipvnet link is left in the host namespace (temporary names included).
  ! ip -o link show | grep -q ipvt || fail "a temporary ipvt* link is left in the host namespace"
  ! ip -d -o link show | grep -q ipvlan || fail "an ipvlan link is in the host namespace"

  echo "### 2. default gateway = first usable address; 5. multi-subnet L2 with a static address in the second subnet ($r)"
  hk_run_many "g1-$r ipvnet.network=gw60" "s1-$r ipvnet.network=ms ipvnet.ip=192.168.116.10" \
    "s2-$r ipvnet.network=ms ipvnet.ip=192.168.114.10" "s3-$r ipvnet.network=ms"
  hk_info "g1-$r" "s1-$r" "s2-$r" "s3-$r"
  assert_match "$(hk_addr "g1-$r")" '^192\.168\.60\.([2-9]|[1-9][0-9]+)$' "g1 address (not the gateway .1)"
  assert_match "$(hk_routes "g1-$r")" '^default via 192\.168\.60\.1 dev eth0' "g1 default route"
  hk_ping "g1-$r" 192.168.60.1
  assert_eq "$(hk_addr "s1-$r")" 192.168.116.10
  assert_contains "$(_hk_section "s1-$r" ADDR)" "192.168.116.10/24"
  assert_eq "$(hk_addr "s2-$r")" 192.168.114.10
  a3=$(hk_addr "s3-$r")
  assert_match "$a3" '^192\.168\.114\.' "a dynamic address comes from the first subnet"
  assert_ne "$a3" 192.168.114.254 "the gateway is never handed out"
  assert_match "$(hk_routes "s1-$r")" '^default via 192\.168\.116\.254 dev eth0' \
    "s1 routes through the gateway of its own subnet"
  assert_match "$(hk_routes "s2-$r")" '^default via 192\.168\.114\.254 dev eth0'
  hk_ping "s1-$r" 192.168.116.254
  hk_ping "s2-$r" 192.168.114.254 "$a3"
  # Across subnets an L2 network needs the upstream router, which has both.
  hk_ping "s1-$r" 192.168.114.10
  hk_ping "s2-$r" 192.168.116.10
  assert_contains "$(lease_list ms)" "ms 192.168.116.10 s1-$r"
  hk_rm_many "g1-$r" "s1-$r" "s2-$r" "s3-$r"
  hk_released ms
  hk_released gw60

  echo "### 9. name resolution by container name ($r)"
  HK_HOSTS_NET=l2a hk_run_many "n1-$r ipvnet.network=l2a" "n2-$r ipvnet.network=l2a" \
    "n3-$r ipvnet.network=l2a ipvnet.hostname=web-$r"
  hk_info "n1-$r" "n3-$r"
  n1=$(hk_addr "n1-$r") n3=$(hk_addr "n3-$r")
  assert_ok container_exec "n2-$r" cat /etc/hosts
  hosts=$OUT
  assert_contains "$hosts" "localhost"
  assert_match "$hosts" "^$n1[[:space:]]+n1-$r([[:space:]]|\$)" "n1 in n2's /etc/hosts"
  assert_match "$hosts" "^$n3[[:space:]]+web-$r([[:space:]]|\$)" "n3 under its ipvnet.hostname"
  # (the id stays in the line's "# OWNER" comment, never as a name)
  ! printf '%s\n' "$hosts" | grep -Eq "^[^#]*[[:space:]]n3-$r([[:space:]]|\$)" ||
    fail "with ipvnet.hostname the id must not be a name: $hosts"
  # Every container sees every other, whenever it started: the file is
  # updated in place under the bind mounts.
  assert_ok container_exec "n1-$r" cat /etc/hosts
  assert_contains "$OUT" "web-$r"
  assert_contains "$OUT" "n2-$r"
  assert_ok container_exec "n2-$r" ping -c 1 -W 3 "n1-$r"
  assert_contains "$OUT" "($n1)" "ping resolved n1-$r to its address"
  assert_ok container_exec "n1-$r" ping -c 1 -W 3 "web-$r"
  assert_contains "$OUT" "($n3)"
  assert_ok container_exec "n3-$r" ping -c 1 -W 3 "c2-$r"
  assert_contains "$OUT" "($a2)" "containers without the mount are named too"
  assert_ok container_rm "n1-$r"
  assert_ok container_exec "n2-$r" cat /etc/hosts
  assert_not_contains "$OUT" "n1-$r" "a removed container's line stays in /etc/hosts"
  assert_fails container_exec "n2-$r" ping -c 1 -W 2 "n1-$r"
  assert_contains "$OUT$ERR" "bad address" "n1-$r no longer resolves"
  hk_rm_many "n2-$r" "n3-$r"

  echo "### 12. two networks in one container ($r)"
  hk_run_many "m1-$r ipvnet.network=l2a,l2b ipvnet.ip=192.168.70.20,192.168.50.20" \
    "m2-$r ipvnet.network=l2b,l2a" "m3-$r ipvnet.network=int66,l2a"
  hk_info "m1-$r" "m2-$r" "m3-$r"
  assert_eq "$(hk_addr "m1-$r" eth0)" 192.168.50.20 "eth0 is on l2a (first network)"
  assert_eq "$(hk_addr "m1-$r" eth1)" 192.168.70.20 "eth1 is on l2b, static address from its subnet"
  assert_match "$(hk_addr "m1-$r" eth0 6)" '^2001:db8:50::'
  assert_match "$(hk_addr "m1-$r" eth1 6)" '^2001:db8:70::'
  routes=$(hk_routes "m1-$r") routes6=$(hk_routes "m1-$r" 6)
  assert_eq "$(hk_count_default "$routes")" 1 "one IPv4 default route: $routes"
  assert_eq "$(hk_count_default "$routes6")" 1 "one IPv6 default route: $routes6"
  assert_match "$routes" '^default via 192\.168\.50\.1 dev eth0'
  assert_match "$routes6" '^default via 2001:db8:50::1 dev eth0'
  hk_ping "m1-$r" 192.168.50.1 192.168.70.1 2001:db8:50::1 2001:db8:70::1 "$a1"
  assert_contains "$(lease_list l2b)" "l2b 192.168.70.20 m1-$r"
  # The other order: the first network named gets the default routes.
  routes=$(hk_routes "m2-$r") routes6=$(hk_routes "m2-$r" 6)
  assert_eq "$(hk_count_default "$routes")" 1 "one IPv4 default route: $routes"
  assert_eq "$(hk_count_default "$routes6")" 1 "one IPv6 default route: $routes6"
  assert_match "$routes" '^default via 192\.168\.70\.1 dev eth0'
  assert_match "$routes6" '^default via 2001:db8:70::1 dev eth0'
  assert_match "$(hk_addr "m2-$r" eth1)" '^192\.168\.50\.'
  # An internal network first: no default route from it, l2a's on eth1.
  assert_match "$(hk_addr "m3-$r" eth0)" '^10\.66\.0\.'
  routes=$(hk_routes "m3-$r")
  assert_eq "$(hk_count_default "$routes")" 1 "one IPv4 default route: $routes"
  assert_match "$routes" '^default via 192\.168\.50\.1 dev eth1'
  hk_ping "m3-$r" 192.168.50.1
  hk_rm_many "m1-$r" "m2-$r" "m3-$r"

  echo "### a container without ipvnet annotations, hooks installed, starts untouched ($r)"
  hk_run "plain-$r"
  hk_info "plain-$r"
  links=$(hk_links "plain-$r")
  assert_eq "$(printf '%s\n' "$links" | grep -c .)" 1 "only lo in a plain container: $links"
  assert_contains "$links" ": lo:"
  [ ! -e "$IPVNET_STATE_DIR/endpoints/plain-$r.json" ] || fail "a record was made for plain-$r"

  echo "### removal releases everything ($r)"
  hk_rm_many "plain-$r" "c1-$r" "c2-$r"
  hk_released
  for h in "$IPVNET_STATE_DIR"/hosts/*; do
    assert_not_contains "$(cat "$h")" "# " "hosts file $h still names a container"
  done
  ! ip -o link show | grep -q ipvt || fail "a temporary ipvt* link is left in the host namespace"
done

assert_ok ipvnet network rm l2a gw60 ms l2b int66
link_exists up0 || fail "network rm deleted the parent up0"
echo "t-hook-l2 OK"
