#!/usr/bin/env bash
# Docker's guide, "Ipvlan 802.1q Trunk L2 Mode": networks on the parent's
# VLAN sub-interfaces PARENT.20 and PARENT.30, which ipvnet creates when the
# network is created and deletes when it is removed. Containers on one VLAN
# reach each other and their VLAN's gateway, never the other VLAN.
#
#   examples/04-vlan-trunk.sh    (root; PARENT=eth0 for a real 802.1q trunk)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(ivlan_test1 ivlan_test2 ivlan_test3 ivlan_test4)
EX_NETWORKS=(ipvlan20 ipvlan30)
ex_begin "Ipvlan 802.1q trunk, L2 mode: VLANs 20 and 30 on $PARENT"

say "the trunk: beyond $PARENT, VLAN 20's gateway is 192.168.20.1 and VLAN 30's is 192.168.30.1 (not routed to each other)"
ex_upstream
ex_upstream_vlan 20 192.168.20.1/24
ex_upstream_vlan 30 192.168.30.1/24
for v in 20 30; do
  ! ip link show dev "$PARENT.$v" >/dev/null 2>&1 || die "$PARENT.$v exists already: this scenario wants ipvnet to create it"
done

say "Vlan ID 20: the sub-interface $PARENT.20 is created on the fly"
ex_network_create -d ipvlan \
  --subnet=192.168.20.0/24 \
  --gateway=192.168.20.1 \
  -o parent="$PARENT.20" ipvlan20
show ip -d link show "$PARENT.20"

say "in two separate terminals, start a container: they can ping one another"
ex_run ivlan_test1 ipvnet.network=ipvlan20
ex_run ivlan_test2 ipvnet.network=ipvlan20
ex_exec_expect ivlan_test1 'inet 192\.168\.20\.[0-9]+/24' ip addr show eth0
ex_ping ivlan_test1 ivlan_test2
ex_ping_upstream ivlan_test1 192.168.20.1

say "Vlan ID 30: ipvlan_mode=l2 given explicitly, with the same result"
ex_network_create -d ipvlan \
  --subnet=192.168.30.0/24 \
  --gateway=192.168.30.1 \
  -o parent="$PARENT.30" \
  -o ipvlan_mode=l2 ipvlan30
show ip -d link show "$PARENT.30"
ex_run ivlan_test3 ipvnet.network=ipvlan30
ex_run ivlan_test4 ipvnet.network=ipvlan30
ex_ping ivlan_test3 ivlan_test4
ex_ping_upstream ivlan_test4 192.168.30.1

say "the gateway is set inside the container as the default gateway"
ex_exec_expect ivlan_test3 'default via 192\.168\.30\.1 dev eth0' ip route

say "different VLANs cannot ping one another without a router routing between them"
ex_exec_fails ivlan_test1 ping -c 1 -W 1 "$(ex_ip ivlan_test3 ipvlan30)"
if ((EX_OWN_UPSTREAM)); then
  note "nor the other VLAN's gateway: VLAN 20 does not carry 192.168.30.0/24"
  ex_exec_fails ivlan_test1 ping -c 1 -W 1 192.168.30.1
fi

say "network rm deletes the sub-interfaces it created"
for c in ivlan_test1 ivlan_test2 ivlan_test3 ivlan_test4; do ex_rm "$c"; done
show ipvnet network rm ipvlan20 ipvlan30
for v in 20 30; do
  ! ip link show dev "$PARENT.$v" >/dev/null 2>&1 || die "$PARENT.$v is still there after network rm"
done
note "$PARENT.20 and $PARENT.30 are gone; $PARENT stays"
show ip link show "$PARENT"
