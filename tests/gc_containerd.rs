//! `ipvnet gc --containerd SOCKET` against a real containerd 1.7 run on the
//! host with a private root, state and socket (no CRI, no images: the
//! containers are created with `ctr containers create --rootfs`, which
//! only records them). The binaries come from tests/guest/setup.sh
//! (target/guest-containerd/bin). Needs root. Without the binaries or root
//! the test says so and passes, except under CI (CI set), where it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Containerd {
    child: Child,
    dir: PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bin_dir() -> PathBuf {
    std::env::var_os("IPVNET_CONTAINERD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guest-containerd"))
        .join("bin")
}

fn usable() -> bool {
    let have = bin_dir().join("containerd").is_file() && bin_dir().join("ctr").is_file();
    let root = unsafe { libc::geteuid() } == 0;
    if have && root {
        return true;
    }
    let why = format!(
        "needs root and {}/containerd (tests/guest/setup.sh)",
        bin_dir().display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "gc --containerd test cannot run under CI: {why}"
    );
    eprintln!("NOT RUN: gc --containerd test {why}");
    false
}

fn start(dir: &Path) -> Containerd {
    let sock = dir.join("c.sock");
    let config = format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n",
        d = dir.display(),
        s = sock.display()
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    let child = Command::new(bin_dir().join("containerd"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let c = Containerd {
        child,
        dir: dir.to_path_buf(),
    };
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "containerd did not start: {}",
            log_of(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
}

fn ctr(dir: &Path, args: &[&str]) {
    let out = Command::new(bin_dir().join("ctr"))
        .arg("--address")
        .arg(dir.join("c.sock"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn record(state: &Path, id: &str, kind: &str, labels: &str) {
    let json = format!(r#"{{"id":"{id}","kind":"{kind}","labels":{{{labels}}},"endpoints":[],"created":"t0"}}"#);
    std::fs::write(state.join("endpoints").join(format!("{id}.json")), json).unwrap();
}

fn ipvnet(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ipvnet"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn gc_releases_what_containerd_does_not_know_and_keeps_the_rest() {
    if !usable() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ipvnet-gc-ctd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    let ctd = start(&dir);
    let rootfs = dir.join("rootfs");
    let rootfs = rootfs.to_str().unwrap();
    // A container in one namespace, a "sandbox" in k8s.io (in 1.7, CRI
    // sandboxes are containers too).
    ctr(
        &dir,
        &["-n", "default", "containers", "create", "--rootfs", rootfs, "c-live"],
    );
    ctr(
        &dir,
        &["-n", "k8s.io", "containers", "create", "--rootfs", rootfs, "p-live"],
    );

    let state = dir.join("state-ipvnet");
    std::fs::create_dir_all(state.join("endpoints")).unwrap();
    record(&state, "c-live", "container", "");
    record(&state, "p-live", "pod", "");
    record(&state, "c-gone", "container", "");
    record(&state, "p-gone", "pod", r#""k8s_namespace":"default""#);
    // Not in containerd but its process runs (another engine's container
    // with the hook): kept.
    let me = std::process::id();
    let start_time = ipvnet::commands::gc::process_start_time(me as i32).unwrap();
    let boot = ipvnet::commands::gc::boot_id().unwrap();
    record(
        &state,
        "c-elsewhere",
        "container",
        &format!(r#""pid":"{me}","pid_start":"{start_time}","boot_id":"{boot}""#),
    );
    record(&state, "a-lease", "lease", "");

    let sock = dir.join("c.sock");
    let out = ipvnet(&state, &["gc", "--containerd", sock.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", log_of(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let released: BTreeSet<&str> = stdout.lines().filter_map(|l| l.strip_prefix("released ")).collect();
    assert_eq!(released, BTreeSet::from(["c-gone", "p-gone"]), "{stdout}");
    assert!(stderr.contains("released 2, kept 4"), "{stderr}");
    let left: BTreeSet<String> = std::fs::read_dir(state.join("endpoints"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    assert_eq!(
        left,
        ["a-lease", "c-elsewhere", "c-live", "p-live"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );

    // containerd gone: an error naming the socket, nothing released.
    drop(ctd);
    std::fs::create_dir_all(state.join("endpoints")).unwrap();
    record(&state, "c-gone2", "container", "");
    let out = ipvnet(&state, &["gc", "--containerd", sock.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("ask containerd at {}", sock.display())),
        "{stderr}"
    );
    assert!(state.join("endpoints/c-gone2.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
