#!/usr/bin/env bash
# Docker's guide, "Dual Stack IPv4 IPv6 Ipvlan L2 Mode", first part: an IPv6
# network on VLAN 139. No IPv4 subnet is given, so the default pool provides
# one (172.18.0.0/16 if free), isolated unless the upstream routes it. Two
# containers ping one another over IPv6; addresses are added without DAD.
#
#   examples/07-ipv6-l2.sh    (root; PARENT=eth0 for a real 802.1q trunk)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(v6_c1 v6_c2)
EX_NETWORKS=(v6ipvlan139)
ex_begin "IPv6 ipvlan L2 mode: v6ipvlan139 on $PARENT.139"

say "VLAN 139's router is 2001:db8:abc2::22"
ex_upstream
ex_upstream_vlan 139 2001:db8:abc2::22/64

say "create a v6 network"
ex_network_create -d ipvlan \
  --subnet=2001:db8:abc2::/64 --gateway=2001:db8:abc2::22 \
  -o parent="$PARENT.139" v6ipvlan139
show ipvnet network ls

say "start a container on the network; view its eth0 interface and v6 routing table"
ex_run v6_c1 ipvnet.network=v6ipvlan139
ex_exec_expect v6_c1 'inet6 2001:db8:abc2::[0-9a-f:]+/64' ip a show eth0
ex_exec_expect v6_c1 'inet 172\.[0-9.]+/16' ip a show eth0
ex_exec_expect v6_c1 '^default via 2001:db8:abc2::22 dev eth0' ip -6 route
c1_v6=$(ex_ip v6_c1 v6ipvlan139 ':')
[ -n "$c1_v6" ] || die "no IPv6 address of v6_c1 in the hosts file"

say "start a second container and ping the first container's v6 address"
ex_run v6_c2 ipvnet.network=v6ipvlan139
ex_exec v6_c2 ip a show eth0
ex_ping v6_c2 "$c1_v6"
ex_ping_upstream v6_c2 2001:db8:abc2::22

say "clean up"
ex_rm v6_c1
ex_rm v6_c2
show ipvnet network rm v6ipvlan139
