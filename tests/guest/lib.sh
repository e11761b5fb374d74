# shellcheck shell=bash
# Helpers for the in-guest tests (tests/guest/t-*.sh). Source it first:
#
#     . "$(dirname "$0")/lib.sh"
#
# It turns on `set -eu -o pipefail`. tests/guest/guest-init.sh runs every
# test as `bash -x t-NAME.sh` in a fresh guest state with these variables:
#   IPVNET_ROOT       the repository (read-only in the guest)
#   IPVNET_ROOTFS     the busybox-static rootfs (target/guest/rootfs, copied to
#                     /run/ipvnet-rootfs in the guest: do not write into it)
#   IPVNET_STATE_DIR  a fresh, empty state dir for this test (/tmp/ipvnet-state-NAME)
#   RUNTIME           runc (default) or crun: the OCI runtime the tests drive
#   TEST_NAME         the test's name (t-foo); TEST_TMP a fresh scratch dir
#   PATH              starts with /run/ipvnet-bin (a tmpfs copy of the executables
#                     of target/release: ipvnet, ipvnet-runc, ...; exec from 9p is
#                     slow), then $IPVNET_ROOT/target/release
# Between two tests the init removes every container (runc and crun), every
# named netns and every link created since boot, and kills the test's process
# group, so a test does not need to clean up after itself (it may, with on_exit).
#
# Failing and asserting (all print to stderr and exit 1 on failure; inside a
# $(...) subshell `fail` also signals the test's main shell, which then exits):
#   fail MSG...                     fail the test with MSG
#   assert_eq ACTUAL EXPECTED [MSG] string equality
#   assert_ne ACTUAL UNEXPECTED [MSG]
#   assert_contains TEXT NEEDLE [MSG]      fixed-string search
#   assert_not_contains TEXT NEEDLE [MSG]
#   assert_match TEXT ERE [MSG]            grep -E search
#   assert_ok CMD...                CMD must succeed; stdout in $OUT, stderr in $ERR
#   assert_fails CMD...             CMD must exit non-zero; stdout in $OUT,
#                                   stderr in $ERR, exit status in $RC
#   run CMD...                      run CMD, never fail: $OUT, $ERR, $RC
#   wait_until TIMEOUT_S CMD...     retry CMD (quietly) every 0.2 s until it
#                                   succeeds; fails the test after TIMEOUT_S
#   on_exit CMD...                  run CMD (eval'd) when the test exits, LIFO
#   json EXPR...                    read JSON on stdin, print each Python
#                                   expression EXPR over it (bound to `d`), one
#                                   per line; strings print raw, others as
#                                   JSON. E.g. (python costs ~0.5 s a start):
#                                   ipvnet network inspect n | json 'd[0]["Id"]'
#   snapshot                        print `ip -o link` and `ls -R` of
#                                   $IPVNET_STATE_DIR: compare before/after an
#                                   error to check that nothing was created
#   link_kind IF                    print the link's kind (vlan, dummy, ipvlan,
#                                   veth, ...) or "" for none; fails if IF is absent
#   link_exists IF                  status only
#   lease_list [NETWORK]            `ipvnet lease ls [NETWORK]` as NETWORK ADDRESS
#                                   OWNER lines: a header line dropped, /PLEN
#                                   cut from addresses; fails if ls fails
#
# Upstream network (emulates the switch/router beyond the ipvlan parent):
#   upstream_router NS PARENT_IF [ADDR/PLEN...]
#       creates netns NS and a veth pair: PARENT_IF (up, no address) stays in
#       the test's namespace and is the ipvlan parent; its peer is `eth0` in NS,
#       up, holding ADDR/PLEN... (IPv4 or IPv6, IPv6 added nodad). NS has lo up
#       and forwarding on, so it can act as the gateway of the subnets it holds.
#   upstream_vlan NS VID [ADDR/PLEN...]
#       adds the 802.1q sub-interface eth0.VID on NS's eth0 with the addresses:
#       the far end of a trunk; the host side is PARENT_IF.VID (made by ipvnet
#       or by the test).
#   in_ns NS CMD...                 ip netns exec NS CMD...
#
# OCI bundles and containers (RUNTIME picks runc or crun):
#   make_bundle NAME [KEY=VALUE...] [-- CMD ARGS...]
#       creates the bundle /tmp/bundles/NAME: config.json from `runc spec`
#       (`crun spec` if there is no runc), rootfs = a copy of $IPVNET_ROOTFS
#       (writable), process.args = CMD ARGS (default: sleep 3600), terminal
#       false, annotations KEY=VALUE, hostname NAME, its own network namespace,
#       CAP_NET_RAW added, and hooks createRuntime/poststop running
#       `ipvnet hook createRuntime|poststop` with env IPVNET_STATE_DIR and PATH.
#       crun's hook output goes to /tmp/bundles/NAME/hook.out and hook.err.
#       Knobs (environment): BUNDLE_HOOKS=0 leaves the hooks out;
#       BUNDLE_CAPS="CAP_X CAP_Y" adds capabilities; BUNDLE_RO=1 points root at
#       the shared read-only rootfs instead of copying it. Prints the bundle dir.
#   container_create NAME [ID]      `$RUNTIME create` (ID defaults to NAME); the
#                                   container's stdout/stderr go to
#                                   /tmp/bundles/NAME/{out,err}; on failure the
#                                   runtime's and crun's hook messages are
#                                   printed to stderr and the status returned
#   container_start ID              `$RUNTIME start`
#   container_run NAME [ID]         create + start
#   container_exec ID CMD...        `$RUNTIME exec ID CMD...` (stdio passed through)
#   container_pid ID                the container's init pid (from `state`)
#   container_status ID             created | running | stopped | ...
#   container_netns ID              /proc/PID/ns/net of the container
#   container_rm ID                 `$RUNTIME delete --force ID` (runs poststop);
#                                   returns its status, stderr passed through
#
# Notes: the guest is ~10x slower than the host (an exec costs ~100 ms, a
# container ~1 s); /tmp is writable (in memory), the host tree is read-only.

