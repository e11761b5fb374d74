# shellcheck shell=bash
# containerd 1.7 in the guest, for t-ctr and t-nri (on top of lib.sh):
#
#     . "$(dirname "$0")/containerd-lib.sh"
#
# The binaries and the two images come from tests/guest/setup-containerd.sh
# (target/guest-containerd). Everything containerd writes lives in the guest:
# root on a fresh tmpfs at $CTRD_ROOT (overlayfs snapshots need a real upper
# filesystem, and the guest's /var/lib is itself an overlay), state and the
# socket under $CTRD_STATE, the config and the log in $TEST_TMP.
#
#   ctrd_start [KEY=VALUE...]   write the config, start containerd (its
#                               environment is the test's: IPVNET_STATE_DIR
#                               reaches the shims, hence runc/ipvnet-runc and
#                               the hooks), wait for its socket, import the
#                               images (pause and busybox into k8s.io, busybox
#                               into default). Knobs:
#                                 binary_name=PATH  the CRI runc runtime's
#                                                   options.BinaryName
#                                 path=DIRS         prepended to containerd's PATH
#                                                   (the shims find runc there)
#                                 nri=0             NRI disabled
#   ctrd_stop                   remove every task, container, pod; stop
#                               containerd, its shims; unmount its root
#   ctrd_restart [KEY=VALUE...] stop the daemon only (tasks survive) and start it
#                               again with the given knobs
#   ctr_ ARGS...                ctr on this containerd (namespace default unless -n)
#   cri ARGS...                 cri-client on this containerd (namespace k8s.io)
#   ctrd_log                    the tail of containerd's log (on stderr)
#   CTRD_IMAGE                  the busybox image name (ctr run, pod containers)
#   CTRD_PAUSE                  the sandbox image name
#   NRI_SOCKET                  /var/run/nri/nri.sock
#
# CRI is configured as a node would be: sandbox_image set explicitly to
# registry.k8s.io/pause:3.8 (1.7's default too; imported, never pulled), CNI
# from Debian's containernetworking-plugins (bin_dir /usr/lib/cni) with a
# bridge network 10.88.0.0/16 (host-local IPAM; CRI adds loopback itself),
# restrict_oom_score_adj = true, snapshotter overlayfs, the runc runtime
# passing pod annotations `ipvnet.*` into the OCI spec. NRI is enabled on
# $NRI_SOCKET with no pre-registered plugin; plugin_request_timeout is 10 s
# instead of 2 s because the guest runs ~10x slower than a real node.
# When the test fails, the last lines of containerd's log are printed.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CTRD_DIR=${IPVNET_CONTAINERD_DIR:-$IPVNET_ROOT/target/guest-containerd}
CTRD_ROOT=/var/lib/ipvnet-test-containerd
CTRD_STATE=/run/ipvnet-test-containerd
CTRD_SOCK=$CTRD_STATE/containerd.sock
CTRD_CONFIG=$TEST_TMP/containerd.toml
CTRD_LOG=$TEST_TMP/containerd.log
CTRD_CNI_CONF=$TEST_TMP/cni
CTRD_IMAGE=docker.io/library/busybox:latest
CTRD_PAUSE=registry.k8s.io/pause:3.8
CTRD_SNAPSHOTTER=${CTRD_SNAPSHOTTER:-overlayfs}
NRI_SOCKET=/var/run/nri/nri.sock
CTRD_PID=
export CRI_SOCKET=$CTRD_SOCK

# The binaries run from a tmpfs copy (exec from the guest's 9p root is slow).
CTRD_BIN=/run/ipvnet-containerd-bin
if [ ! -x "$CTRD_BIN/containerd-shim-runc-v2" ]; then
  mkdir -p "$CTRD_BIN.tmp"
  for _b in containerd ctr containerd-shim-runc-v2; do
    [ -x "$CTRD_DIR/bin/$_b" ] || fail "no $CTRD_DIR/bin/$_b: run tests/guest/setup-containerd.sh on the host"
    cp "$CTRD_DIR/bin/$_b" "$CTRD_BIN.tmp/"
  done
  mv "$CTRD_BIN.tmp" "$CTRD_BIN"
fi
command -v cri-client >/dev/null || fail "cri-client is not on PATH (cargo build --release --workspace)"
case ":$PATH:" in
  *":$CTRD_BIN:"*) ;;
  *) PATH="$PATH:$CTRD_BIN" ;;
esac
export PATH

ctr_() { ctr --address "$CTRD_SOCK" "$@"; }
cri() { cri-client --socket "$CTRD_SOCK" "$@"; }

ctrd_log() {
  echo "----- last lines of containerd's log ($CTRD_LOG) -----" >&2
  tail -n "${1:-60}" "$CTRD_LOG" >&2 2>/dev/null || true
  echo "----- end of containerd's log -----" >&2
}

_ctrd_config() {
  local binary_name=$1 nri=$2
  mkdir -p "$CTRD_CNI_CONF"
  cat >"$CTRD_CNI_CONF/10-ipvnet-test.conflist" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "ipvnet-test-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.88.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "/run/ipvnet-test-cni"
      }
    }
  ]
}
EOF
  local nri_disable=false
  [ "$nri" == 1 ] || nri_disable=true
  cat >"$CTRD_CONFIG" <<EOF
version = 2
root = "$CTRD_ROOT"
state = "$CTRD_STATE"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$CTRD_SOCK"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_ROOT/opt"

