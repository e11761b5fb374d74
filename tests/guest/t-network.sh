#!/bin/bash
# `ipvnet network create|ls|inspect|rm` against the real kernel: 802.1q
# sub-interfaces created and removed, existing links used and kept, dummy
# parents, default subnets, the one-mode-per-parent rule, and every refused
# input leaving nothing behind (no link, no state).
# timeout: 420
. "$(dirname "$0")/lib.sh"

upstream_router rtr up0 192.168.50.1/24 2001:db8:50::1/64

inspect() { local n=$1; shift; ipvnet network inspect "$n" | json "$@"; }

# expect_error ERE CMD...: CMD fails, its stderr matches ERE, and neither a
# link nor anything in the state dir appeared.
expect_error() {
  local ere=$1; shift
  local before after
  before=$(snapshot)
  assert_fails "$@"
  assert_match "$ERR" "$ere" "stderr of [$*] must name the bad value"
  after=$(snapshot)
  if [ "$after" != "$before" ]; then
    fail "[$*] failed but left something behind:
$(diff <(echo "$before") <(echo "$after"))"
  fi
}

new_links() { comm -13 <(echo "$1") <(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort); }
link_names() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort; }

echo "### 1. parent NAME.VID that does not exist: ipvnet creates the 802.1q link, rm deletes it"
assert_ok ipvnet network create -d ipvlan --subnet 192.168.20.0/24 --gateway 192.168.20.1 \
  -o parent=up0.20 -o ipvlan_mode=l2 v20
id=$(printf '%s\n' "$OUT" | tail -n1)
assert_match "$id" '^[0-9a-f]{12,64}$' "network create prints the id"
link_exists up0.20 || fail "up0.20 was not created"
assert_eq "$(link_kind up0.20)" vlan
got=$(ip -d -j link show dev up0.20 | json 'd[0]["linkinfo"]["info_data"]["id"]' \
  'd[0]["linkinfo"]["info_data"]["protocol"]' 'd[0]["link"]' '"UP" in d[0]["flags"]')
assert_eq "$got" "20
802.1Q
up0
true" "up0.20: VLAN id, protocol, lower device, up"

assert_ok ipvnet network inspect v20
got=$(echo "$OUT" | json 'len(d)' 'd[0]["Name"]' 'd[0]["Id"]' 'd[0]["Driver"]' \
  'd[0]["IPAM"]["Config"][0]["Subnet"]' 'd[0]["IPAM"]["Config"][0]["Gateway"]' \
  'd[0]["Options"]["parent"]' 'd[0]["Options"]["ipvlan_mode"]' 'd[0]["Internal"]' 'd[0]["Containers"]')
assert_eq "$got" "1
v20
$id
ipvlan
192.168.20.0/24
192.168.20.1
up0.20
l2
false
{}" "network inspect v20: length, Name, Id, Driver, Subnet, Gateway, parent, ipvlan_mode, Internal, Containers"

assert_ok ipvnet network ls
ls_out=$OUT
hdr=$(printf '%s\n' "$ls_out" | head -n1)
for col in "NETWORK ID" NAME DRIVER PARENT MODE SUBNETS; do assert_contains "$hdr" "$col" "network ls header"; done
row=$(printf '%s\n' "$ls_out" | grep -w v20) || fail "v20 not in network ls: $ls_out"
assert_match "$row" "^${id:0:12}" "network ls row starts with the (short) id"
for f in ipvlan up0.20 l2 192.168.20.0/24; do assert_contains "$row" "$f" "network ls row"; done

assert_ok ipvnet network rm v20
! link_exists up0.20 || fail "up0.20 was created by ipvnet and must be deleted by network rm"
link_exists up0 || fail "the lower device up0 must never be deleted"
assert_fails ipvnet network inspect v20
assert_contains "$ERR" v20
assert_ok ipvnet network ls
assert_not_contains "$OUT" v20

