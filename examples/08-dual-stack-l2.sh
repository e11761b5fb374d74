#!/usr/bin/env bash
# Docker's guide, "Dual Stack IPv4 IPv6 Ipvlan L2 Mode", second part: a
# network on VLAN 140 with two IPv4 subnets and one IPv6 subnet, all with
# explicit gateways. A container gets one address per family, with a default
# route per family; a second one with a static --ip pings it over IPv4.
# (The guide starts that first container with --net=v6ipvlan139
# --ip6=2001:db8:abc2::51, a slip: its output shows ipvlan140's addresses.
# It is started on ipvlan140 here.)
#
#   examples/08-dual-stack-l2.sh    (root; PARENT=eth0 for a real 802.1q trunk)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(ds_c1 ds_c2)
EX_NETWORKS=(ipvlan140)
ex_begin "Dual stack ipvlan L2 mode: ipvlan140 on $PARENT.140"

say "VLAN 140's router holds 192.168.140.1, 192.168.142.1 and 2001:db8:abc9::22"
ex_upstream
ex_upstream_vlan 140 192.168.140.1/24 192.168.142.1/24 2001:db8:abc9::22/64

say "a network with two IPv4 subnets and one IPv6 subnet, all with explicit gateways"
ex_network_create -d ipvlan \
  --subnet=192.168.140.0/24 --subnet=192.168.142.0/24 \
  --gateway=192.168.140.1 --gateway=192.168.142.1 \
  --subnet=2001:db8:abc9::/64 --gateway=2001:db8:abc9::22 \
  -o parent="$PARENT.140" \
  -o ipvlan_mode=l2 ipvlan140
show ipvnet network inspect ipvlan140

say "start a container and view eth0 and both v4 & v6 routing tables"
ex_run ds_c1 ipvnet.network=ipvlan140
ex_exec_expect ds_c1 'inet 192\.168\.140\.[0-9]+/24' ip a show eth0
ex_exec_expect ds_c1 'inet6 2001:db8:abc9::[0-9a-f:]+/64' ip a show eth0
ex_exec_expect ds_c1 '^default via 192\.168\.140\.1 dev eth0' ip route
ex_exec_expect ds_c1 '^default via 2001:db8:abc9::22 dev eth0' ip -6 route
c1_v4=$(ex_ip ds_c1 ipvlan140 '\.')
c1_v6=$(ex_ip ds_c1 ipvlan140 ':')

say "start a second container with a specific --ip and ping the first host using IPv4 packets"
ex_run ds_c2 ipvnet.network=ipvlan140 ipvnet.ip=192.168.140.10
ex_exec_expect ds_c2 'inet 192\.168\.140\.10/24' ip a show eth0
ex_ping ds_c2 "$c1_v4"
note "and IPv6 packets"
ex_ping ds_c2 "$c1_v6"
ex_ping_upstream ds_c2 192.168.140.1
ex_ping_upstream ds_c2 2001:db8:abc9::22

say "clean up"
ex_rm ds_c1
ex_rm ds_c2
show ipvnet network rm ipvlan140