set -eu -o pipefail
PS4='+ ${SECONDS}s '

: "${IPVNET_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${IPVNET_ROOTFS:=$IPVNET_ROOT/target/guest/rootfs}"
: "${IPVNET_STATE_DIR:=/tmp/ipvnet-state-${TEST_NAME:-manual}}"
: "${RUNTIME:=runc}"
: "${TEST_NAME:=$(basename "$0" .sh)}"
: "${TEST_TMP:=/tmp/test-$TEST_NAME}"
export IPVNET_ROOT IPVNET_ROOTFS IPVNET_STATE_DIR RUNTIME TEST_NAME TEST_TMP
mkdir -p "$TEST_TMP"
case ":$PATH:" in
  *":$IPVNET_ROOT/target/release:"*) ;;
  *) PATH="$IPVNET_ROOT/target/release:$PATH" ;;
esac
export PATH

_LIB_MAIN_PID=$$
trap 'exit 1' USR1

fail() {
  echo "FAIL: $*" >&2
  if [ "${BASHPID:-$$}" != "$_LIB_MAIN_PID" ]; then
    kill -USR1 "$_LIB_MAIN_PID" 2>/dev/null || true
  fi
  exit 1
}

assert_eq() {
  [ "$1" == "$2" ] || fail "${3:-assert_eq}: expected [$2], got [$1]"
}

assert_ne() {
  [ "$1" != "$2" ] || fail "${3:-assert_ne}: got [$1], which it must not be"
}

assert_contains() {
  case "$1" in
    *"$2"*) ;;
    *) fail "${3:-assert_contains}: [$2] not found in: $1" ;;
  esac
}

assert_not_contains() {
  case "$1" in
    *"$2"*) fail "${3:-assert_not_contains}: [$2] found in: $1" ;;
    *) ;;
  esac
}

assert_match() {  # like grep -E: some line of TEXT matches ERE
  local line
  while IFS= read -r line; do
    [[ $line =~ $2 ]] && return 0
  done <<<"$1"
  fail "${3:-assert_match}: /$2/ does not match: $1"
}

