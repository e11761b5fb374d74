#!/usr/bin/env bash
# Docker's guide, "Dual Stack IPv4 IPv6 Ipvlan L3 Mode": two IPv4 subnets and
# one IPv6 subnet on the parent, in L3 mode. Default routes name the device
# only, in both families; L3 mode routes between the subnets of the parent.
# Static --ip / --ip6 addresses, and the guide's recorded bug: a container
# removed and a new one started at once with the same --ip6 must work
# (Docker answered "Address already in use").
#
#   examples/09-dual-stack-l3.sh    (root; PARENT=eth0 to use a real interface)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(l3ds_c1 l3ds_c2 l3ds_c3 l3ds_c4 l3ds_c5)
EX_NETWORKS=(ipnet110)
ex_begin "Dual stack ipvlan L3 mode: ipnet110 on $PARENT"

note "in L3 mode the parent acts as a router: its own addresses are on another subnet"
ex_upstream

say "create an IPv6+IPv4 dual stack ipvlan L3 network (gateways are 'default dev eth0')"
ex_network_create -d ipvlan \
  --subnet=192.168.110.0/24 \
  --subnet=192.168.112.0/24 \
  --subnet=2001:db8:abc6::/64 \
  -o parent="$PARENT" \
  -o ipvlan_mode=l3 ipnet110

say "start a few containers on the network (ipnet110)"
note "docker run --net=ipnet110 -it --rm alpine /bin/sh"
ex_run l3ds_c1 ipvnet.network=ipnet110
note "a second container specifying the v6 address"
ex_run l3ds_c2 ipvnet.network=ipnet110 ipvnet.ip6=2001:db8:abc6::10
note "a third specifying the IPv4 address"
ex_run l3ds_c3 ipvnet.network=ipnet110 ipvnet.ip=192.168.112.50

say "interface and routing tables: the default route is simply the eth device, because ARPs are filtered"
ex_exec_expect l3ds_c3 'NOARP' ip a show eth0
ex_exec_expect l3ds_c3 'inet 192\.168\.112\.50/24' ip a show eth0
ex_exec_expect l3ds_c2 'inet6 2001:db8:abc6::10/64' ip a show eth0
ex_exec_expect l3ds_c3 '^default dev eth0' ip route
ex_exec_expect l3ds_c2 '^default dev eth0' ip -6 route

say "L3 mode routes between the subnets of one parent"
c1_v4=$(ex_ip l3ds_c1 ipnet110 '\.')
c1_v6=$(ex_ip l3ds_c1 ipnet110 ':')
note "l3ds_c1 has $c1_v4 and $c1_v6"
ex_ping l3ds_c3 "$c1_v4"
ex_ping l3ds_c2 "$c1_v6"

say "a 4th specifying both the IPv4 and IPv6 addresses: 192.168.112.50 is l3ds_c3's"
if ex_run l3ds_c4 ipvnet.network=ipnet110 ipvnet.ip6=2001:db8:abc6::50 ipvnet.ip=192.168.112.50; then
  die "l3ds_c4 started with an address l3ds_c3 holds"
fi
note "refused, as it must be; nothing of l3ds_c4 was kept:"
show ipvnet lease ls ipnet110
ipvnet lease ls ipnet110 | grep -q l3ds_c4 && die "l3ds_c4 left a lease behind"
note "once l3ds_c3 is gone, the address is free"
ex_rm l3ds_c3
ex_run l3ds_c4 ipvnet.network=ipnet110 ipvnet.ip6=2001:db8:abc6::50 ipvnet.ip=192.168.112.50
ex_exec_expect l3ds_c4 'inet 192\.168\.112\.50/24' ip a show eth0
ex_ping l3ds_c4 2001:db8:abc6::10

say "the guide's bug: remove the container with --ip6=2001:db8:abc6::10 and start a new one with it at once"
ex_rm l3ds_c2
ex_run l3ds_c5 ipvnet.network=ipnet110 ipvnet.ip6=2001:db8:abc6::10
ex_exec_expect l3ds_c5 'inet6 2001:db8:abc6::10/64' ip a show eth0
ex_ping l3ds_c4 2001:db8:abc6::10

say "clean up"
for c in l3ds_c1 l3ds_c4 l3ds_c5; do ex_rm "$c"; done
show ipvnet network rm ipnet110
