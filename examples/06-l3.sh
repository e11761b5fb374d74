#!/usr/bin/env bash
# Docker's guide, "IPVlan L3 Mode Example": no parent (a dummy link is made),
# two subnets, ipvlan_mode=l3. L3 mode routes between the subnets of one
# parent: containers in 192.168.214.0/24 and 10.1.214.0/24 reach each other.
# The default route names the device only (ARP and broadcast are filtered).
#
#   examples/06-l3.sh    (root)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(l3_214_10 l3_10_10 l3_214_9 l3_10_9)
EX_NETWORKS=(ipnet210)
ex_begin "Ipvlan L3 mode: ipnet210, two subnets, no parent"

say "create the Ipvlan L3 network (no --gateway: it means nothing in L3 mode)"
ex_network_create -d ipvlan \
  --subnet=192.168.214.0/24 \
  --subnet=10.1.214.0/24 \
  -o ipvlan_mode=l3 ipnet210
show ipvnet network ls

say "docker run --net=ipnet210 --ip=192.168.214.10 -itd / --ip=10.1.214.10 -itd"
ex_run l3_214_10 ipvnet.network=ipnet210 ipvnet.ip=192.168.214.10
ex_run l3_10_10 ipvnet.network=ipnet210 ipvnet.ip=10.1.214.10

say "test L3 connectivity from 192.168.214.0/24 to 10.1.214.0/24 (docker run --ip=192.168.214.9 --rm alpine ping -c 2 10.1.214.10)"
ex_run_fg l3_214_9 ipvnet.network=ipnet210 ipvnet.ip=192.168.214.9 -- ping -c 2 10.1.214.10 ||
  die "192.168.214.9 could not reach 10.1.214.10"

say "test L3 connectivity from 10.1.214.0/24 to 192.168.214.0/24 (docker run --ip=10.1.214.9 --rm alpine ping -c 2 192.168.214.10)"
ex_run_fg l3_10_9 ipvnet.network=ipnet210 ipvnet.ip=10.1.214.9 -- ping -c 2 192.168.214.10 ||
  die "10.1.214.9 could not reach 192.168.214.10"

say "inside an L3 mode container: the default route is simply the device"
ex_exec_expect l3_214_10 'NOARP' ip addr show eth0
ex_exec_expect l3_214_10 '^default dev eth0' ip route
ex_exec_expect l3_10_10 '^default dev eth0' ip route

say "clean up"
ex_rm l3_214_10
ex_rm l3_10_10
show ipvnet network rm ipnet210
