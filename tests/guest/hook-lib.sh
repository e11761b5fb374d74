# shellcheck shell=bash
# Helpers for the OCI hook tests (tests/guest/t-hook-*.sh), on top of lib.sh.
# Source it instead of lib.sh:
#
#     . "$(dirname "$0")/hook-lib.sh"
#
# Every hook test runs each scenario under runc AND crun, whatever RUNTIME the
# rig passes: loop `for RUNTIME in $HOOK_RUNTIMES; do ... done` (export it).
# Container ids carry the runtime as a suffix (c1-runc, c1-crun) so that the
# two runs never share an id, a record or a host name.
#
#   hk_bundle NAME [KEY=VALUE...] [-- CMD...]
#       make_bundle on the shared read-only rootfs (fast), hooks installed.
#   hk_hosts_mount NAME NETWORK
#       bind-mount $IPVNET_STATE_DIR/hosts/NETWORK read-only at /etc/hosts.
#   hk_run NAME [KEY=VALUE...]      bundle + create + start; the test fails
#                                   if the container does not start
#   hk_create_fails NAME [ID]       creating container ID (default NAME) from
#                                   bundle NAME must fail: MSG gets the
#                                   runtime's error plus crun's hook.err
#                                   (HOOK_ERR: hook.err alone); the container
#                                   must not be running (it is NOT deleted:
#                                   the caller checks leftovers first, then
#                                   calls hk_forget NAME)
#   hk_forget ID                    delete the container if the runtime still
#                                   knows it
#   hk_addrs ID [DEV] [4|6]         global addresses of DEV (default eth0) as
#                                   seen inside the container, one per line,
#                                   without /PLEN
#   hk_addr ID [DEV] [4|6]          the one address (fails if not exactly one)
#   hk_routes ID [4|6]              `ip route` / `ip -6 route` inside
#   hk_ping ID ADDR...              each ADDR (or name) must answer from ID
#   hk_no_ping ID ADDR...           no ADDR may answer from ID (tried in
#                                   parallel, 2 s each)
#   hk_state                        links of the host namespace, endpoint
#                                   records, leases, hosts files and the
#                                   state dir listing: compare before/after
#   hk_same_state BEFORE WHAT       the state must equal BEFORE
#   hk_released [NETWORK]           no lease on NETWORK; without NETWORK:
#                                   no lease at all and no endpoint record
#   hk_in ERE ADDR                  ADDR must be in the subnet ERE describes
#                                   (a plain grep -E on the address)

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOOK_RUNTIMES=${HOOK_RUNTIMES:-runc crun}
for _rt in $HOOK_RUNTIMES; do
  command -v "$_rt" >/dev/null || fail "runtime $_rt is not installed in the guest"
done

hk_bundle() { BUNDLE_RO=1 make_bundle "$@" >/dev/null; }

hk_hosts_mount() {
  local cfg=/tmp/bundles/$1/config.json src=$IPVNET_STATE_DIR/hosts/$2
  [ -f "$src" ] || fail "no hosts file $src for network $2"
  python3 - "$cfg" "$src" <<'EOF'
import json, os, sys
p, src = sys.argv[1:]
with open(p) as f:
    c = json.load(f)
c.setdefault("mounts", []).append(
    {"destination": "/etc/hosts", "type": "bind", "source": src, "options": ["rbind", "ro"]})
with open(p + ".tmp", "w") as f:
    json.dump(c, f, indent=2)
os.rename(p + ".tmp", p)
EOF
}

hk_run() {
  local n=$1; shift
  hk_bundle "$n" "$@"
  assert_ok container_run "$n"
}

hk_create_fails() {
  local n=$1 id=${2:-$1} dir=/tmp/bundles/$1 st
  run container_create "$n" "$id"
  [ "$RC" != 0 ] || fail "container $id ($RUNTIME) was created but must not be"
  HOOK_ERR=$(cat "$dir/hook.err" 2>/dev/null || true)
  MSG="$(cat "$dir/err" 2>/dev/null || true)
$HOOK_ERR"
  MSG=${MSG//\\\"/\"} # runc's log line escapes the quotes of the hook's message
  if st=$(container_status "$id" 2>/dev/null); then
    case "$st" in
      running | created) fail "container $id ($RUNTIME) is $st after a failed create" ;;
    esac
  fi
  echo "refused ($RUNTIME): $MSG" >&2
}

