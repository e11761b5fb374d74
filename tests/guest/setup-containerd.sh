#!/usr/bin/env bash
# Prepares containerd 1.7 for the in-guest tests (t-ctr, t-nri), in
# target/guest-containerd (idempotent; a few milliseconds once done):
#
#   bin/containerd, bin/containerd-shim-runc-v2, bin/ctr
#       from the `containerd` package of Debian 13 (trixie), fetched with
#       `apt-get download` through a temporary sources list and a temporary
#       apt state/cache dir (the machine's apt sources are never changed),
#       unpacked with `dpkg -x`. The binaries need only libc, so they run on
#       this Debian 12 machine and in its guest.
#   images/pause.tar    OCI image archive `registry.k8s.io/pause:3.8` (the
#                       sandbox image containerd 1.7 defaults to): one
#                       busybox-static layer, entrypoint `sleep` forever
#   images/busybox.tar  OCI image archive `docker.io/library/busybox:latest`
#                       (same layer, command `sh`), for `ctr run` and for pod
#                       app containers
#   VERSION             the package version unpacked
#
# The images are built locally (no registry): a deterministic tar of
# /bin/busybox (busybox-static) plus one symlink per applet and a minimal
# /etc. Usage: tests/guest/setup-containerd.sh (tests/guest/setup.sh calls it).
# Environment: IPVNET_CONTAINERD_DIR (default target/guest-containerd);
# IPVNET_CONTAINERD_SUITE (default trixie).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${IPVNET_CONTAINERD_DIR:-$root/target/guest-containerd}
suite=${IPVNET_CONTAINERD_SUITE:-trixie}
images_version=1
say() { echo "setup-containerd: $*"; }

# ------------------------------------------------------------ binaries --
if [ -s "$dir/VERSION" ] && [ -x "$dir/bin/containerd" ] && [ -x "$dir/bin/ctr" ] &&
  [ -x "$dir/bin/containerd-shim-runc-v2" ]; then
  :
else
  # The archive's address: the first Debian source this machine already uses
  # (deb822 .sources files or one-line lists), security archives excluded.
  uri=$(
    set +o pipefail
    {
      cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
        /^[[:space:]]*$/ { if (u != "" && s !~ /security/ && c ~ /(^| )main( |$)/) print u; u = s = c = ""; next }
        /^URIs:/ { u = $2 } /^Suites:/ { s = $0 } /^Components:/ { c = $0 }
        END { if (u != "" && s !~ /security/ && c ~ /(^| )main( |$)/) print u }'
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -n 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\)[[:space:]]\+\([^[:space:]]\+\).*/\2 \3/p' |
        awk '$2 !~ /security/ {print $1}'
    } | grep -E '/debian/?$' | head -n1
  )
  [ -n "$uri" ] || { say "no Debian archive found in /etc/apt/sources.list*"; exit 1; }
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || { say "no $keyring (package debian-archive-keyring)"; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
  echo "deb [signed-by=$keyring] ${uri%/} $suite main" >"$tmp/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false
    -o Acquire::Languages=none)
  say "fetching $suite's containerd package"
  apt-get "${apt_opts[@]}" -qq update
  ver=$(apt-cache "${apt_opts[@]}" show containerd | sed -n 's/^Version: //p' | head -n1)
  case "$ver" in
    1.7.*) ;;
    *) say "$suite's containerd is [$ver], not 1.7.x"; exit 1 ;;
  esac
  (cd "$tmp/deb" && apt-get "${apt_opts[@]}" -qq download "containerd=$ver")
  dpkg -x "$tmp"/deb/containerd_*.deb "$tmp/x"
  rm -rf "$dir/bin.tmp" && mkdir -p "$dir/bin.tmp"
  for b in containerd containerd-shim-runc-v2 ctr; do
    install -m 0755 "$tmp/x/usr/bin/$b" "$dir/bin.tmp/$b"
  done
  rm -rf "$dir/bin" && mv "$dir/bin.tmp" "$dir/bin"
  echo "$ver" >"$dir/VERSION"
  rm -rf "$tmp"
  trap - EXIT
  say "containerd $ver in $dir/bin"
