#!/usr/bin/env bash
# Docker's guide, "Vlan ID 40": a VLAN sub-interface created by hand before
# the network, first named PARENT.40, then with any name (foo). ipvnet uses a
# link that exists as it is, and never deletes it: after `network rm` both
# are still there, to be removed by hand.
#
#   examples/10-manual-vlan.sh    (root; PARENT=eth0 for a real 802.1q trunk)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(ivlan_test5 ivlan_test6)
EX_NETWORKS=(ipvlan40)
ex_begin "Manually created VLAN sub-interfaces: ipvlan40 on $PARENT.40, then on foo"
ex_on_exit "ip link del '$PARENT.40'"
ex_on_exit "ip link del foo"

ex_upstream
ex_upstream_vlan 40 192.168.40.1/24

vlan40() {  # LINK: the network on LINK, two containers pinging one another
  local link=$1
  say "now add networks and hosts as you would normally by attaching to the master (sub)interface that is tagged"
  ex_network_create -d ipvlan \
    --subnet=192.168.40.0/24 \
    --gateway=192.168.40.1 \
    -o parent="$link" ipvlan40
  say "in two separate terminals, start a container: they can ping one another"
  ex_run ivlan_test5 ipvnet.network=ipvlan40
  ex_run ivlan_test6 ipvnet.network=ipvlan40
  ex_exec_expect ivlan_test5 'inet 192\.168\.40\.[0-9]+/24' ip addr show eth0
  ex_ping ivlan_test6 ivlan_test5
  ex_ping_upstream ivlan_test5 192.168.40.1
  say "remove them and the network: the manually created link is kept"
  ex_rm ivlan_test5
  ex_rm ivlan_test6
  show ipvnet network rm ipvlan40
  show ip -d link show "$link"
}

say "create a new sub-interface tied to dot1q vlan 40, and enable it"
show ip link add link "$PARENT" name "$PARENT.40" type vlan id 40
show ip link set "$PARENT.40" up
vlan40 "$PARENT.40"
note "manually created links can be cleaned up by hand"
show ip link del "$PARENT.40"

say "example: Vlan sub-interface manually created with any name"
show ip link add link "$PARENT" name foo type vlan id 40
show ip link set foo up
vlan40 foo
note "manually created links can be cleaned up with:"
show ip link del foo