echo "### 1b. the --opt=value forms, several subnets and gateways, dual stack, ip-range, mtu"
assert_ok ipvnet network create -d ipvlan --subnet=192.168.114.0/24 --subnet=192.168.116.0/24 \
  --gateway=192.168.114.254 --gateway=192.168.116.254 --subnet=2001:db8:abc9::/64 \
  --gateway=2001:db8:abc9::22 --ip-range=192.168.114.128/25 -o parent=up0.114 -o mtu=1400 v114
cfg=$(ipvnet network inspect v114 | json 'sorted([(c["Subnet"], c.get("Gateway", ""), c.get("IPRange", "")) for c in d[0]["IPAM"]["Config"]])')
assert_eq "$cfg" '[["192.168.114.0/24", "192.168.114.254", "192.168.114.128/25"], ["192.168.116.0/24", "192.168.116.254", ""], ["2001:db8:abc9::/64", "2001:db8:abc9::22", ""]]' "IPAM.Config of v114"
assert_eq "$(link_kind up0.114)" vlan
# Addresses come from the ip-range.
assert_ok ipvnet lease add v114 --owner r1
v4=$(printf '%s\n' "$OUT" | grep -v : | head -n1 | cut -d/ -f1)
python3 -c 'import ipaddress,sys; a = ipaddress.ip_address(sys.argv[1]); sys.exit(0 if a in ipaddress.ip_network("192.168.114.128/25") and str(a) != "192.168.114.255" else 1)' "$v4" ||
  fail "lease $v4 is not in the ip-range 192.168.114.128/25"
assert_ok ipvnet lease rm --owner r1
assert_ok ipvnet network rm v114
! link_exists up0.114 || fail "up0.114 not deleted"

echo "### 1c. the gateway defaults to the first address of the subnet (l2)"
assert_ok ipvnet network create --subnet 192.168.30.0/24 -o parent=up0 gw
assert_eq "$(inspect gw 'd[0]["IPAM"]["Config"][0]["Gateway"]' 'd[0]["Options"].get("ipvlan_mode", "l2")')" "192.168.30.1
l2" "default gateway and mode"
assert_ok ipvnet network rm gw
link_exists up0 || fail "network rm deleted the parent up0"

echo "### 2. an existing sub-interface of any name is used and kept"
ip link add link up0 name foo type vlan id 40
ip link set foo up
ip link add link up0 name up0.30 type vlan id 30
ip link set up0.30 up
idx_foo=$(cat /sys/class/net/foo/ifindex) idx_30=$(cat /sys/class/net/up0.30/ifindex)
assert_ok ipvnet network create --subnet 192.168.40.0/24 --gateway 192.168.40.1 -o parent=foo v40
assert_ok ipvnet network create --subnet 192.168.31.0/24 -o parent=up0.30 v30
assert_eq "$(inspect v40 'd[0]["Options"]["parent"]')" foo
assert_eq "$(cat /sys/class/net/foo/ifindex)" "$idx_foo" "foo must be used as it is"
assert_eq "$(cat /sys/class/net/up0.30/ifindex)" "$idx_30" "up0.30 must be used as it is"
assert_ok ipvnet network rm v40 v30
link_exists foo || fail "network rm deleted foo, which ipvnet did not create"
link_exists up0.30 || fail "network rm deleted up0.30, which existed before network create"
assert_eq "$(cat /sys/class/net/up0.30/ifindex)" "$idx_30"
ip link del foo
ip link del up0.30

echo "### 3. --internal and parent-less networks get their own dummy parent"
links0=$(link_names)
assert_ok ipvnet network create --internal --subnet 10.9.0.0/24 int1
id_int=$(printf '%s\n' "$OUT" | tail -n1)
d_int=$(new_links "$links0")
assert_eq "$(echo "$d_int" | grep -c .)" 1 "exactly one new link for an internal network: [$d_int]"
assert_match "$d_int" '^ipv' "dummy parent name"
assert_eq "$(link_kind "$d_int")" dummy "kind of $d_int"
assert_eq "$d_int" "ipv-${id_int:0:11}" "dummy name is ipv- + 11 hex of the id"
assert_eq "$(inspect int1 'd[0]["Internal"]')" true