hk_forget() {
  if "$RUNTIME" state "$1" >/dev/null 2>&1; then
    "$RUNTIME" delete --force "$1" >/dev/null 2>&1 || true
  fi
}

hk_addrs() {
  local id=$1 dev=${2:-eth0} fam=${3:-4} out
  out=$(container_exec "$id" ip -o "-$fam" addr show dev "$dev") || fail "ip addr in $id failed"
  printf '%s\n' "$out" | awk '{for (i = 1; i < NF; i++) if ($i == "inet" || $i == "inet6") print $(i + 1)}' |
    cut -d/ -f1 | grep -v '^fe80:' || true
}

hk_addr() {
  local a
  a=$(hk_addrs "$@")
  [ "$(printf '%s\n' "$a" | grep -c .)" == 1 ] || fail "expected one IPv${3:-4} address on ${2:-eth0} of $1, got [$a]"
  printf '%s\n' "$a"
}

hk_routes() {
  local id=$1 fam=${2:-4}
  if [ "$fam" == 6 ]; then container_exec "$id" ip -6 route; else container_exec "$id" ip route; fi
}

hk_ping() {
  local id=$1 a; shift
  for a in "$@"; do
    case "$a" in
      *:*) run container_exec "$id" ping -6 -c 1 -W 3 "$a" ;;
      *) run container_exec "$id" ping -c 1 -W 3 "$a" ;;
    esac
    [ "$RC" == 0 ] || fail "$id ($RUNTIME) cannot reach $a: $OUT $ERR"
  done
}

hk_no_ping() {
  local id=$1 a i=0 pids=() rc out
  shift
  for a in "$@"; do
    i=$((i + 1))
    case "$a" in
      *:*) container_exec "$id" ping -6 -c 1 -W 2 "$a" >"$TEST_TMP/noping.$i" 2>&1 & ;;
      *) container_exec "$id" ping -c 1 -W 2 "$a" >"$TEST_TMP/noping.$i" 2>&1 & ;;
    esac
    pids+=($!)
  done
  i=0
  for a in "$@"; do
    rc=0
    wait "${pids[i]}" || rc=$?
    i=$((i + 1))
    out=$(cat "$TEST_TMP/noping.$i")
    [ "$rc" != 0 ] || fail "$id ($RUNTIME) reached $a, which it must not: $out"
    # ping itself must have run and found no way (not a failed exec).
    case "$out" in
      *"100% packet loss"* | *"nreachable"*) echo "no answer from $a, as expected: $out" >&2 ;;
      *) fail "ping $a in $id ($RUNTIME) failed without reaching the network: $out" ;;
    esac
  done
}

hk_state() {
  echo "# links"
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort
  echo "# leases"
  ipvnet lease ls || echo "(lease ls failed)"
  echo "# endpoints"
  ls "$IPVNET_STATE_DIR/endpoints" 2>/dev/null || true
  echo "# hosts files"
  local h
  for h in "$IPVNET_STATE_DIR"/hosts/*; do
    [ -e "$h" ] || continue
    echo "## $(basename "$h")"
    cat "$h"
  done
  snapshot
}

hk_same_state() {
  local before=$1 what=$2 after
  after=$(hk_state)
  if [ "$after" != "$before" ]; then
    fail "$what left something behind:
$(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after"))"
  fi
}

hk_released() {
  local l
  l=$(lease_list "$@")
  [ -z "$l" ] || fail "leases left: $l"
  (($#)) && return 0
  l=$(ls "$IPVNET_STATE_DIR/endpoints" 2>/dev/null || true)
  [ -z "$l" ] || fail "endpoint records left: $l"
}

hk_count_default() { printf '%s\n' "$1" | grep -c '^default' || true; }
