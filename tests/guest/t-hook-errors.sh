#!/bin/bash
# The OCI hook with real runc and crun containers: refused input and leaks
# (issue 3, scenario 10, poststop and gc).
# 10. unknown network, address outside the subnets, address in use (in the
#     store, and in the kernel only), missing parent, malformed annotations:
#     the container does not start, the message says why, and nothing is
#     left behind: no lease, record, hosts line or link (crun runs no poststop
#     after a failed createRuntime, so there the hook's own rollback is all);
# poststop twice, or for an unknown id, succeeds;
# gc releases the lease of a container whose runtime died before poststop,
#     and never a live container's.
# timeout: 900
. "$(dirname "$0")/hook-lib.sh"
PS4='+ [${SECONDS}s] '

upstream_router rtr up0 192.168.50.1/24
assert_ok ipvnet network create --subnet 192.168.50.0/24 -o parent=up0 l2a
# A network whose parent disappears after create. One lease taken and given
# back first, so its address store exists (a refused container must then
# change nothing at all in the state dir).
ip link add gone0 type dummy
ip link set gone0 up
assert_ok ipvnet network create --subnet 192.168.77.0/24 -o parent=gone0 orphan
assert_ok ipvnet lease add orphan --owner warmup
assert_ok ipvnet lease rm --owner warmup
ip link del gone0
# An address held on up0 by an ipvlan link ipvnet knows nothing about: the
# store hands it out, the kernel refuses it.
ip netns add squat
ip link add link up0 name sq0 type ipvlan mode l2
ip link set sq0 netns squat
ip -n squat addr add 192.168.50.77/24 dev sq0
ip -n squat link set sq0 up

# One bundle per bad request, shared by both runtimes (ids differ).
declare -A want=(
  [e-nonet]='network "nope" not found'
  [e-outside]='address 10.99.0.5 is in no subnet of network l2a'
  [e-inuse]='address 192.168.50.10 on network "l2a" is in use by holder-'
  [e-kernel]='address 192.168.50.77 is already assigned to an ipvlan device'
  [e-noparent]='parent interface gone0 of network orphan does not exist'
  [e-partial]='parent interface gone0 of network orphan does not exist'
  [e-badip]='annotation ipvnet.ip: "192.168.50.300" is not an IPv4 address'
  [e-badip6]='annotation ipvnet.ip6: "2001:db8::/64" is not an IPv6 address'
  [e-typo]='annotation ipvnet.netwrok: unknown key'
  [e-gateway]='address 192.168.50.1 is the gateway of 192.168.50.0/24'
  [e-emptyitem]='annotation ipvnet.network: "l2a,,orphan" has an empty item'
  [e-nonetkey]='annotation ipvnet.ip: "192.168.50.5" given without ipvnet.network'
)
_hk_par "making bundles" hk_bundle "e-nonet ipvnet.network=nope" \
  "e-outside ipvnet.network=l2a ipvnet.ip=10.99.0.5" \
  "e-inuse ipvnet.network=l2a ipvnet.ip=192.168.50.10" \
  "e-kernel ipvnet.network=l2a ipvnet.ip=192.168.50.77" \
  "e-noparent ipvnet.network=orphan" \
  "e-partial ipvnet.network=l2a,orphan" \
  "e-badip ipvnet.network=l2a ipvnet.ip=192.168.50.300" \
  "e-badip6 ipvnet.network=l2a ipvnet.ip6=2001:db8::/64" \
  "e-typo ipvnet.netwrok=l2a" \
  "e-gateway ipvnet.network=l2a ipvnet.ip=192.168.50.1" \
  "e-emptyitem ipvnet.network=l2a,,orphan" \
  "e-nonetkey ipvnet.ip=192.168.50.5" \
  "holder ipvnet.network=l2a ipvnet.ip=192.168.50.10" \
  "live ipvnet.network=l2a" \
  "dead ipvnet.network=l2a"