links1=$(link_names)
assert_ok ipvnet network create --subnet 10.10.0.0/24 noparent
id_np=$(printf '%s\n' "$OUT" | tail -n1)
d_np=$(new_links "$links1")
assert_eq "$(echo "$d_np" | grep -c .)" 1 "exactly one new link for a parent-less network: [$d_np]"
assert_eq "$(link_kind "$d_np")" dummy
assert_eq "$d_np" "ipv-${id_np:0:11}"
assert_ne "$d_np" "$d_int" "each network has its own dummy"
assert_eq "$(ip -j link show dev "$d_np" | json '"UP" in d[0]["flags"]')" true "$d_np is up"

assert_ok ipvnet network rm int1
! link_exists "$d_int" || fail "the dummy $d_int of int1 was not deleted"
link_exists "$d_np" || fail "removing int1 deleted the dummy of noparent"
assert_ok ipvnet network rm noparent
! link_exists "$d_np" || fail "the dummy $d_np of noparent was not deleted"

echo "### 4. default subnets: 172.18.0.0/16, then 172.19.0.0/16"
assert_ok ipvnet network create def1
assert_eq "$(inspect def1 'd[0]["IPAM"]["Config"][0]["Subnet"]' 'd[0]["IPAM"]["Config"][0]["Gateway"]')" "172.18.0.0/16
172.18.0.1" "default subnet and gateway"
assert_ok ipvnet network create -d ipvlan def2
assert_eq "$(inspect def2 'd[0]["IPAM"]["Config"][0]["Subnet"]')" 172.19.0.0/16
assert_ok ipvnet network inspect def1 def2
assert_eq "$(echo "$OUT" | json '[n["Name"] for n in d]')" '["def1", "def2"]' "inspect of two networks"
assert_ok ipvnet network rm def1 def2
assert_eq "$(new_links "$links0")" "" "links left after removing every dummy network"

echo "### 5. one ipvlan mode and flag per parent"
assert_ok ipvnet network create --subnet 192.168.50.0/24 --gateway 192.168.50.1 -o parent=up0 -o ipvlan_mode=l2 base
expect_error 'l3|up0' ipvnet network create --subnet 10.60.0.0/24 -o parent=up0 -o ipvlan_mode=l3 m2
expect_error 'l3s|up0' ipvnet network create --subnet 10.60.0.0/24 -o parent=up0 -o ipvlan_mode=l3s m2
expect_error 'private|up0' ipvnet network create --subnet 10.60.0.0/24 -o parent=up0 -o ipvlan_mode=l2 -o ipvlan_flag=private m2
# The same mode and flag on the same parent is fine.
assert_ok ipvnet network create --subnet 10.61.0.0/24 -o parent=up0 -o ipvlan_mode=l2 -o ipvlan_flag=bridge m4
assert_ok ipvnet network rm m4
# L3 on its own parent, then the conflict the other way round.
assert_ok ipvnet network create --subnet 10.62.0.0/24 -o parent=up0.62 -o ipvlan_mode=l3 l3net
assert_eq "$(inspect l3net 'd[0]["Options"]["ipvlan_mode"]')" l3
expect_error 'l2|up0\.62' ipvnet network create --subnet 10.63.0.0/24 -o parent=up0.62 -o ipvlan_mode=l2 m5
assert_ok ipvnet network rm l3net
! link_exists up0.62 || fail "up0.62 not deleted"

