#!/bin/bash
# The OCI hook with real runc and crun containers: L3 and IPv6 (issue 3,
# scenarios 6, 7 and 8).
#  6. L3 with two subnets on one parent: containers in different subnets
#     reach each other; `default dev eth0`, no next hop;
#  7. IPv6-only and dual-stack networks, L2 and L3, static ipvnet.ip6;
#     ping6 works both ways;
#  8. a container holding a static ip6 is removed and a new one takes the
#     same ip6 at once: it starts (Docker's guide records "Address already
#     in use" here).
# timeout: 900
. "$(dirname "$0")/hook-lib.sh"
PS4='+ [${SECONDS}s] '

upstream_router rtr3 up3
upstream_router rtr up0 2001:db8:abc2::22/64 192.168.140.1/24 2001:db8:abc9::22/64

# The guide's ipnet110 (L3, dual stack, two IPv4 subnets) and v6ipvlan139 /
# ipvlan140 (L2); plus an IPv6-only L3 network.
assert_ok ipvnet network create -d ipvlan --subnet=192.168.110.0/24 --subnet=192.168.112.0/24 \
  --subnet=2001:db8:abc6::/64 -o parent=up3 -o ipvlan_mode=l3 ipnet110
assert_ok ipvnet network create --ipv4=false --subnet=2001:db8:abc7::/64 -o parent=up3 -o ipvlan_mode=l3 l3v6
assert_ok ipvnet network create --ipv4=false --subnet=2001:db8:abc2::/64 --gateway=2001:db8:abc2::22 \
  -o parent=up0 v6ipvlan139
assert_ok ipvnet network create --subnet=192.168.140.0/24 --gateway=192.168.140.1 \
  --subnet=2001:db8:abc9::/64 --gateway=2001:db8:abc9::22 -o parent=up0 -o ipvlan_mode=l2 ipvlan140