# run CMD...: never fails; sets OUT, ERR, RC. (No exec of its own: execs are
# slow in the guest.)
run() {
  local o="$TEST_TMP/.run.${BASHPID:-$$}.out" e="$TEST_TMP/.run.${BASHPID:-$$}.err"
  RC=0
  "$@" >"$o" 2>"$e" || RC=$?
  OUT=$(<"$o") ERR=$(<"$e")
  return 0
}

assert_ok() {
  run "$@"
  if [ "$RC" != 0 ]; then
    fail "command failed (exit $RC): $*
--- stdout:
$OUT
--- stderr:
$ERR"
  fi
  [ -z "$ERR" ] || printf '%s\n' "$ERR" >&2
  return 0
}

assert_fails() {
  run "$@"
  if [ "$RC" == 0 ]; then
    fail "command succeeded but must fail: $*
--- stdout:
$OUT
--- stderr:
$ERR"
  fi
  printf 'expected failure (exit %s): %s\n  stderr: %s\n' "$RC" "$*" "$ERR" >&2
  return 0
}

wait_until() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  while ! "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || fail "timed out after ${limit}s waiting for: $*"
    sleep 0.2
  done
}

_LIB_ON_EXIT=()
_lib_run_on_exit() {
  local rc=$? i
  for ((i = ${#_LIB_ON_EXIT[@]} - 1; i >= 0; i--)); do
    eval "${_LIB_ON_EXIT[i]}" || true
  done
  return $rc
}
trap _lib_run_on_exit EXIT
on_exit() { _LIB_ON_EXIT+=("$*"); }

json() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
for e in sys.argv[1:]:
    v = eval(e, {"json": json}, {"d": d})
    print(v if isinstance(v, str) else json.dumps(v))
' "$@"
}

link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

link_kind() {
  local d w
  d=$(ip -d -o link show dev "$1" 2>/dev/null) || fail "link $1 does not exist"
  # "N: NAME: <FLAGS> ...\    link/ether ... maxmtu N \    KIND ..." (no
  # third part for a link without a kind, like lo)
  IFS='\' read -r -a d <<<"$d"
  read -r w _ <<<"${d[2]:-}"
  case "$w" in
    addrgenmode | altname | "") echo "" ;;
    *) echo "$w" ;;
  esac
}

lease_list() {
  local out
  out=$(ipvnet lease ls "$@") || fail "ipvnet lease ls $* failed"
  printf '%s\n' "$out" | awk 'NF && !($1 == "NETWORK" && $2 == "ADDRESS") {
    a = $2; sub(/\/.*/, "", a); print $1, a, $3 }'
}

snapshot() {
  echo "# links"
  ip -o link show
  echo "# state dir"
  if [ -d "$IPVNET_STATE_DIR" ]; then (cd "$IPVNET_STATE_DIR" && ls -R); else echo "(absent)"; fi
}

# ---------------------------------------------------------------- upstream --

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

_add_addrs() {
  local ns=$1 dev=$2 a; shift 2
  for a in "$@"; do
    case "$a" in
      *:*) ip -n "$ns" -6 addr add "$a" dev "$dev" nodad ;;
      *) ip -n "$ns" addr add "$a" dev "$dev" ;;
    esac
  done
}