echo "### 6. refused input leaves nothing behind"
# (base exists on up0, so the state dir is initialised.)
expect_error '10\.0\.0\.0/33' ipvnet network create --subnet 10.0.0.0/33 -o parent=up0 e1
expect_error '10\.0\.0\.300' ipvnet network create --subnet 10.0.0.300/24 -o parent=up0 e1
expect_error 'banana' ipvnet network create --subnet banana -o parent=up0 e1
expect_error '10\.0\.0\.0/33' ipvnet network create --subnet 10.0.0.0/33 e1
expect_error '10\.0\.0\.0/33' ipvnet network create --subnet 10.0.0.0/33 -o parent=up0.77 e1
expect_error '10\.2\.0\.1' ipvnet network create --subnet 10.1.0.0/24 --gateway 10.2.0.1 -o parent=up0 e2
expect_error '10\.2\.0\.1' ipvnet network create --subnet 10.1.0.0/24 --gateway 10.2.0.1 -o parent=up0.77 e2
expect_error '10\.2\.0\.1' ipvnet network create --subnet 10.1.0.0/24 --gateway 10.2.0.1 --internal e2
expect_error '10\.2\.0\.0/25' ipvnet network create --subnet 10.1.0.0/24 --ip-range 10.2.0.0/25 -o parent=up0 e2
expect_error '(up0\.0|[Vv][Ll][Aa][Nn][^0-9]*0([^0-9]|$))' ipvnet network create --subnet 10.3.0.0/24 -o parent=up0.0 e3
expect_error '4095' ipvnet network create --subnet 10.3.0.0/24 -o parent=up0.4095 e3
expect_error 'abcdefghijklmnop' ipvnet network create --subnet 10.4.0.0/24 -o parent=abcdefghijklmnop e4
expect_error '1234567890123' ipvnet network create --subnet 10.4.0.0/24 -o parent=up0.1234567890123 e4
expect_error '(^|[^a-z])lo([^a-z]|$)' ipvnet network create --subnet 10.5.0.0/24 -o parent=lo e5
expect_error 'nosuch0' ipvnet network create --subnet 10.6.0.0/24 -o parent=nosuch0 e6
expect_error 'nosuch0' ipvnet network create --subnet 10.6.0.0/24 -o parent=nosuch0.10 e6
expect_error 'l4' ipvnet network create --subnet 10.6.0.0/24 -o parent=up0 -o ipvlan_mode=l4 e6
expect_error 'sideways' ipvnet network create --subnet 10.6.0.0/24 -o parent=up0 -o ipvlan_flag=sideways e6
expect_error '\.\./x' ipvnet network create --subnet 10.7.0.0/24 -o parent=up0 ../x
expect_error '\.\./x' ipvnet network create --subnet 10.7.0.0/24 ../x
expect_error '(^|[^a-z])-x' ipvnet network create --subnet 10.7.0.0/24 -o parent=up0 -- -x
expect_error 'a/b' ipvnet network create --subnet 10.7.0.0/24 -o parent=up0 a/b
expect_error 'base' ipvnet network create --subnet 10.8.0.0/24 -o parent=up0 base
expect_error 'base' ipvnet network create --subnet 10.8.0.0/24 -o parent=up0.78 base
expect_error 'base' ipvnet network create --subnet 10.8.0.0/24 --internal base
expect_error 'nosuchnet' ipvnet network rm nosuchnet
expect_error 'nosuchnet' ipvnet network inspect nosuchnet

echo "### 7. a network with endpoints (leases) cannot be removed"
assert_ok ipvnet lease add base --owner t1
lease=$(printf '%s\n' "$OUT" | head -n1 | cut -d/ -f1)
assert_match "$lease" '^192\.168\.50\.[0-9]+$' "lease address"
expect_error 'base' ipvnet network rm base
assert_ok ipvnet network inspect base
assert_ok ipvnet lease rm --owner t1
assert_ok ipvnet lease rm --owner t1
assert_ok ipvnet network rm base
link_exists up0 || fail "network rm deleted up0"

echo "### 8. --state-dir selects the state directory"
alt=$TEST_TMP/alt-state
assert_ok ipvnet --state-dir "$alt" network create --subnet 10.70.0.0/24 -o parent=up0 alt1
assert_ok env IPVNET_STATE_DIR="$alt" ipvnet network ls
assert_contains "$OUT" alt1
assert_ok ipvnet network ls
assert_not_contains "$OUT" alt1
assert_ok ipvnet --state-dir "$alt" network rm alt1

echo "### all networks gone"
assert_ok ipvnet network ls
assert_eq "$(printf '%s\n' "$OUT" | grep -c .)" 1 "network ls shows only its header: $OUT"
assert_eq "$(new_links "$links0")" "" "links left behind"
echo "t-network OK"
