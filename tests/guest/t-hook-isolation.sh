#!/bin/bash
# The OCI hook with real runc and crun containers: isolation (issue 3,
# scenarios 3 and 4).
#  3. internal, parent-less and subnet-less networks: their containers reach
#     each other and nothing else; the subnet-less one gets 172.18.0.0/16;
#  4. 802.1q: networks on up0.20 and up0.30 created on demand; containers
#     reach their own VLAN's gateway only, never the other VLAN; network rm
#     removes the sub-interfaces ipvnet made and keeps a hand-made VLAN link
#     of any name.
# timeout: 900
. "$(dirname "$0")/hook-lib.sh"
PS4='+ [${SECONDS}s] '

# The trunk: up0 here, eth0 in the router namespace rtr. VLAN 20 ends in rtr,
# VLAN 30 in another namespace rtr30 (so nothing routes between them), VLAN 40
# in rtr. Each VLAN also holds a "spy" address of the OTHER VLAN's subnet: a
# frame leaking onto the wrong VLAN would find it.
upstream_router rtr up0 192.168.50.1/24
upstream_vlan rtr 20 192.168.20.1/24 192.168.30.99/24
upstream_vlan rtr 40 192.168.40.1/24
ip netns add rtr30
ip -n rtr link add link eth0 name eth0.30 type vlan id 30
ip -n rtr link set eth0.30 netns rtr30
ip -n rtr30 addr add 192.168.30.1/24 dev eth0.30
ip -n rtr30 addr add 192.168.20.99/24 dev eth0.30
ip -n rtr30 link set lo up
ip -n rtr30 link set eth0.30 up

links_before=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort)

echo "### 3. isolated networks: no parent, --internal, no subnet"
assert_ok ipvnet network create -d ipvlan --subnet=192.168.10.0/24 isolated1
assert_ok ipvnet network create -d ipvlan --subnet=192.168.11.0/24 --internal isolated2
assert_ok ipvnet network create -d ipvlan isolated3
cfg3=$(ipvnet network inspect isolated3)
assert_eq "$(echo "$cfg3" | json 'd[0]["IPAM"]["Config"][0]["Subnet"]')" 172.18.0.0/16 "default subnet"
# As in Docker, only --internal sets Internal; no parent means a dummy parent.
assert_eq "$(echo "$cfg3" | json 'd[0]["Internal"]')" false
assert_eq "$(ipvnet network inspect isolated2 | json 'd[0]["Internal"]')" true
new=$(comm -13 <(echo "$links_before") <(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort))
assert_eq "$(echo "$new" | grep -c .)" 3 "one dummy parent per isolated network: [$new]"
for l in $new; do assert_eq "$(link_kind "$l")" dummy "kind of $l"; done

echo "### 4. VLAN networks: up0.20 and up0.30 made on demand, foo made by hand"
assert_ok ipvnet network create -d ipvlan --subnet 192.168.20.0/24 --gateway 192.168.20.1 -o parent=up0.20 ipvlan20
assert_ok ipvnet network create -d ipvlan --subnet 192.168.30.0/24 --gateway 192.168.30.1 -o parent=up0.30 \
  -o ipvlan_mode=l2 ipvlan30
for v in 20 30; do
  assert_eq "$(link_kind up0.$v)" vlan "up0.$v was made as an 802.1q link"
  assert_eq "$(ip -d -j link show dev up0.$v | json 'd[0]["linkinfo"]["info_data"]["id"]')" "$v"
done
ip link add link up0 name foo type vlan id 40
ip link set foo up
foo_index=$(cat /sys/class/net/foo/ifindex)
assert_ok ipvnet network create -d ipvlan --subnet 192.168.40.0/24 --gateway 192.168.40.1 -o parent=foo ipvlan40

