# shellcheck shell=bash
# Shared helpers of the examples: each examples/NN-*.sh sources this file.
#
# The examples translate the scenarios of Docker's ipvlan guide: the same
# `network create` lines with `docker` replaced by `ipvnet`, and every
# `docker run --net=NET [--ip=A] [--ip6=B]` turned into a runc (or crun)
# bundle whose config.json has ipvnet's hooks and the annotations
# ipvnet.network=NET [ipvnet.ip=A] [ipvnet.ip6=B], and the network's hosts
# file bind-mounted at /etc/hosts.
#
# Environment (all optional):
#   PARENT            the guide's eth0: an existing interface to use as the
#                     parent (sub-interfaces PARENT.VID are made as needed).
#                     Default: a veth pair ipvnet-up0 whose far end (eth0) sits
#                     in the namespace ipvnet-upstream, acting as the upstream
#                     switch and router; for the trunk scenarios, each VLAN's
#                     far end eth0.VID sits in a namespace ipvnet-vlanVID.
#   RUNTIME           runc (default) or crun.
#   IPVNET_STATE_DIR  ipvnet's state (default /var/lib/ipvnet).
#   IPVNET_BIN        the ipvnet binary (default: target/release/ipvnet of
#                     this checkout, else `ipvnet` from PATH).
#   EX_ROOTFS         a busybox-static root filesystem (default: the test
#                     rig's target/guest/rootfs if built, else
#                     target/examples/rootfs, built here on first use).
#   EX_WORK           scratch directory for bundles (default /tmp/ipvnet-examples).
#
# A script declares what it creates, then calls ex_begin:
#   EX_CONTAINERS=(ipv1 ipv2) EX_NETWORKS=(db_net_ipv)
#   ex_begin "title"
# ex_begin checks the machine (root, ipvlan in the kernel, the runtime), builds
# the rootfs if needed, removes leftovers of an interrupted run of the same
# script, and arranges for the cleanup on exit (containers, networks, the
# upstream namespace): the script's status is non-zero if the cleanup fails.
#
# Helpers:
#   say TEXT...                  a heading
#   note TEXT...                 a remark
#   show CMD...                  print `$ CMD`, run it; exit 1 if it fails
#   show_fails CMD...            print `$ CMD`, run it; exit 1 if it SUCCEEDS
#   ex_upstream [ADDR/PLEN...]   the upstream router holding these addresses
#                                on its eth0 (nothing when PARENT is given)
#   ex_upstream_vlan VID [ADDR/PLEN...]   its 802.1q sub-interface eth0.VID
#   ex_run ID [KEY=VALUE...] [-- CMD...]  `docker run -d`: a container running
#                                CMD (default: sleep 3600) with these annotations
#   ex_run_fg ID [KEY=VALUE...] -- CMD... `docker run --rm`: in the foreground;
#                                its output shown, its status returned
#   ex_exec ID CMD...            `docker exec`: print `[ID]$ CMD`, run it; exit 1
#                                if it fails
#   ex_exec_expect ID ERE CMD... the same, and its output must match ERE
#   ex_exec_fails ID CMD...      the same, and it must FAIL
#   ex_rm ID                     remove a container (runs the poststop hook)
#   ex_ping ID ADDR [COUNT]      ping from a container; exit 1 if no reply
#   ex_ping_upstream ID ADDR     ping a gateway on the upstream router: must
#                                succeed when the router is emulated, only
#                                reported when PARENT is a real interface
#   ex_ip ID [NETWORK]           the container's first address ([in NETWORK]),
#                                read from `ipvnet network inspect`
#   ex_on_exit CMD               extra cleanup (eval'd before the rest)

set -euo pipefail

EX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${RUNTIME:=runc}"
: "${IPVNET_STATE_DIR:=/var/lib/ipvnet}"
: "${EX_WORK:=/tmp/ipvnet-examples}"
export RUNTIME IPVNET_STATE_DIR
EX_UPSTREAM_NS=ipvnet-upstream
EX_UPSTREAM_IF=ipvnet-up0
if [ -n "${PARENT:-}" ]; then
  EX_OWN_UPSTREAM=0
else
  EX_OWN_UPSTREAM=1
  PARENT=$EX_UPSTREAM_IF
fi
EX_CONTAINERS=()
EX_NETWORKS=()
_EX_ON_EXIT=()

