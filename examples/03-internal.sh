#!/usr/bin/env bash
# Docker's guide: isolated networks. Leaving -o parent= off and giving
# --internal are the same: the network gets a dummy parent link of its own,
# so its containers reach each other and nothing else. Without --subnet, the
# default pool gives 172.18.0.0/16 (the next free /16 if that one is taken).
#
#   examples/03-internal.sh    (root)
. "$(dirname "$0")/lib.sh"
EX_CONTAINERS=(cid1 cid2 cid3 cid1b cid3b)
EX_NETWORKS=(isolated1 isolated2 isolated3)
ex_begin "Isolated networks: no parent, --internal, and no subnet at all"

say "empty '-o parent=' creates an isolated network"
ex_network_create -d ipvlan \
  --subnet=192.168.10.0/24 isolated1

say "explicit '--internal' flag is the same"
ex_network_create -d ipvlan \
  --subnet=192.168.11.0/24 --internal isolated2

say "even the '--subnet=' can be left empty: the default IPAM subnet 172.18.0.0/16 is assigned"
ex_network_create -d ipvlan isolated3
show ipvnet network ls
sub3=$(ex_net_subnets isolated3)
note "isolated3 got $sub3"
[[ "$sub3" =~ ^172\.(1[89]|2[0-9]|3[01])\.0\.0/16$ ]] || die "isolated3 did not get a default /16: $sub3"

say "each parent is a dummy link made by ipvnet"
for n in isolated1 isolated2 isolated3; do
  show ip -d link show "$(ex_net_parent "$n")"
done

say "docker run --net=isolatedN --name=cidN -it --rm alpine /bin/sh"
ex_run cid1 ipvnet.network=isolated1
ex_run cid2 ipvnet.network=isolated2
ex_run cid3 ipvnet.network=isolated3

say "to attach to any use 'docker exec' (here: runc exec -t cidN /bin/sh); what they see:"
ex_exec_expect cid1 'inet 192\.168\.10\.[0-9]+/24' ip addr show eth0
ex_exec_expect cid2 'inet 192\.168\.11\.[0-9]+/24' ip addr show eth0
ex_exec_expect cid3 'inet 172\.[0-9.]+/16' ip addr show eth0
note "the --internal network gets no default route: there is nothing beyond it"
ex_exec cid1 ip route
ex_exec cid3 ip route
printf '[%s]$ ip route\n' cid2
r=$("$RUNTIME" exec cid2 ip route </dev/null)
printf '%s\n' "$r"
case "$r" in *default*) die "cid2 has a default route on an --internal network" ;; esac

say "containers of one isolated network reach each other (by name)"
ex_run_fg cid1b ipvnet.network=isolated1 -- ping -c 2 cid1 || die "cid1b could not ping cid1"
ex_run_fg cid3b ipvnet.network=isolated3 -- ping -c 2 cid3 || die "cid3b could not ping cid3"

say "but not the containers of another isolated network"
ex_exec_fails cid1 ping -c 1 -W 1 "$(ex_ip cid2 isolated2)"

say "remove the containers and the networks (their dummy parents go with them)"
parents=$(for n in isolated1 isolated2 isolated3; do ex_net_parent "$n"; done)
for c in cid1 cid2 cid3; do ex_rm "$c"; done
show ipvnet network rm isolated1 isolated2 isolated3
for p in $parents; do
  ! ip link show dev "$p" >/dev/null 2>&1 || die "dummy parent $p is still there"
done
note "dummy parents removed: $(echo $parents)"