for RUNTIME in $HOOK_RUNTIMES; do
  export RUNTIME
  r=$RUNTIME
  echo "################ runtime $r"

  echo "### 6/7. L3, two IPv4 subnets and IPv6, static addresses ($r)"
  hk_run_many "a-$r ipvnet.network=ipnet110 ipvnet.ip=192.168.110.10 ipvnet.ip6=2001:db8:abc6::10" \
    "b-$r ipvnet.network=ipnet110 ipvnet.ip=192.168.112.50 ipvnet.ip6=2001:db8:abc6::50" \
    "d-$r ipvnet.network=l3v6 ipvnet.ip6=2001:db8:abc7::10" "e-$r ipvnet.network=l3v6" \
    "f-$r ipvnet.network=v6ipvlan139 ipvnet.ip6=2001:db8:abc2::51" "g-$r ipvnet.network=v6ipvlan139" \
    "h-$r ipvnet.network=ipvlan140 ipvnet.ip6=2001:db8:abc9::51" "k-$r ipvnet.network=ipvlan140 ipvnet.ip=192.168.140.10"
  hk_info "a-$r" "b-$r" "d-$r" "e-$r" "f-$r" "g-$r" "h-$r" "k-$r"
  assert_eq "$(hk_addr "a-$r")" 192.168.110.10
  assert_eq "$(hk_addr "a-$r" eth0 6)" 2001:db8:abc6::10
  assert_eq "$(hk_addr "b-$r")" 192.168.112.50
  assert_eq "$(hk_addr "b-$r" eth0 6)" 2001:db8:abc6::50
  assert_contains "$(_hk_section "b-$r" ADDR)" "192.168.112.50/24"
  assert_contains "$(_hk_section "b-$r" ADDR)" "2001:db8:abc6::50/64"
  assert_contains "$(hk_links "a-$r" | grep ': eth0[:@]')" "NOARP" "an L3 slave is NOARP"
  for c in a b; do
    routes=$(hk_routes "$c-$r") routes6=$(hk_routes "$c-$r" 6)
    assert_eq "$(hk_count_default "$routes")" 1 "$c: one IPv4 default route: $routes"
    assert_match "$routes" '^default dev eth0' "$c: L3 default route names the device only"
    assert_not_contains "$routes" "via" "$c: no next hop in L3"
    assert_eq "$(hk_count_default "$routes6")" 1 "$c: one IPv6 default route: $routes6"
    assert_match "$routes6" '^default dev eth0'
    assert_not_contains "$(printf '%s\n' "$routes6" | grep '^default')" "via"
  done
  hk_ping "a-$r" 192.168.112.50 2001:db8:abc6::50
  hk_ping "b-$r" 192.168.110.10 2001:db8:abc6::10

  echo "### 7. IPv6-only L3 ($r)"
  assert_eq "$(hk_addr "d-$r" eth0 6)" 2001:db8:abc7::10
  e6=$(hk_addr "e-$r" eth0 6)
  assert_match "$e6" '^2001:db8:abc7::'
  assert_eq "$(hk_addrs "e-$r")" "" "an IPv6-only network gives no IPv4 address"
  assert_match "$(hk_routes "e-$r" 6)" '^default dev eth0'
  assert_eq "$(hk_count_default "$(hk_routes "e-$r")")" 0 "no IPv4 default route on an IPv6-only network"
  hk_ping "d-$r" "$e6"
  hk_ping "e-$r" 2001:db8:abc7::10
  assert_eq "$(lease_list l3v6 | grep -c .)" 2 "two IPv6 leases, no IPv4 one: $(lease_list l3v6)"

  echo "### 7. IPv6-only L2 ($r)"
  assert_eq "$(hk_addr "f-$r" eth0 6)" 2001:db8:abc2::51
  g6=$(hk_addr "g-$r" eth0 6)
  assert_match "$g6" '^2001:db8:abc2::'
  assert_ne "$g6" 2001:db8:abc2::22 "the gateway is never handed out"
  assert_eq "$(hk_addrs "g-$r")" "" "an IPv6-only network gives no IPv4 address"
  routes6=$(hk_routes "f-$r" 6)
  assert_eq "$(hk_count_default "$routes6")" 1 "one IPv6 default route: $routes6"
  assert_match "$routes6" '^default via 2001:db8:abc2::22 dev eth0'
  hk_ping "f-$r" "$g6" 2001:db8:abc2::22
  hk_ping "g-$r" 2001:db8:abc2::51 2001:db8:abc2::22

  echo "### 7. dual-stack L2 ($r)"
  assert_eq "$(hk_addr "h-$r" eth0 6)" 2001:db8:abc9::51
  h4=$(hk_addr "h-$r")
  assert_match "$h4" '^192\.168\.140\.'
  assert_eq "$(hk_addr "k-$r")" 192.168.140.10
  k6=$(hk_addr "k-$r" eth0 6)
  assert_match "$k6" '^2001:db8:abc9::'
  assert_match "$(hk_routes "h-$r")" '^default via 192\.168\.140\.1 dev eth0'
  assert_match "$(hk_routes "h-$r" 6)" '^default via 2001:db8:abc9::22 dev eth0'
  hk_ping "h-$r" 192.168.140.10 "$k6" 192.168.140.1 2001:db8:abc9::22
  hk_ping "k-$r" "$h4" 2001:db8:abc9::51

  echo "### 8. the same static ip6 again, at once ($r)"
  # Bundles first, so that each create follows its removal immediately.
  hk_bundle "f2-$r" ipvnet.network=v6ipvlan139 ipvnet.ip6=2001:db8:abc2::51
  hk_bundle "a2-$r" ipvnet.network=ipnet110 ipvnet.ip=192.168.110.10 ipvnet.ip6=2001:db8:abc6::10
  assert_ok container_rm "f-$r"
  assert_ok container_run "f2-$r"
  assert_ok container_rm "a-$r"
  assert_ok container_run "a2-$r"
  hk_info "f2-$r" "a2-$r"
  assert_eq "$(hk_addr "f2-$r" eth0 6)" 2001:db8:abc2::51
  assert_eq "$(hk_addr "a2-$r" eth0 6)" 2001:db8:abc6::10
  assert_contains "$(lease_list v6ipvlan139)" "v6ipvlan139 2001:db8:abc2::51 f2-$r"
  assert_contains "$(lease_list ipnet110)" "ipnet110 2001:db8:abc6::10 a2-$r"
  hk_ping "g-$r" 2001:db8:abc2::51
  hk_ping "b-$r" 2001:db8:abc6::10 192.168.110.10

  hk_rm_many "a2-$r" "b-$r" "d-$r" "e-$r" "f2-$r" "g-$r" "h-$r" "k-$r"
  hk_released
done

assert_ok ipvnet network rm ipnet110 l3v6 v6ipvlan139 ipvlan140
echo "t-hook-l3v6 OK"