if [ -t 1 ]; then _EX_B=$'\e[1m' _EX_D=$'\e[2m' _EX_R=$'\e[0m'; else _EX_B= _EX_D= _EX_R=; fi

say() { printf '\n%s==> %s%s\n' "$_EX_B" "$*" "$_EX_R"; }
note() { printf '%s# %s%s\n' "$_EX_D" "$*" "$_EX_R"; }
die() { printf '%s: FAILED: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

show() {
  printf '$ %s\n' "$*"
  "$@" || die "command failed (exit $?): $*"
}

show_fails() {
  printf '$ %s\n' "$*"
  if "$@"; then die "this must fail, but succeeded: $*"; fi
  note "failed, as it must"
}

ex_on_exit() { _EX_ON_EXIT+=("$*"); }

# ------------------------------------------------------------ the ipvnet binary --

if [ -z "${IPVNET_BIN:-}" ]; then
  if [ -x "$EX_ROOT/target/release/ipvnet" ]; then
    IPVNET_BIN=$EX_ROOT/target/release/ipvnet
  else
    IPVNET_BIN=$(command -v ipvnet || true)
  fi
fi
[ -n "$IPVNET_BIN" ] && [ -x "$IPVNET_BIN" ] ||
  die "no ipvnet binary: build it with 'cargo build --release' (or set IPVNET_BIN)"
IPVNET_BIN=$(cd "$(dirname "$IPVNET_BIN")" && pwd)/$(basename "$IPVNET_BIN")
PATH=$(dirname "$IPVNET_BIN"):$PATH
export PATH

# ------------------------------------------------------------------ checks --

# Whether this kernel can make ipvlan links (and the dummy parents of
# parent-less networks). Tried in a throwaway network namespace.
ex_kernel_ok() {
  modprobe -q -a ipvlan 8021q dummy veth 2>/dev/null || true
  unshare -n sh -c 'ip link add ipvnet-probe0 type dummy &&
    ip link add link ipvnet-probe0 name ipvnet-probe1 type ipvlan mode l2' >/dev/null 2>&1
}

ex_build_rootfs() {  # DIR: a minimal busybox-static root filesystem
  "$EX_ROOT/examples/mkrootfs.sh" "$1" || die "could not build a rootfs in $1"
}

ex_rootfs() {  # sets EX_ROOTFS, building it if needed
  if [ -n "${EX_ROOTFS:-}" ]; then
    [ -x "$EX_ROOTFS/bin/busybox" ] || ex_build_rootfs "$EX_ROOTFS"
    return
  fi
  local c
  for c in "$EX_ROOT/target/guest/rootfs" "$EX_ROOT/target/examples/rootfs" "$EX_WORK/rootfs"; do
    if [ -f "$c/.complete" ] && [ -x "$c/bin/busybox" ]; then EX_ROOTFS=$c; return; fi
  done
  # Build it in the checkout (kept for later runs), else in the scratch dir.
  if mkdir -p "$EX_ROOT/target/examples" 2>/dev/null && [ -w "$EX_ROOT/target/examples" ]; then
    EX_ROOTFS=$EX_ROOT/target/examples/rootfs
  else
    EX_ROOTFS=$EX_WORK/rootfs
  fi
  note "building a busybox root filesystem in $EX_ROOTFS"
  ex_build_rootfs "$EX_ROOTFS"
}

ex_begin() {
  local title=$1
  printf '%s%s%s\n' "$_EX_B" "$title" "$_EX_R"
  [ "$(id -u)" == 0 ] || die "run me as root"
  command -v "$RUNTIME" >/dev/null || die "no $RUNTIME: apt-get install $RUNTIME (or set RUNTIME)"
  command -v ip >/dev/null || die "no ip: apt-get install iproute2"
  ex_kernel_ok || die "this kernel cannot create ipvlan (or dummy) links; examples/demo.sh runs a demo in a throwaway VM instead"
  if ((!EX_OWN_UPSTREAM)); then
    ip link show dev "$PARENT" >/dev/null 2>&1 || die "PARENT=$PARENT: no such interface"
  fi
  ex_rootfs
  mkdir -p "$EX_WORK/bundles"
  note "runtime $RUNTIME, ipvnet $IPVNET_BIN, state $IPVNET_STATE_DIR"
  _ex_cleanup quiet || die "could not remove the leftovers of an earlier run (see above)"
  trap '_ex_exit' EXIT
  trap 'exit 130' INT TERM
}

# ---------------------------------------------------------------- cleanup --

# Our containers only: those whose bundle is in EX_WORK.
_ex_ours() {
  local st
  st=$("$RUNTIME" state "$1" 2>/dev/null) || return 1
  case "$st" in *"\"$EX_WORK/bundles/$1\""*) return 0 ;; *) return 1 ;; esac
}