upstream_router() {
  local ns=$1 parent=$2; shift 2
  [ ${#parent} -le 15 ] || fail "upstream_router: $parent is longer than 15 characters"
  ip netns add "$ns"
  ip link add "$parent" type veth peer name eth0 netns "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null || true
  _add_addrs "$ns" eth0 "$@"
  ip -n "$ns" link set eth0 up
  ip link set "$parent" up
}

upstream_vlan() {
  local ns=$1 vid=$2; shift 2
  ip -n "$ns" link add link eth0 name "eth0.$vid" type vlan id "$vid"
  _add_addrs "$ns" "eth0.$vid" "$@"
  ip -n "$ns" link set "eth0.$vid" up
}

# ------------------------------------------------------------- containers --

make_bundle() {
  local name=$1; shift
  local anns=() args=()
  while (($#)); do
    case "$1" in
      --) shift; args=("$@"); break ;;
      *=*) anns+=("$1") ;;
      *) fail "make_bundle: expected KEY=VALUE or --, got [$1]" ;;
    esac
    shift
  done
  ((${#args[@]})) || args=(sleep 3600)
  local dir=/tmp/bundles/$name
  rm -rf "$dir"
  mkdir -p "$dir"
  if command -v runc >/dev/null; then (cd "$dir" && runc spec); else (cd "$dir" && crun spec); fi
  local rootfs=$IPVNET_ROOTFS ro=1
  if [ "${BUNDLE_RO:-0}" != 1 ]; then
    cp -a "$IPVNET_ROOTFS" "$dir/rootfs"
    rootfs=$dir/rootfs ro=0
  fi
  [ -x "$rootfs/bin/busybox" ] || fail "make_bundle: no busybox rootfs at $rootfs"
  local ipvnet
  ipvnet=$(command -v ipvnet) || fail "make_bundle: ipvnet is not on PATH"
  python3 - "$dir" "$name" "$rootfs" "$ro" "${BUNDLE_HOOKS:-1}" "$ipvnet" \
    "$IPVNET_STATE_DIR" "$PATH" "${BUNDLE_CAPS:-}" "${#anns[@]}" "${anns[@]}" "${args[@]}" <<'EOF'
import json, os, sys
(dirn, name, rootfs, ro, hooks, ipvnet, state, path, caps, nann), rest = sys.argv[1:11], sys.argv[11:]
nann = int(nann)
anns, args = rest[:nann], rest[nann:]
cfg_path = os.path.join(dirn, "config.json")
with open(cfg_path) as f:
    c = json.load(f)
c["process"]["terminal"] = False
c["process"]["args"] = args
c["root"] = {"path": rootfs, "readonly": ro == "1"}
c["hostname"] = name[:63]
a = c.setdefault("annotations", {})
a["run.oci.hooks.stdout"] = os.path.join(dirn, "hook.out")
a["run.oci.hooks.stderr"] = os.path.join(dirn, "hook.err")
for kv in anns:
    k, v = kv.split("=", 1)
    a[k] = v
ns = c["linux"].setdefault("namespaces", [])
if not any(n.get("type") == "network" for n in ns):
    ns.append({"type": "network"})
want = ["CAP_NET_RAW"] + caps.split()
for k, lst in c["process"].get("capabilities", {}).items():
    for cap in want:
        if cap not in lst:
            lst.append(cap)
c["linux"].setdefault("sysctl", {})["net.ipv4.ping_group_range"] = "0 2147483647"
if hooks == "1":
    env = ["IPVNET_STATE_DIR=" + state, "PATH=" + path]
    h = c.setdefault("hooks", {})
    for stage in ("createRuntime", "poststop"):
        h[stage] = [{"path": ipvnet, "args": ["ipvnet", "hook", stage], "env": env}]
tmp = cfg_path + ".tmp"
with open(tmp, "w") as f:
    json.dump(c, f, indent=2)
os.rename(tmp, cfg_path)
EOF
  echo "$dir"
}

container_create() {
  local name=$1 id=${2:-$1} dir=/tmp/bundles/$1 rc=0
  if [ ! -f "$dir/config.json" ]; then
    echo "container_create: no bundle $dir (make_bundle first)" >&2
    return 1
  fi
  rm -f "$dir/hook.out" "$dir/hook.err"
  "$RUNTIME" create --bundle "$dir" "$id" </dev/null >"$dir/out" 2>"$dir/err" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "$RUNTIME create $id failed (exit $rc):" >&2
    cat "$dir/err" >&2 || true
    if [ -s "$dir/hook.err" ]; then cat "$dir/hook.err" >&2; fi
    if [ -s "$dir/hook.out" ]; then cat "$dir/hook.out" >&2; fi
  fi
  return "$rc"
}

container_start() { "$RUNTIME" start "$1"; }

container_run() {
  container_create "$@" || return
  container_start "${2:-$1}"
}

container_exec() { local id=$1; shift; "$RUNTIME" exec "$id" "$@"; }

container_status() { "$RUNTIME" state "$1" | json 'd["status"]'; }

container_pid() { "$RUNTIME" state "$1" | json 'd["pid"]'; }

container_netns() { echo "/proc/$(container_pid "$1")/ns/net"; }

container_rm() { "$RUNTIME" delete --force "$1"; }