for RUNTIME in $HOOK_RUNTIMES; do
  export RUNTIME
  r=$RUNTIME
  echo "################ runtime $r"

  echo "### 3. isolated networks ($r)"
  hk_run_many "i1a-$r ipvnet.network=isolated1" "i1b-$r ipvnet.network=isolated1" \
    "i2a-$r ipvnet.network=isolated2" "i2b-$r ipvnet.network=isolated2" \
    "i3a-$r ipvnet.network=isolated3" "i3b-$r ipvnet.network=isolated3"
  hk_info "i1a-$r" "i1b-$r" "i2a-$r" "i2b-$r" "i3a-$r" "i3b-$r"
  i1a=$(hk_addr "i1a-$r") i1b=$(hk_addr "i1b-$r") i2a=$(hk_addr "i2a-$r") i2b=$(hk_addr "i2b-$r")
  i3a=$(hk_addr "i3a-$r") i3b=$(hk_addr "i3b-$r")
  assert_match "$i1a" '^192\.168\.10\.' && assert_match "$i1b" '^192\.168\.10\.'
  assert_match "$i2a" '^192\.168\.11\.' && assert_match "$i2b" '^192\.168\.11\.'
  assert_match "$i3a" '^172\.18\.' "the subnet-less network hands out 172.18.0.0/16"
  assert_match "$i3b" '^172\.18\.'
  assert_contains "$(_hk_section "i3a-$r" ADDR)" "$i3a/16"
  # --internal: no default route. Parent-less: Docker's default route via
  # the first address, which leads nowhere (the dummy parent has no peer).
  routes=$(hk_routes "i2a-$r")
  assert_eq "$(hk_count_default "$routes")" 0 "an internal network has no default route: $routes"
  assert_match "$(hk_routes "i1a-$r")" '^default via 192\.168\.10\.1 dev eth0'
  assert_match "$(hk_routes "i3a-$r")" '^default via 172\.18\.0\.1 dev eth0'
  hk_ping "i1a-$r" "$i1b"
  hk_ping "i1b-$r" "$i1a"
  hk_ping "i2a-$r" "$i2b"
  hk_ping "i3b-$r" "$i3a"
  # Nothing else: the upstream router, the other isolated networks, the
  # VLAN gateways.
  hk_no_ping "i1a-$r" 192.168.50.1 "$i2a" "$i3a" 192.168.20.1
  hk_no_ping "i2a-$r" 192.168.50.1 "$i1a"
  hk_no_ping "i3a-$r" 192.168.50.1 "$i1b"
  hk_rm_many "i1a-$r" "i1b-$r" "i2a-$r" "i2b-$r" "i3a-$r" "i3b-$r"
  hk_released

  echo "### 4. 802.1q trunk ($r)"
  hk_run_many "v20a-$r ipvnet.network=ipvlan20" "v20b-$r ipvnet.network=ipvlan20" \
    "v30-$r ipvnet.network=ipvlan30" "v40-$r ipvnet.network=ipvlan40"
  hk_info "v20a-$r" "v20b-$r" "v30-$r"
  v20a=$(hk_addr "v20a-$r") v20b=$(hk_addr "v20b-$r") v30=$(hk_addr "v30-$r")
  assert_match "$v20a" '^192\.168\.20\.'
  assert_match "$v30" '^192\.168\.30\.'
  assert_match "$(hk_routes "v30-$r")" '^default via 192\.168\.30\.1 dev eth0'
  hk_ping "v20a-$r" 192.168.20.1 "$v20b"
  hk_ping "v20b-$r" "$v20a"
  hk_ping "v30-$r" 192.168.30.1
  hk_ping "v40-$r" 192.168.40.1
  # Never the other VLAN: not its gateway, not its containers, and no frame
  # of one VLAN reaches the spy address on the other.
  hk_no_ping "v20a-$r" 192.168.30.1 "$v30" 192.168.20.99
  hk_no_ping "v30-$r" 192.168.20.1 "$v20a" 192.168.30.99
  hk_rm_many "v20a-$r" "v20b-$r" "v30-$r" "v40-$r"
  hk_released
done

echo "### network rm: parents ipvnet made are deleted, the others kept"
assert_ok ipvnet network rm ipvlan20 ipvlan30 ipvlan40 isolated1 isolated2 isolated3
! link_exists up0.20 || fail "up0.20 was made by ipvnet and must go with its network"
! link_exists up0.30 || fail "up0.30 was made by ipvnet and must go with its network"
link_exists foo || fail "network rm deleted foo, a link ipvnet did not make"
assert_eq "$(cat /sys/class/net/foo/ifindex)" "$foo_index" "foo is the same link"
link_exists up0 || fail "network rm deleted up0"
left=$(comm -13 <(echo "$links_before") <(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort))
assert_eq "$left" foo "links left after network rm"
echo "t-hook-isolation OK"