# shim ID: `$RUNTIME create` of bundle dead as ID under a subreaper that then
# reaps every orphan until none is left (like containerd's shim).
cat >"$TEST_TMP/shim.py" <<'EOF'
import ctypes, os, sys
rt, bundle, cid = sys.argv[1:]
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
pid = os.fork()
if pid == 0:
    out = os.open(os.path.join(bundle, "out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.execvp(rt, [rt, "create", "--bundle", bundle, cid])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
EOF
shim() { python3 "$TEST_TMP/shim.py" "$RUNTIME" /tmp/bundles/dead "$1" </dev/null >/dev/null 2>"$TEST_TMP/shim.err"; }

for RUNTIME in $HOOK_RUNTIMES; do
  export RUNTIME
  r=$RUNTIME
  echo "################ runtime $r"
  assert_ok container_run holder "holder-$r"

  echo "### 10. refused requests leave nothing behind ($r)"
  for b in e-nonet e-outside e-inuse e-kernel e-noparent e-partial e-badip e-badip6 e-typo e-gateway \
    e-emptyitem e-nonetkey; do
    echo "## $b ($r)"
    before=$(hk_state)
    hk_create_fails "$b" "$b-$r"
    assert_contains "$MSG" "ipvnet: " "$b: the hook's message reaches the user"
    assert_contains "$MSG" "${want[$b]}" "$b: the message says why"
    if [ "$r" == crun ]; then
      # crun writes the hook's stderr to run.oci.hooks.stderr: one line.
      assert_eq "$(printf '%s\n' "$HOOK_ERR" | grep -c .)" 1 "$b: one line on stderr: [$HOOK_ERR]"
      assert_match "$HOOK_ERR" '^ipvnet: ' "$b"
    fi
    hk_same_state "$before" "refused container $b-$r"
    hk_forget "$b-$r"
  done
  # The kernel refusal came after the link was made and moved: it is gone
  # with the rest (checked above); the squatter keeps its address.
  assert_ok ip -n squat -o addr show dev sq0
  assert_contains "$OUT" 192.168.50.77
  assert_eq "$(lease_list l2a)" "l2a 192.168.50.10 holder-$r" "only the holder's lease"

  echo "### poststop: unknown id, twice ($r)"
  assert_ok sh -c 'printf %s "{\"id\":\"nope\",\"status\":\"stopped\"}" | ipvnet hook poststop'
  assert_eq "$ERR" "" "poststop for an unknown id is silent"
  assert_ok container_rm "holder-$r"
  hk_released
  before=$(hk_state)
  assert_ok sh -c "printf '{\"ociVersion\":\"1.0.2\",\"id\":\"holder-$r\",\"status\":\"stopped\",\"bundle\":\"/tmp/bundles/holder\"}' | ipvnet hook poststop"
  assert_ok sh -c "printf '{\"ociVersion\":\"1.0\",\"id\":\"holder-$r\",\"status\":\"stopped\"}' | ipvnet hook poststop"
  hk_same_state "$before" "poststop run again for holder-$r"

  echo "### gc: a container whose runtime died before poststop ($r)"
  assert_ok container_run live "live-$r"
  # dead-$r is created the way containerd's shim does it: under a child
  # subreaper that reaps the container's init when it dies (the guest's
  # PID 1 does not reap orphans, which would leave a zombie).
  shim "dead-$r" &
  wait_until 60 sh -c "$RUNTIME state dead-$r | grep -q '\"created\"'"
  assert_eq "$(container_status "dead-$r")" created
  assert_ok container_start "dead-$r"
  hk_info "live-$r" "dead-$r"
  live=$(hk_addr "live-$r") dead=$(hk_addr "dead-$r")
  pid=$(container_pid "dead-$r")
  # Nothing is gone yet: gc keeps both.
  assert_ok ipvnet gc
  assert_not_contains "$OUT" released
  assert_contains "$(lease_list l2a)" "l2a $dead dead-$r"
  # The container's processes die and the runtime forgets it, no hook runs.
  assert_ok "$RUNTIME" kill "dead-$r" KILL
  wait_until 60 sh -c "! test -e /proc/$pid"
  rm -rf "/run/$RUNTIME/dead-$r"
  run "$RUNTIME" state "dead-$r"
  assert_ne "$RC" 0 "the runtime must have forgotten dead-$r"
  assert_contains "$(lease_list l2a)" "l2a $dead dead-$r" "no poststop ran: the lease is still held"
  assert_ok ipvnet gc
  assert_contains "$OUT" "released dead-$r"
  assert_not_contains "$OUT" "live-$r"
  assert_eq "$(lease_list l2a)" "l2a $live live-$r" "gc released the dead one only"
  [ -f "$IPVNET_STATE_DIR/endpoints/live-$r.json" ] || fail "gc removed the record of a live container"
  [ ! -e "$IPVNET_STATE_DIR/endpoints/dead-$r.json" ] || fail "gc left the dead container's record"
  assert_not_contains "$(cat "$IPVNET_STATE_DIR/hosts/l2a")" "dead-$r" "gc left the dead one in the hosts file"
  hk_ping "live-$r" 192.168.50.1
  assert_ok ipvnet gc
  assert_not_contains "$OUT" released "a second gc releases nothing"
  assert_ok container_rm "live-$r"
  hk_released
done

echo "### gc with a simulated hook input: pid of a process in its own netns"
unshare -n sleep 600 &
simpid=$!
wait_until 10 sh -c "[ \"\$(readlink /proc/$simpid/ns/net)\" != \"\$(readlink /proc/self/ns/net)\" ]"
assert_ok sh -c "printf '{\"ociVersion\":\"1.0.2\",\"id\":\"sim\",\"status\":\"creating\",\"pid\":$simpid,\"annotations\":{\"ipvnet.network\":\"l2a\"}}' | ipvnet hook createRuntime"
assert_ok nsenter -t "$simpid" -n ip -o -4 addr show dev eth0
assert_contains "$OUT" 192.168.50.
assert_match "$(lease_list l2a)" ' sim$'
assert_ok ipvnet gc
assert_match "$(lease_list l2a)" ' sim$' "gc must keep a live process's lease"
kill "$simpid"
wait "$simpid" || true
assert_ok ipvnet gc
assert_contains "$OUT" "released sim"
hk_released

echo "### a garbled state on stdin is refused with a message"
assert_fails sh -c 'echo nonsense | ipvnet hook createRuntime'
assert_match "$ERR" '^ipvnet: .*state'
assert_ok ipvnet network rm l2a orphan
echo "t-hook-errors OK"
