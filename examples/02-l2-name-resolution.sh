#!/usr/bin/env bash
# Docker's guide: the same L2 network with the driver defaults (--gateway =
# the subnet's first address, ipvlan_mode=l2), a container named ipv1 in the
# background, and a second one, ipv2, pinging it by name: ipvnet keeps a hosts
# file per network, bind-mounted read-only at /etc/hosts.
#
#   examples/02-l2-name-resolution.sh    (root; PARENT=eth0 to use a real interface)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(ipv1 ipv2)
EX_NETWORKS=(db_net_ipv)
ex_begin "Ipvlan L2 mode with name resolution: db_net_ipv on $PARENT"

ex_upstream 192.168.1.1/24

say "create the network with the defaults: --gateway=192.168.1.1, -o ipvlan_mode=l2"
ex_network_create -d ipvlan \
  --subnet=192.168.1.0/24 \
  -o parent="$PARENT" db_net_ipv
show ipvnet network inspect db_net_ipv

say "start a container with an explicit name in daemon mode (docker run --net=db_net_ipv --name=ipv1 -itd alpine /bin/sh)"
ex_run ipv1 ipvnet.network=db_net_ipv
ex_exec_expect ipv1 'inet 192\.168\.1\.[0-9]+/24' ip addr show eth0
note "the gateway defaults to the first usable address of the subnet"
ex_exec_expect ipv1 'default via 192\.168\.1\.1 dev eth0' ip route
ipv1_addr=$(ex_ip ipv1 db_net_ipv)
[ -n "$ipv1_addr" ] || die "ipv1 is not in the hosts file of db_net_ipv"

say "the network's hosts file: $IPVNET_STATE_DIR/hosts/db_net_ipv"
show cat "$IPVNET_STATE_DIR/hosts/db_net_ipv"

say "start a second container and ping using the container name (docker run --net=db_net_ipv --name=ipv2 -it --rm alpine /bin/sh; ping -c 4 ipv1)"
ex_run_fg ipv2 ipvnet.network=db_net_ipv -- \
  sh -c "ip addr show eth0 && cat /etc/hosts && ping -c 4 ipv1 && ping -c 1 $ipv1_addr" ||
  die "ipv2 could not ping ipv1 by name and by address"

say "ipv1 reaches the router beyond the parent"
ex_ping_upstream ipv1 192.168.1.1

say "remove ipv1, then the network"
ex_rm ipv1
show ipvnet network rm db_net_ipv