fi

# --------------------------------------------------------------- images --
if [ "$(cat "$dir/images/.complete" 2>/dev/null)" != "$images_version" ]; then
  bb=/bin/busybox
  [ -x "$bb" ] || bb=$(command -v busybox || true)
  [ -n "$bb" ] || { say "no busybox (install busybox-static)"; exit 1; }
  if ldd "$bb" >/dev/null 2>&1; then say "$bb is dynamically linked: install busybox-static"; exit 1; fi
  rm -rf "$dir/images.tmp" && mkdir -p "$dir/images.tmp"
  python3 - "$bb" "$dir/images.tmp" <<'EOF'
import hashlib, io, json, subprocess, sys, tarfile

bb, out = sys.argv[1:]
applets = sorted(set(subprocess.run([bb, "--list"], check=True, capture_output=True,
                                    text=True).stdout.split()) - {"busybox"})
MTIME = 1700000000

def entry(tf, name, kind, data=b"", mode=0o755, target=""):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "root", "root"
    ti.mode = mode
    if kind == "dir":
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)
    elif kind == "sym":
        ti.type, ti.linkname = tarfile.SYMTYPE, target
        tf.addfile(ti)
    else:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))

def layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ["bin", "dev", "etc", "home", "proc", "root", "run", "sys", "tmp", "usr", "var",
                  "var/run"]:
            entry(tf, d, "dir", mode=0o1777 if d == "tmp" else 0o755)
        with open(bb, "rb") as f:
            entry(tf, "bin/busybox", "file", f.read(), 0o755)
        for a in applets:
            entry(tf, "bin/" + a, "sym", target="busybox")
        entry(tf, "sbin", "sym", target="bin")
        entry(tf, "usr/bin", "sym", target="../bin")
        entry(tf, "usr/sbin", "sym", target="../bin")
        entry(tf, "etc/passwd", "file",
              b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
              0o644)
        entry(tf, "etc/group", "file", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    return buf.getvalue()

def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

def image(path, name, ref, entrypoint, cmd, layer_blob):
    cfg = {
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer_blob)]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "ipvnet setup-containerd.sh"}],
    }
    cfg_blob = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(cfg_blob), "size": len(cfg_blob)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer_blob), "size": len(layer_blob)}],
    }
    man_blob = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": digest(man_blob), "size": len(man_blob),
                            "platform": {"architecture": "amd64", "os": "linux"},
                            "annotations": {"io.containerd.image.name": name,
                                            "org.opencontainers.image.ref.name": ref}}]}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        entry(tf, "oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        entry(tf, "index.json", "file", json.dumps(index, sort_keys=True).encode(), 0o644)
        entry(tf, "blobs", "dir")
        entry(tf, "blobs/sha256", "dir")
        for b in (layer_blob, cfg_blob, man_blob):
            entry(tf, "blobs/sha256/" + digest(b)[7:], "file", b, 0o644)
    print(f"{path.rsplit('/', 1)[1]}: {name} manifest {digest(man_blob)}")

lb = layer()
# The pause container only has to stay alive until it is killed (SIGKILL).
image(out + "/pause.tar", "registry.k8s.io/pause:3.8", "3.8",
      ["/bin/sleep", "2147483647"], None, lb)
image(out + "/busybox.tar", "docker.io/library/busybox:latest", "latest", None, ["sh"], lb)
EOF
  echo "$images_version" >"$dir/images.tmp/.complete"
  rm -rf "$dir/images" && mv "$dir/images.tmp" "$dir/images"
fi
say "containerd $(cat "$dir/VERSION"), images: $(cd "$dir/images" && echo *.tar)"
