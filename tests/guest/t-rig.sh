#!/bin/bash
# The rig itself: kernel modules, cgroup2, both runtimes, lib.sh's bundles and
# upstream emulation, with ipvlan links made by hand (no ipvnet involved).
# timeout: 240
. "$(dirname "$0")/lib.sh"

for m in ipvlan 8021q dummy; do
  grep -q "^$m " /proc/modules || fail "module $m is not loaded"
done
assert_eq "$(stat -f -c %T /sys/fs/cgroup)" cgroup2fs "cgroup2 at /sys/fs/cgroup"
[ -x "$IPVNET_ROOTFS/bin/busybox" ] || fail "no rootfs"

# Upstream router with an untagged subnet and a tagged one (VLAN 20).
upstream_router rtr up0 192.168.50.1/24 2001:db8:50::1/64
upstream_vlan rtr 20 192.168.20.1/24
assert_eq "$(link_kind up0)" veth
assert_eq "$(in_ns rtr cat /proc/sys/net/ipv4/ip_forward)" 1
ip link add link up0 name up0.20 type vlan id 20
ip link set up0.20 up
assert_eq "$(link_kind up0.20)" vlan

for rt in runc crun; do
  export RUNTIME=$rt
  # A container whose netns gets an ipvlan L2 slave of up0, by hand.
  BUNDLE_HOOKS=0 make_bundle "b-$rt" >/dev/null
  assert_ok container_run "b-$rt" "c-$rt"
  assert_eq "$(container_status "c-$rt")" running
  pid=$(container_pid "c-$rt")
  ip link add link up0 name "iv-$rt" type ipvlan mode l2
  ip link set "iv-$rt" netns "$pid"
  ip link add link up0.20 name "iv20-$rt" type ipvlan mode l2
  ip link set "iv20-$rt" netns "$pid"
  n=2; [ "$rt" == crun ] && n=3
  nsenter -t "$pid" -n sh -ec "
    ip link set iv-$rt name eth0
    ip addr add 192.168.50.$n/24 dev eth0
    ip -6 addr add 2001:db8:50::$n/64 dev eth0 nodad
    ip link set eth0 up
    ip link set iv20-$rt name eth1
    ip addr add 192.168.20.$n/24 dev eth1
    ip link set eth1 up
    ip route add default via 192.168.50.1"
  # From inside the container, with busybox's ping.
  assert_ok container_exec "c-$rt" ping -c 1 -W 5 192.168.50.1
  assert_ok container_exec "c-$rt" ping -c 1 -W 5 192.168.20.1
  assert_ok container_exec "c-$rt" ping -6 -c 1 -W 5 2001:db8:50::1
  assert_ok container_exec "c-$rt" hostname
  assert_eq "$OUT" "b-$rt"
  assert_ok container_exec "c-$rt" ip -o addr show dev eth0
  assert_contains "$OUT" "192.168.50.$n/24"
  assert_ok container_rm "c-$rt"
  run "$rt" state "c-$rt"
  assert_ne "$RC" 0 "container c-$rt still exists after delete"
done

# Run-to-completion containers and a read-only rootfs.
export RUNTIME=runc
BUNDLE_HOOKS=0 BUNDLE_RO=1 make_bundle once -- sh -c 'echo hello from $(hostname)' >/dev/null
assert_ok runc run --bundle /tmp/bundles/once once </dev/null
assert_eq "$OUT" "hello from once"

# A failing runtime call reports its error.
assert_fails container_create nosuchbundle
assert_contains "$ERR" "no bundle"
echo "rig OK"
