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
#       make_bundle on the shared read-only rootfs (fast), hooks installed;
#       with HK_HOSTS_NET=NETWORK in the environment, also hk_hosts_mount.
#   hk_hosts_mount NAME NETWORK
#       bind-mount $IPVNET_STATE_DIR/hosts/NETWORK read-only at /etc/hosts.
#   hk_run NAME [KEY=VALUE...]      bundle + create + start; the test fails
#                                   if the container does not start
#   hk_run_many "NAME [KEY=VALUE...]"...
#                                   hk_run of several containers at once
#                                   (values must not hold spaces)
#   hk_rm_many ID...                delete containers at once (each must succeed)
#   hk_create_fails NAME [ID]       creating container ID (default NAME) from
#                                   bundle NAME must fail: MSG gets the
#                                   runtime's error plus crun's hook.err
#                                   (HOOK_ERR: hook.err alone); the container
#                                   must not be running (it is NOT deleted:
#                                   the caller checks leftovers first, then
#                                   calls hk_forget NAME)
#   hk_forget ID                    delete the container if the runtime still
#                                   knows it (runs poststop)
#   hk_info ID...                   read, with one exec per container (all at
#                                   once), its addresses, routes and links;
#                                   the helpers below then answer from this
#                                   snapshot (without it, each one execs)
#   hk_addrs ID [DEV] [4|6]         global addresses of DEV (default eth0) as
#                                   seen inside the container, one per line,
#                                   without /PLEN
#   hk_addr ID [DEV] [4|6]          the one address (fails if not exactly one)
#   hk_routes ID [4|6]              `ip route` / `ip -6 route` inside
#   hk_links ID                     `ip -o link show` inside
#   hk_ping ID ADDR...              each ADDR (or name) must answer from ID
#                                   (one exec for all)
#   hk_no_ping ID ADDR...           no ADDR may answer from ID, and ping must
#                                   say why (loss, unreachable): one exec,
#                                   the pings in parallel, 2 s each
#   hk_state                        links of the host namespace, leases, hosts
#                                   files and the state dir listing (records,
#                                   lease files, bitmaps): compare before/after
#   hk_same_state BEFORE WHAT       the state must equal BEFORE
#   hk_released [NETWORK]           no lease on NETWORK; without NETWORK:
#                                   no lease at all and no endpoint record
#   hk_count_default ROUTES         number of default routes in ROUTES

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOOK_RUNTIMES=${HOOK_RUNTIMES:-runc crun}
for _rt in $HOOK_RUNTIMES; do
  command -v "$_rt" >/dev/null || fail "runtime $_rt is not installed in the guest"
done

hk_bundle() {
  BUNDLE_RO=1 make_bundle "$@" >/dev/null || return
  [ -z "${HK_HOSTS_NET:-}" ] || hk_hosts_mount "$1" "$HK_HOSTS_NET"
}

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

# _hk_par LABEL CMD-PREFIX ARG...: `CMD-PREFIX ARG` for each ARG at once
# (ARG word-split), each job's stderr kept; fails naming the failed ones.
_hk_par() {
  local label=$1 cmd=$2 a i=0 pids=() bad=""
  shift 2
  for a in "$@"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    ($cmd $a) >"$TEST_TMP/par.$i.out" 2>"$TEST_TMP/par.$i.err" &
    pids+=($!)
  done
  i=0
  for a in "$@"; do
    i=$((i + 1))
    wait "${pids[i - 1]}" || bad+="
[$a]: $(grep -v '^+' "$TEST_TMP/par.$i.err" | tail -n 6)"
  done
  [ -z "$bad" ] || fail "$label failed ($RUNTIME):$bad"
}

_hk_run1() { local n=$1; shift; hk_bundle "$n" "$@" && container_run "$n"; }
hk_run_many() { _hk_par "starting containers" _hk_run1 "$@"; }
hk_rm_many() { _hk_par "removing containers" container_rm "$@"; }

hk_create_fails() {
  local n=$1 id=${2:-$1} dir=/tmp/bundles/$1 st
  run container_create "$n" "$id"
  [ "$RC" != 0 ] || fail "container $id ($RUNTIME) was created but must not be"
  HOOK_ERR=$(cat "$dir/hook.err" 2>/dev/null || true)
  MSG="$(cat "$dir/err" 2>/dev/null || true)
$HOOK_ERR"
  MSG=${MSG//\\\"/\"} # runc's log line escapes the quotes of the hook's message
  if st=$("$RUNTIME" state "$id" 2>/dev/null); then
    case "$st" in
      *'"running"'* | *'"created"'*) fail "container $id ($RUNTIME) exists after a failed create: $st" ;;
    esac
  fi
  echo "refused ($RUNTIME): $MSG" >&2
}

