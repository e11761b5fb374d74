#!/usr/bin/env bash
# Docker's ipvlan guide, "Ipvlan L2 Mode Example Usage": an L2 network on the
# host's interface and subnet (192.168.1.0/24, router 192.168.1.1), and a
# container on it. As the guide notes, the container cannot reach the host's
# own address on the parent (ipvlan isolates them), but reaches the router.
#
#   examples/01-l2-basic.sh        (root; PARENT=eth0 to use a real interface)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(db_c1)
EX_NETWORKS=(db_net)
ex_begin "Ipvlan L2 mode: db_net on the parent $PARENT"

say "the parent, the guide's eth0 (192.168.1.250/24 on a LAN whose router is 192.168.1.1)"
ex_upstream 192.168.1.1/24
host_addr=
if ((EX_OWN_UPSTREAM)) && [ -z "$(ip -4 route show 192.168.1.0/24)" ] &&
  ! ip -4 -o addr show | grep -q ' 192\.168\.1\.250/'; then
  # A /32, so that the host gets no route into the guide's subnet.
  show ip addr add 192.168.1.250/32 dev "$PARENT"
  host_addr=192.168.1.250
fi
show ip addr show "$PARENT"

say "create the ipvlan network (-o ipvlan_mode= defaults to l2 if not specified)"
ex_network_create -d ipvlan \
  --subnet=192.168.1.0/24 \
  --gateway=192.168.1.1 \
  -o ipvlan_mode=l2 \
  -o parent="$PARENT" db_net
show ipvnet network ls

say "start a container on the db_net network (docker run --net=db_net -it --rm alpine /bin/sh)"
ex_run db_c1 ipvnet.network=db_net
ex_exec_expect db_c1 'inet 192\.168\.1\.[0-9]+/24' ip addr show eth0
ex_exec_expect db_c1 'default via 192\.168\.1\.1 dev eth0' ip route

say "the router, beyond the parent, answers"
ex_ping_upstream db_c1 192.168.1.1

if [ -n "$host_addr" ]; then
  say "NOTE: the containers can NOT ping the underlying host interfaces (filtered by Linux for isolation)"
  ex_exec_fails db_c1 ping -c 2 -W 1 "$host_addr"
fi

say "the endpoint, as ipvnet records it"
show ipvnet network inspect db_net

say "remove the container (its poststop hook gives the address back), then the network"
ex_rm db_c1
show ipvnet network rm db_net