[plugins."io.containerd.nri.v1.nri"]
  disable = $nri_disable
  disable_connections = false
  socket_path = "$NRI_SOCKET"
  plugin_path = "$TEST_TMP/nri/plugins"
  plugin_config_path = "$TEST_TMP/nri/conf.d"
  plugin_registration_timeout = "10s"
  plugin_request_timeout = "10s"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$CTRD_PAUSE"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$CTRD_SNAPSHOTTER"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["ipvnet.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$binary_name"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CTRD_CNI_CONF"
    max_conf_num = 1
EOF
}

# _ctrd_launch KEY=VALUE...: config + daemon + wait (no image import).
_ctrd_launch() {
  local binary_name="" path="" nri=1 kv
  for kv in "$@"; do
    case "$kv" in
      binary_name=*) binary_name=${kv#*=} ;;
      path=*) path=${kv#*=} ;;
      nri=*) nri=${kv#*=} ;;
      *) fail "ctrd_start: unknown knob [$kv]" ;;
    esac
  done
  _ctrd_config "$binary_name" "$nri"
  mkdir -p "$CTRD_STATE" "$TEST_TMP/nri/plugins" "$TEST_TMP/nri/conf.d"
  echo "=== containerd start $(date +%T) ($*)" >>"$CTRD_LOG"
  local env_path=$PATH
  [ -z "$path" ] || env_path=$path:$PATH
  PATH=$env_path setsid containerd --config "$CTRD_CONFIG" </dev/null >>"$CTRD_LOG" 2>&1 &
  CTRD_PID=$!
  echo "$CTRD_PID" >"$CTRD_STATE/daemon.pid"
  local t0=$SECONDS
  wait_until 120 ctr_ version
  echo "containerd (pid $CTRD_PID) answers after $((SECONDS - t0))s" >&2
  wait_until 60 cri version
}

ctrd_start() {
  command -v runc >/dev/null || fail "runc is not installed"
  modprobe -q bridge 2>/dev/null || true
  # A containerd left by an earlier test that was killed before its cleanup.
  local stale
  stale=$(cat "$CTRD_STATE/daemon.pid" 2>/dev/null || true)
  if [ -n "$stale" ] && tr '\0' ' ' <"/proc/$stale/cmdline" 2>/dev/null | grep -q '^containerd --config '; then
    echo "stopping the containerd (pid $stale) an earlier test left" >&2
    CTRD_PID=$stale
    ctrd_stop
  fi
  if ! mountpoint -q "$CTRD_ROOT"; then
    mkdir -p "$CTRD_ROOT"
    mount -t tmpfs -o size=768m,mode=0711 ipvnet-test-containerd "$CTRD_ROOT"
  fi
  if [ -z "${_CTRD_ON_EXIT:-}" ]; then
    _CTRD_ON_EXIT=1
    on_exit ctrd_stop
    on_exit '[ "${rc:-1}" == 0 ] || ctrd_log 80'
  fi
  _ctrd_launch "$@"
  local t0=$SECONDS
  assert_ok ctr_ -n k8s.io images import --snapshotter "$CTRD_SNAPSHOTTER" "$CTRD_DIR/images/pause.tar"
  assert_ok ctr_ -n k8s.io images import --snapshotter "$CTRD_SNAPSHOTTER" "$CTRD_DIR/images/busybox.tar"
  assert_ok ctr_ -n default images import --snapshotter "$CTRD_SNAPSHOTTER" "$CTRD_DIR/images/busybox.tar"
  echo "images imported in $((SECONDS - t0))s" >&2
}

_ctrd_kill_daemon() {
  [ -n "$CTRD_PID" ] || return 0
  kill -TERM "$CTRD_PID" 2>/dev/null || true
  local end=$((SECONDS + 20))
  while kill -0 "$CTRD_PID" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
  kill -KILL "$CTRD_PID" 2>/dev/null || true
  wait "$CTRD_PID" 2>/dev/null || true
  while kill -0 "$CTRD_PID" 2>/dev/null && ((SECONDS < end + 10)); do sleep 0.2; done
  rm -f "$CTRD_STATE/daemon.pid"
  CTRD_PID=
}

ctrd_restart() {
  _ctrd_kill_daemon
  _ctrd_launch "$@"
}

# The shims this containerd started (they outlive it): their pids.
_ctrd_shim_pids() {
  local p
  for p in $(pgrep -x containerd-shim 2>/dev/null; pgrep -f containerd-shim-runc-v2 2>/dev/null); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "-address $CTRD_SOCK" && echo "$p"
  done
  return 0
}

ctrd_stop() {
  local ns id
  if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
    for id in $(cri list-pods 2>/dev/null | awk '{print $1}'); do
      timeout 60 cri-client --socket "$CTRD_SOCK" stop-pod "$id" || true
      timeout 60 cri-client --socket "$CTRD_SOCK" remove-pod "$id" || true
    done
    for ns in $(ctr_ namespaces ls -q 2>/dev/null); do
      for id in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
        timeout 30 ctr --address "$CTRD_SOCK" -n "$ns" tasks kill -s KILL "$id" 2>/dev/null || true
        timeout 30 ctr --address "$CTRD_SOCK" -n "$ns" tasks delete -f "$id" 2>/dev/null || true
      done
      for id in $(ctr_ -n "$ns" containers ls -q 2>/dev/null); do
        timeout 30 ctr --address "$CTRD_SOCK" -n "$ns" containers delete "$id" 2>/dev/null || true
      done
    done
  fi
  _ctrd_kill_daemon
  local p
  for p in $(_ctrd_shim_pids); do kill -KILL "$p" 2>/dev/null || true; done
  # Mounts left under the root (rootfs of killed tasks, sandbox shm), then the root.
  grep -F " $CTRD_ROOT/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  grep -F " $CTRD_STATE/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if mountpoint -q "$CTRD_ROOT"; then umount -l "$CTRD_ROOT" || true; fi
  return 0
}
