#!/usr/bin/env bash
# The demo: Docker's ipvlan guide, scenarios 1 and 2, with ipvnet and runc.
#
#   examples/demo.sh            (as root, on Debian or Ubuntu)
#
# 1. Installs what it needs: tests/guest/setup.sh (QEMU, virtme-ng, runc,
#    crun, busybox-static, iproute2, ... and Debian's kernel for the guest),
#    a Rust toolchain if there is none (rustup), then `cargo build --release`.
# 2. Runs the demo: an L2 ipvlan network on the embedded default parent (no
#    -o parent: ipvnet makes a dummy link), two runc containers, ipv1 and
#    ipv2, attached by ipvnet's OCI hook; they reach each other by name (the
#    network's hosts file is their /etc/hosts) and by address. Then everything
#    is removed again.
#    Where this kernel cannot make ipvlan links, or the user is not root, the
#    demo runs inside a throwaway QEMU guest booted from Debian's kernel
#    (examples/in-guest.sh: virtme-ng, the host's filesystem shared
#    read-only), and its output is shown here as it comes.
#
# Exits with the demo's status (the guest's, when it ran there).
# Options: --no-setup skips step 1 (when it has run before);
#          --here runs the demo on this machine, never in a guest;
#          --guest always runs it in the guest.
# Environment: RUNTIME=crun to use crun instead of runc.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t0=$(date +%s)
setup=1 where=auto
for a in "$@"; do
  case "$a" in
    --no-setup) setup=0 ;;
    --here) where=here ;;
    --guest) where=guest ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

if [ -t 1 ]; then
  step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
else
  step() { printf '\n### %s\n' "$*"; }
fi

# ----------------------------------------------------------- the scenario --

demo_scenario() {
  . "$root/examples/lib.sh"
  EX_CONTAINERS=(ipv1 ipv2)
  EX_NETWORKS=(db_net_ipv)
  ex_begin "ipvnet demo: Docker's ipvlan L2 scenario, two runc containers on the embedded default parent"

  say "create the network; no -o parent: ipvnet makes a dummy parent link (an isolated network)"
  ex_network_create -d ipvlan --subnet=192.168.1.0/24 db_net_ipv
  show ipvnet network ls
  show ip -d link show "$(ex_net_parent db_net_ipv)"

  say "start two containers (docker run --net=db_net_ipv --name=ipv1 -itd alpine /bin/sh, and ipv2)"
  note "their config.json has ipvnet's createRuntime and poststop hooks, the annotation"
  note "ipvnet.network=db_net_ipv, and $IPVNET_STATE_DIR/hosts/db_net_ipv mounted at /etc/hosts"
  ex_run ipv1 ipvnet.network=db_net_ipv
  ex_run ipv2 ipvnet.network=db_net_ipv
  ex_exec_expect ipv1 'inet 192\.168\.1\.[0-9]+/24' ip addr show eth0
  ex_exec ipv1 ip route
  ex_exec_expect ipv2 'inet 192\.168\.1\.[0-9]+/24' ip addr show eth0
  show ipvnet network inspect db_net_ipv

  say "ipv2 pings ipv1 by name (ping -c 4 ipv1), ipv1 pings ipv2 by address"
  ex_exec ipv2 cat /etc/hosts
  ex_exec ipv2 ping -c 4 ipv1
  ex_ping ipv1 "$(ex_ip ipv2 db_net_ipv)"

  say "remove the containers (the poststop hook releases their addresses), then the network"
  ex_rm ipv1
  ex_rm ipv2
  show ipvnet lease ls db_net_ipv
  show ipvnet network rm db_net_ipv
}

# ----------------------------------------------------------- on the host --

sudo=
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo=sudo; fi
fi

if ((setup)); then
  step "installing the system packages and the guest kernel (tests/guest/setup.sh)"
  if [ "$(id -u)" == 0 ] || [ -n "$sudo" ]; then
    $sudo "$root/tests/guest/setup.sh"
  else
    echo "not root and no sudo: skipping the package installation"
  fi
  if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH=$HOME/.cargo/bin:$PATH
  fi
  if ! command -v cargo >/dev/null; then
    step "installing a Rust toolchain (rustup, minimal profile)"
    if ! command -v curl >/dev/null; then
      $sudo apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null
    fi
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y -q --profile minimal
    PATH=$HOME/.cargo/bin:$PATH
  fi
  step "building ipvnet (cargo build --release)"
  (cd "$root" && cargo build --release)
fi
[ -x "$root/target/release/ipvnet" ] || { echo "demo.sh: no target/release/ipvnet: run without --no-setup" >&2; exit 1; }

if [ "$where" == auto ]; then
  where=guest
  if [ "$(id -u)" == 0 ]; then
    modprobe -q -a ipvlan dummy 2>/dev/null || true
    if unshare -n sh -c 'ip link add ipvnet-probe0 type dummy &&
        ip link add link ipvnet-probe0 name ipvnet-probe1 type ipvlan mode l2' >/dev/null 2>&1; then
      where=here
    else
      step "this kernel ($(uname -r)) cannot create ipvlan (or dummy) links: the demo runs in a throwaway guest"
    fi
  else
    step "not root: the demo runs in a throwaway guest, as root there"
  fi
fi

if [ "$where" == here ]; then
  rc=0
  (demo_scenario) || rc=$?
  echo
  echo "demo.sh: exit status $rc, wall time $(($(date +%s) - t0))s"
  exit "$rc"
fi

# The guest needs the busybox root filesystem the containers run from: the
# host's tree is read-only there, so build it now.
(
  . "$root/examples/lib.sh"
  ex_rootfs
)
rc=0
"$root/examples/in-guest.sh" env RUNTIME="${RUNTIME:-runc}" "$root/examples/demo.sh" --here --no-setup || rc=$?
echo
echo "demo.sh: guest exit status $rc, wall time $(($(date +%s) - t0))s"
exit "$rc"