hk_forget() { "$RUNTIME" delete --force "$1" >/dev/null 2>&1 || true; }

declare -A _HK_INFO=()
_HK_INFO_CMD='echo @@ADDR; ip -o addr show; echo @@R4; ip route; echo @@R6; ip -6 route; echo @@LINK; ip -o link show'

hk_info() {
  local id i=0 pids=() out
  for id in "$@"; do
    i=$((i + 1))
    container_exec "$id" sh -c "$_HK_INFO_CMD" >"$TEST_TMP/info.$i" 2>"$TEST_TMP/info.$i.err" &
    pids+=($!)
  done
  i=0
  for id in "$@"; do
    i=$((i + 1))
    wait "${pids[i - 1]}" || fail "reading the network of $id ($RUNTIME) failed: $(cat "$TEST_TMP/info.$i.err")"
    out=$(<"$TEST_TMP/info.$i")
    case "$out" in *@@LINK*) ;; *) fail "incomplete network info of $id: $out" ;; esac
    _HK_INFO[$id]=$out
  done
}

# _hk_section ID NAME: one section (ADDR, R4, R6, LINK) of the container's info.
_hk_section() {
  local info=${_HK_INFO[$1]:-}
  [ -n "$info" ] || info=$(container_exec "$1" sh -c "$_HK_INFO_CMD") || fail "reading the network of $1 failed"
  printf '%s\n' "$info" | awk -v s="$2" '/^@@/ { cur = substr($0, 3); next } cur == s'
}

hk_addrs() {
  local id=$1 dev=${2:-eth0} fam=${3:-4} kw=inet
  [ "$fam" == 6 ] && kw=inet6
  _hk_section "$id" ADDR | awk -v dev="$dev" -v kw="$kw" '{
      d = $2; sub(/@.*/, "", d)
      if (d != dev) next
      for (i = 3; i < NF; i++) if ($i == kw) print $(i + 1)
    }' | cut -d/ -f1 | grep -v '^fe80:' || true
}

hk_addr() {
  local a
  a=$(hk_addrs "$@")
  [ "$(printf '%s\n' "$a" | grep -c .)" == 1 ] || fail "expected one IPv${3:-4} address on ${2:-eth0} of $1, got [$a]"
  printf '%s\n' "$a"
}

hk_routes() { if [ "${2:-4}" == 6 ]; then _hk_section "$1" R6; else _hk_section "$1" R4; fi; }

hk_links() { _hk_section "$1" LINK; }

hk_ping() {
  local id=$1
  shift
  # shellcheck disable=SC2016
  run container_exec "$id" sh -c '
    for a; do
      case $a in *:*) f=-6 ;; *) f= ;; esac
      ping $f -c 1 -W 3 "$a" >/dev/null 2>&1 && continue
      echo "no answer from $a:"; ping $f -c 1 -W 3 "$a" 2>&1; exit 1
    done' sh "$@"
  [ "$RC" == 0 ] || fail "$id ($RUNTIME) cannot reach one of [$*]: $OUT $ERR"
}

hk_no_ping() {
  local id=$1 a line
  shift
  # shellcheck disable=SC2016
  run container_exec "$id" sh -c '
    for a; do
      case $a in *:*) f=-6 ;; *) f= ;; esac
      ( o=$(ping $f -c 1 -W 2 "$a" 2>&1); rc=$?; o=$(echo $o); echo "@@ $a rc=$rc $o" ) &
    done
    wait' sh "$@"
  for a in "$@"; do
    line=$(printf '%s\n' "$OUT" | grep -F "@@ $a rc=" || true)
    [ -n "$line" ] || fail "no ping result for $a from $id ($RUNTIME): $OUT $ERR"
    case "$line" in
      *" rc=0 "*) fail "$id ($RUNTIME) reached $a, which it must not: $line" ;;
      *"100% packet loss"* | *"nreachable"*) echo "no answer from $a, as expected: $line" >&2 ;;
      *) fail "ping $a in $id ($RUNTIME) failed without reaching the network: $line" ;;
    esac
  done
}

hk_state() {
  echo "# links"
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort
  echo "# leases"
  ipvnet lease ls || echo "(lease ls failed)"
  echo "# hosts files"
  head -n 100000 "$IPVNET_STATE_DIR"/hosts/* 2>&1 || true
  echo "# state dir"
  (cd "$IPVNET_STATE_DIR" && ls -R)
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