_ex_mark_network() { mkdir -p "$EX_WORK" && echo "$1" >>"$EX_WORK/networks"; }

_ex_cleanup() {  # [quiet]
  local quiet=${1:-} rc=0 id n i
  for ((i = ${#_EX_ON_EXIT[@]} - 1; i >= 0; i--)); do
    eval "${_EX_ON_EXIT[i]}" >/dev/null 2>&1 || true
  done
  _EX_ON_EXIT=()
  for id in "${EX_CONTAINERS[@]}"; do
    if _ex_ours "$id"; then
      [ -n "$quiet" ] && note "removing container $id left by an earlier run"
      "$RUNTIME" delete --force "$id" </dev/null || { echo "could not remove container $id" >&2; rc=1; }
    fi
  done
  for n in "${EX_NETWORKS[@]}"; do
    ipvnet network inspect "$n" >/dev/null 2>&1 || continue
    if [ -n "$quiet" ]; then
      grep -qxF "$n" "$EX_WORK/networks" 2>/dev/null ||
        die "a network named $n already exists (not made by these examples): remove it, or set IPVNET_STATE_DIR"
      note "removing network $n left by an earlier run"
    fi
    ipvnet network rm "$n" >/dev/null || { echo "could not remove network $n" >&2; rc=1; }
  done
  if ((EX_OWN_UPSTREAM)); then
    for n in $(ip netns list | awk '$1 ~ /^ipvnet-vlan[0-9]+$/ {print $1}'); do
      ip netns del "$n" 2>/dev/null || true
    done
    ip netns del "$EX_UPSTREAM_NS" 2>/dev/null || true
    ip link del "$EX_UPSTREAM_IF" 2>/dev/null || true
  fi
  return $rc
}

_ex_exit() {
  local rc=$?
  trap - EXIT INT TERM
  say "cleaning up"
  if ! _ex_cleanup; then
    echo "$(basename "$0"): FAILED: cleanup" >&2
    ((rc)) || rc=1
  fi
  if [ "$rc" == 0 ]; then
    printf '%s%s: OK%s\n' "$_EX_B" "$(basename "$0")" "$_EX_R"
  else
    printf '%s%s: FAILED (exit %s)%s\n' "$_EX_B" "$(basename "$0")" "$rc" "$_EX_R" >&2
  fi
  exit "$rc"
}

# ---------------------------------------------------------------- upstream --

_ex_addrs() {  # NS DEV ADDR...
  local ns=$1 dev=$2 a
  shift 2
  for a in "$@"; do
    case "$a" in
      *:*) ip -n "$ns" -6 addr add "$a" dev "$dev" nodad ;;
      *) ip -n "$ns" addr add "$a" dev "$dev" ;;
    esac
  done
}

ex_upstream() {
  if ((!EX_OWN_UPSTREAM)); then
    note "PARENT=$PARENT: the upstream router is your network's${*:+ (this scenario expects it to hold $*)}"
    return 0
  fi
  note "emulating the guide's eth0 and its router: veth $EX_UPSTREAM_IF <-> eth0 in netns $EX_UPSTREAM_NS${*:+, holding $*}"
  ip netns add "$EX_UPSTREAM_NS"
  ip link add "$EX_UPSTREAM_IF" type veth peer name eth0 netns "$EX_UPSTREAM_NS"
  ip -n "$EX_UPSTREAM_NS" link set lo up
  ip netns exec "$EX_UPSTREAM_NS" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
    net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1 || true
  _ex_addrs "$EX_UPSTREAM_NS" eth0 "$@"
  ip -n "$EX_UPSTREAM_NS" link set eth0 up
  ip link set "$EX_UPSTREAM_IF" up
}

# The far end of VLAN VID on the trunk: eth0.VID on the upstream eth0, moved
# into a namespace of its own (ipvnet-vlanVID). Each VLAN's gateway is thus a
# router of its own, and nothing routes between the VLANs.
ex_upstream_vlan() {
  local vid=$1 ns=ipvnet-vlan$1
  shift
  if ((!EX_OWN_UPSTREAM)); then
    note "PARENT=$PARENT: VLAN $vid must be trunked to it${*:+ (this scenario expects its router to hold $*)}"
    return 0
  fi
  note "upstream: VLAN $vid on eth0.$vid, in netns $ns${*:+, holding $*}"
  ip netns add "$ns"
  ip -n "$EX_UPSTREAM_NS" link add link eth0 name "eth0.$vid" type vlan id "$vid"
  ip -n "$EX_UPSTREAM_NS" link set "eth0.$vid" netns "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
    net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1 || true
  _ex_addrs "$ns" "eth0.$vid" "$@"
  ip -n "$ns" link set "eth0.$vid" up
}

# ----------------------------------------------------------------- bundles --

_ex_json() {  # a JSON string
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

_ex_json_list() {  # a JSON list of strings
  local out= a
  for a in "$@"; do out+=${out:+, }$(_ex_json "$a"); done
  printf '[%s]' "$out"
}

# ex_bundle ID [KEY=VALUE...] [-- CMD...]: writes EX_WORK/bundles/ID.
ex_bundle() {
  local id=$1
  shift
  local anns=() args=() hostname=$id net= kv
  while (($#)); do
    case "$1" in
      --) shift; args=("$@"); break ;;
      *=*) anns+=("$1") ;;
      *) die "ex_bundle: expected KEY=VALUE or --, got [$1]" ;;
    esac
    shift
  done
  ((${#args[@]})) || args=(sleep 3600)
  local dir=$EX_WORK/bundles/$id
  rm -rf "$dir"
  mkdir -p "$dir"

  local ann_json= hosts_mount=
  for kv in "${anns[@]}" "run.oci.hooks.stdout=$dir/hook.out" "run.oci.hooks.stderr=$dir/hook.err"; do
    ann_json+="${ann_json:+,
    }$(_ex_json "${kv%%=*}"): $(_ex_json "${kv#*=}")"
    case "$kv" in
      ipvnet.network=*) net=${kv#*=} net=${net%%,*} ;;
      ipvnet.hostname=*) hostname=${kv#*=} ;;
    esac
  done
  # Name resolution: the network's hosts file, kept current by the hook.
  if [ -n "$net" ] && [ -f "$IPVNET_STATE_DIR/hosts/$net" ]; then
    hosts_mount=",
    {\"destination\": \"/etc/hosts\", \"type\": \"bind\", \"source\": $(_ex_json "$IPVNET_STATE_DIR/hosts/$net"), \"options\": [\"rbind\", \"ro\"]}"
  fi
  local hook_env
  hook_env=$(_ex_json_list "IPVNET_STATE_DIR=$IPVNET_STATE_DIR" "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  local caps='["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"]'
  cat >"$dir/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": $(_ex_json_list "${args[@]}"),
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {"bounding": $caps, "effective": $caps, "permitted": $caps},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": $(_ex_json "$EX_ROOTFS"), "readonly": true},
  "hostname": $(_ex_json "$hostname"),
  "annotations": {
    $ann_json
  },
  "hooks": {
    "createRuntime": [{"path": $(_ex_json "$IPVNET_BIN"), "args": ["ipvnet", "hook", "createRuntime"], "env": $hook_env}],
    "poststop": [{"path": $(_ex_json "$IPVNET_BIN"), "args": ["ipvnet", "hook", "poststop"], "env": $hook_env}]
  },
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}$hosts_mount
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "sysctl": {"net.ipv4.ping_group_range": "0 2147483647"},
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
      "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
EOF
  echo "$dir"
}

_ex_describe() {  # ID KEY=VALUE...: the annotations, for the transcript
  local id=$1 kv d=
  shift
  for kv in "$@"; do
    [ "$kv" == -- ] && break
    d+=" $kv"
  done
  printf '%s' "${d# }"
}

_ex_hook_errors() {
  local dir=$EX_WORK/bundles/$1
  if [ -s "$dir/hook.err" ]; then sed 's/^/  hook: /' "$dir/hook.err" >&2; fi
  if [ -s "$dir/hook.out" ]; then sed 's/^/  hook: /' "$dir/hook.out" >&2; fi
}

# `docker run -d --name ID ...`: create (the createRuntime hook attaches the
# container) and start.
ex_run() {
  local id=$1
  ex_bundle "$@" >/dev/null
  local dir=$EX_WORK/bundles/$id
  printf '$ %s create --bundle %s %s && %s start %s    # %s\n' \
    "$RUNTIME" "$dir" "$id" "$RUNTIME" "$id" "$(_ex_describe "$@")"
  if ! "$RUNTIME" create --bundle "$dir" "$id" </dev/null >"$dir/out" 2>"$dir/err"; then
    cat "$dir/err" >&2
    _ex_hook_errors "$id"
    return 1
  fi
  "$RUNTIME" start "$id" </dev/null
}

# `docker run --rm ...`: in the foreground; the container is deleted when its
# process exits (the poststop hook runs then). Returns the process's status.
ex_run_fg() {
  local id=$1 rc=0
  ex_bundle "$@" >/dev/null
  local dir=$EX_WORK/bundles/$id
  printf '$ %s run --bundle %s %s    # %s\n' "$RUNTIME" "$dir" "$id" "$(_ex_describe "$@")"
  "$RUNTIME" run --bundle "$dir" "$id" </dev/null 2>"$dir/err" || rc=$?
  if [ "$rc" != 0 ]; then
    cat "$dir/err" >&2
    _ex_hook_errors "$id"
  fi
  "$RUNTIME" delete --force "$id" </dev/null >/dev/null 2>&1 || true
  return "$rc"
}

ex_exec() {
  local id=$1
  shift
  printf '[%s]$ %s\n' "$id" "$*"
  "$RUNTIME" exec "$id" "$@" </dev/null || die "command failed in $id (exit $?): $*"
}

ex_exec_expect() {
  local id=$1 ere=$2 out
  shift 2
  printf '[%s]$ %s\n' "$id" "$*"
  out=$("$RUNTIME" exec "$id" "$@" </dev/null) || { printf '%s\n' "$out"; die "command failed in $id: $*"; }
  printf '%s\n' "$out"
  printf '%s\n' "$out" | grep -Eq -- "$ere" || die "expected /$ere/ in the output of [$id] $*"
}

ex_exec_fails() {
  local id=$1
  shift
  printf '[%s]$ %s\n' "$id" "$*"
  if "$RUNTIME" exec "$id" "$@" </dev/null; then die "this must fail, but succeeded in $id: $*"; fi
  note "failed, as it must"
}

ex_rm() {
  printf '$ %s delete --force %s\n' "$RUNTIME" "$1"
  "$RUNTIME" delete --force "$1" </dev/null || die "removing $1 failed (the poststop hook?)"
}

ex_ping() {
  local id=$1 addr=$2 count=${3:-2} p=ping
  case "$addr" in *:*) p=ping6 ;; esac
  ex_exec "$id" "$p" -c "$count" -W 2 "$addr"
}

ex_ping_upstream() {
  local id=$1 addr=$2 p=ping
  case "$addr" in *:*) p=ping6 ;; esac
  if ((EX_OWN_UPSTREAM)); then
    ex_exec "$id" "$p" -c 2 -W 2 "$addr"
  else
    printf '[%s]$ %s -c 2 -W 2 %s\n' "$id" "$p" "$addr"
    "$RUNTIME" exec "$id" "$p" -c 2 -W 2 "$addr" </dev/null || note "no reply from $addr: your network's router does not hold it (not an error with PARENT=$PARENT)"
  fi
}

# The first address (without /PLEN) of container ID [of the family of ERE
# FILTER, e.g. ':' for IPv6, '\.' for IPv4], from the hosts file of NETWORK.
ex_ip() {
  local id=$1 net=$2 filter=${3:-.}
  awk -v id="# $id" '$0 ~ id"$" {print $1}' "$IPVNET_STATE_DIR/hosts/$net" | grep -E -- "$filter" | head -n1
}

# ipvnet itself, echoed.
ex_ipvnet() { show ipvnet "$@"; }
ex_network_create() {  # the arguments of `ipvnet network create`; the name last
  show ipvnet network create "$@"
  _ex_mark_network "${*: -1}"
}

# A network's parent link and subnets, from `ipvnet network ls`.
ex_net_parent() { ipvnet network ls | awk -v n="$1" '$2 == n {print $4}'; }
ex_net_subnets() { ipvnet network ls | awk -v n="$1" '$2 == n {print $6}'; }
