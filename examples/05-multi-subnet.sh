#!/usr/bin/env bash
# Docker's guide: a multi-subnet L2 network on VLAN 114 (PARENT.114, created
# on demand), two subnets with their gateways (the router's primary and
# secondary addresses), containers with static addresses (--ip).
# In L2 mode the two subnets reach each other only through the router.
#
#   examples/05-multi-subnet.sh    (root; PARENT=eth0 for a real 802.1q trunk)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(c114_10 c114_11 c116_10)
EX_NETWORKS=(ipvlan114)
ex_begin "Multi-subnet ipvlan L2 mode: ipvlan114 on $PARENT.114"

say "VLAN 114's router holds 192.168.114.254 and the secondary 192.168.116.254"
ex_upstream
ex_upstream_vlan 114 192.168.114.254/24 192.168.116.254/24

ex_network_create -d ipvlan \
  --subnet=192.168.114.0/24 --subnet=192.168.116.0/24 \
  --gateway=192.168.114.254 --gateway=192.168.116.254 \
  -o parent="$PARENT.114" \
  -o ipvlan_mode=l2 ipvlan114
show ipvnet network inspect ipvlan114

say "docker run --net=ipvlan114 --ip=192.168.114.10 / --ip=192.168.114.11: they ping one another"
ex_run c114_10 ipvnet.network=ipvlan114 ipvnet.ip=192.168.114.10
ex_run c114_11 ipvnet.network=ipvlan114 ipvnet.ip=192.168.114.11
ex_exec_expect c114_10 'inet 192\.168\.114\.10/24' ip addr show eth0
ex_exec_expect c114_10 'default via 192\.168\.114\.254 dev eth0' ip route
ex_ping c114_11 192.168.114.10
ex_ping_upstream c114_11 192.168.114.254

say "a static address in the second subnet: its gateway is that subnet's"
ex_run c116_10 ipvnet.network=ipvlan114 ipvnet.ip=192.168.116.10
ex_exec_expect c116_10 'inet 192\.168\.116\.10/24' ip addr show eth0
ex_exec_expect c116_10 'default via 192\.168\.116\.254 dev eth0' ip route
ex_ping_upstream c116_10 192.168.116.254

if ((EX_OWN_UPSTREAM)); then
  say "for 192.168.114.0/24 to reach 192.168.116.0/24, L2 mode needs an external router"
  ex_exec_fails c114_10 ping -c 1 -W 1 192.168.116.10
  note "let the upstream router route between its two subnets"
  show ip netns exec ipvnet-vlan114 sysctl -w net.ipv4.ip_forward=1
  ex_ping c114_10 192.168.116.10
fi

say "clean up"
for c in c114_10 c114_11 c116_10; do ex_rm "$c"; done
show ipvnet network rm ipvlan114
