//! `ipvnet-runc` end to end on the host (no ipvlan needed): against a fake
//! runtime that records what it was given, and against the real runc with a
//! busybox container, with and without the ipvnet annotation (a fake
//! `ipvnet` records what the hooks receive).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const WRAPPER: &str = env!("CARGO_BIN_EXE_ipvnet-runc");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ipvnet-rwit-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn write_exe(p: &Path, text: &str) {
    fs::write(p, text).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A runtime that records its argv (one per line), pid, cwd and fd 7, then
/// exits 0. It writes nothing to stdout.
fn fake_runtime(dir: &Path) -> PathBuf {
    let p = dir.join("fake-runc");
    let out = dir.join("fake-out");
    write_exe(
        &p,
        &format!(
            "#!/bin/sh\nout={out:?}\n: > \"$out.args\"\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$out.args\"; done\n\
             echo $$ > \"$out.pid\"\nreadlink /proc/$$/fd/7 > \"$out.fd7\" 2>&1\nexit 0\n"
        ),
    );
    p
}

/// The wrapper with a clean, private environment: no host config file, the
/// given runtime.
fn wrapper(runtime: &Path) -> Command {
    let mut c = Command::new(WRAPPER);
    c.env("IPVNET_RUNTIME", runtime)
        .env("IPVNET_RUNTIME_CONF", "/nonexistent/ipvnet-runtime.conf")
        .env_remove("IPVNET_BIN")
        .env_remove("IPVNET_STATE_DIR")
        .stdin(Stdio::null());
    c
}

fn minimal_config(dir: &Path, annotations: Value) -> PathBuf {
    let cfg = dir.join("config.json");
    let v = json!({
        "ociVersion": "1.0.2-dev",
        "process": {"args": ["sh"], "cwd": "/", "x-unknown": [1, 2]},
        "root": {"path": "rootfs"},
        "annotations": annotations,
        "vendor.thing": {"keep": true}
    });
    fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    cfg
}

fn hooks_of(cfg: &Path) -> Value {
    let v: Value = serde_json::from_slice(&fs::read(cfg).unwrap()).unwrap();
    v["hooks"].clone()
}

#[test]
fn create_adds_hooks_and_execs_with_same_argv_pid_and_fds() {
    let d = tmpdir("fake-create");
    let rt = fake_runtime(&d);
    let bundle = d.join("bundle");
    fs::create_dir_all(&bundle).unwrap();
    let cfg = minimal_config(&bundle, json!({"ipvnet.network": "db_net", "other": "x"}));
    let fake_ipvnet = d.join("ipvnet");
    write_exe(&fake_ipvnet, "#!/bin/sh\nexit 0\n");
    let fdfile = d.join("fd7-target");
    fs::write(&fdfile, "").unwrap();

    let args: Vec<String> = [
        "--root",
        "/run/x",
        "--log",
        d.join("log.json").to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        "/run/x/pid",
        "--console-socket",
        "/run/x/sock",
        "ctr-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    for round in 0..2 {
        let f = fs::File::open(&fdfile).unwrap();
        let mut cmd = wrapper(&rt);
        cmd.args(&args)
            .env("IPVNET_BIN", &fake_ipvnet)
            .env("IPVNET_STATE_DIR", "/tmp/private-state");
        // Hand an inherited fd 7 to the wrapper, as a shim hands its pipes.
        let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "the wrapper wrote to stdout");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let seen = fs::read_to_string(d.join("fake-out.args")).unwrap();
        assert_eq!(seen.lines().collect::<Vec<_>>(), args, "argv changed");
        let seen_pid: u32 = fs::read_to_string(d.join("fake-out.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            seen_pid, pid,
            "the runtime must replace the wrapper (exec), not be its child"
        );
        assert_eq!(
            fs::read_to_string(d.join("fake-out.fd7")).unwrap().trim(),
            fdfile.to_str().unwrap()
        );

        let hooks = hooks_of(&cfg);
        let env = json!([
            "IPVNET_STATE_DIR=/tmp/private-state",
            format!("PATH={}", std::env::var("PATH").unwrap())
        ]);
        assert_eq!(
            hooks,
            json!({
                "createRuntime": [{"path": fake_ipvnet, "args": ["ipvnet", "hook", "createRuntime"], "env": env}],
                "poststop": [{"path": fake_ipvnet, "args": ["ipvnet", "hook", "poststop"], "env": env}],
            }),
            "round {round}"
        );
    }
    let v: Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(v["vendor.thing"], json!({"keep": true}));
    assert_eq!(v["process"]["x-unknown"], json!([1, 2]));
    assert!(!d.join("log.json").exists(), "nothing to log on success");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ipvnet_defaults_to_the_binary_next_to_the_wrapper() {
    let d = tmpdir("fake-default-bin");
    let rt = fake_runtime(&d);
    let cfg = minimal_config(&d, json!({"ipvnet.network": "n1"}));
    // No --bundle: the current directory.
    let out = wrapper(&rt)
        .current_dir(&d)
        .args(["create", "c"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expect = fs::canonicalize(env!("CARGO_BIN_EXE_ipvnet")).unwrap();
    let hooks = hooks_of(&cfg);
    assert_eq!(hooks["createRuntime"][0]["path"], json!(expect));
    assert!(hooks["createRuntime"][0].get("env").is_none());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn untouched_without_annotation_or_on_other_subcommands() {
    let d = tmpdir("fake-untouched");
    let rt = fake_runtime(&d);
    let cfg = minimal_config(&d, json!({"some": "thing"}));
    let before = fs::read(&cfg).unwrap();
    let out = wrapper(&rt)
        .args(["--debug", "create", "-b", d.to_str().unwrap(), "c"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(fs::read(&cfg).unwrap(), before);

    // Annotated, but not a create: nothing is touched, argv passed as is.
    minimal_config(&d, json!({"ipvnet.network": "n1"}));
    let before = fs::read(&cfg).unwrap();
    for sub in [
        &["start", "c"][..],
        &["delete", "--force", "c"],
        &["state", "c"],
        &["--version"],
    ] {
        let out = wrapper(&rt).current_dir(&d).args(sub).output().unwrap();
        assert!(out.status.success());
        assert_eq!(fs::read(&cfg).unwrap(), before, "{sub:?}");
        let seen = fs::read_to_string(d.join("fake-out.args")).unwrap();
        assert_eq!(seen.lines().collect::<Vec<_>>(), sub);
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_annotation_fails_create_with_message_and_runc_log_line() {
    let d = tmpdir("fake-bad");
    let rt = fake_runtime(&d);
    let cfg = minimal_config(
        &d,
        json!({"ipvnet.network": "db_net", "ipvnet.ip": "10.0.0.300"}),
    );
    let before = fs::read(&cfg).unwrap();
    let log = d.join("log.json");
    let out = wrapper(&rt)
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "--bundle",
        ])
        .arg(&d)
        .arg("c")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let msg = format!(
        "ipvnet-runc: bundle {}: annotation ipvnet.ip: \"10.0.0.300\" is not an IPv4 address",
        d.display()
    );
    assert_eq!(stderr.trim_end(), msg);
    assert!(
        !d.join("fake-out.args").exists(),
        "the runtime must not run"
    );
    assert_eq!(fs::read(&cfg).unwrap(), before);

    let line: Value = serde_json::from_str(fs::read_to_string(&log).unwrap().trim_end()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], json!(msg));
    let t = line["time"].as_str().unwrap();
    assert!(
        t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
        "{t}"
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn never_execs_itself() {
    let d = tmpdir("fake-self");
    let first = d.join("first");
    let second = d.join("second");
    fs::create_dir_all(&first).unwrap();
    fs::create_dir_all(&second).unwrap();
    // The wrapper installed as `runc` early in PATH.
    std::os::unix::fs::symlink(WRAPPER, first.join("runc")).unwrap();

    let path = std::env::join_paths([&first]).unwrap();
    let out = wrapper(Path::new("runc"))
        .env("PATH", &path)
        .args(["state", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the only one in PATH") && stderr.contains("is ipvnet-runc itself"),
        "{stderr}"
    );

    // With a real one further down PATH, that one runs.
    let rt = fake_runtime(&d);
    fs::rename(&rt, second.join("runc")).unwrap();
    let path = std::env::join_paths([&first, &second]).unwrap();
    let out = wrapper(Path::new("runc"))
        .env("PATH", &path)
        .args(["state", "c"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(d.join("fake-out.args")).unwrap(),
        "state\nc\n"
    );

    let out = wrapper(&first.join("runc"))
        .args(["state", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is ipvnet-runc itself"));
    fs::remove_dir_all(&d).unwrap();
}

// ---- the real runc -------------------------------------------------------

fn require_tools() -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "needs busybox-static (tests/guest/setup.sh installs it)"
    );
    let ok = Command::new("runc")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "needs runc in PATH (tests/guest/setup.sh installs it)");
    busybox.to_path_buf()
}

/// A busybox bundle whose config.json comes from `runc spec`.
fn busybox_bundle(dir: &Path, args: &[&str], annotations: Value) -> PathBuf {
    let busybox = require_tools();
    let bundle = dir.join("bundle");
    fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    fs::copy(&busybox, bundle.join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/sh")).unwrap();
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(st.success(), "runc spec failed");
    let cfg = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(args);
    v["annotations"] = annotations;
    fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    bundle
}

fn run_container(
    runtime: &str,
    root: &Path,
    bundle: &Path,
    id: &str,
    extra_env: &[(&str, &Path)],
) -> Output {
    let mut cmd = wrapper(Path::new(runtime));
    cmd.arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    // Whatever happened, leave no container behind.
    let _ = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id])
        .output();
    out
}

#[test]
fn real_runc_without_annotation_is_transparent() {
    let d = tmpdir("real-plain");
    let bundle = busybox_bundle(
        &d,
        &["sh", "-c", "echo hello from busybox; exit 3"],
        json!({}),
    );
    let before = fs::read(bundle.join("config.json")).unwrap();
    let id = format!("ipvnet-rw-plain-{}", std::process::id());
    let out = run_container("runc", &d.join("root"), &bundle, &id, &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from busybox\n");
    // `runc run` exits with the container's status: passed through the exec.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(bundle.join("config.json")).unwrap(), before);

    let bundle2 = busybox_bundle(&d.join("2"), &["sh", "-c", "echo second"], json!({}));
    let out = run_container("runc", &d.join("root"), &bundle2, &format!("{id}-2"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "second\n");
    fs::remove_dir_all(&d).unwrap();
}

/// A fake `ipvnet` that saves each hook's stdin, argv and environment.
fn recording_ipvnet(dir: &Path) -> PathBuf {
    let p = dir.join("ipvnet");
    let rec = dir.join("rec");
    fs::create_dir_all(&rec).unwrap();
    write_exe(
        &p,
        &format!(
            "#!/bin/sh\nrec={rec:?}\ncat > \"$rec/$2.state\"\necho \"$@\" > \"$rec/$2.args\"\nenv > \"$rec/$2.env\"\n"
        ),
    );
    p
}

fn check_real_hooks(runtime: &str, d: &Path) {
    let ipvnet = recording_ipvnet(d);
    let annotations = json!({"ipvnet.network": "db_net", "ipvnet.ip": "192.168.1.10"});
    let bundle = busybox_bundle(d, &["sh", "-c", "echo annotated"], annotations);
    let id = format!("ipvnet-rw-{runtime}-{}", std::process::id());
    let state_dir = d.join("state");
    let out = run_container(
        runtime,
        &d.join("root"),
        &bundle,
        &id,
        &[("IPVNET_BIN", &ipvnet), ("IPVNET_STATE_DIR", &state_dir)],
    );
    assert!(
        out.status.success(),
        "{runtime}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "annotated\n");

    let rec = d.join("rec");
    assert_eq!(
        fs::read_to_string(rec.join("createRuntime.args")).unwrap(),
        "hook createRuntime\n"
    );
    assert_eq!(
        fs::read_to_string(rec.join("poststop.args")).unwrap(),
        "hook poststop\n"
    );
    let env = fs::read_to_string(rec.join("createRuntime.env")).unwrap();
    assert!(
        env.lines()
            .any(|l| l == format!("IPVNET_STATE_DIR={}", state_dir.display())),
        "{env}"
    );

    // What the runtime really sends, through the hook-input parser.
    let st = fs::read(rec.join("createRuntime.state")).unwrap();
    let input = ipvnet::oci::read_hook_input(&st[..]).unwrap();
    assert_eq!(input.id, id);
    let pid = input.pid.expect("createRuntime state has a pid");
    assert_eq!(
        ipvnet::oci::netns_of(&input).unwrap(),
        PathBuf::from(format!("/proc/{pid}/ns/net"))
    );
    assert_eq!(
        input.bundle.as_deref(),
        Some(&*fs::canonicalize(&bundle).unwrap())
    );
    let req = ipvnet::annotations::parse(&input.annotations)
        .unwrap()
        .unwrap();
    assert_eq!(req.networks, vec!["db_net"]);
    assert_eq!(
        req.ips,
        vec!["192.168.1.10".parse::<std::net::Ipv4Addr>().unwrap()]
    );

    let st = fs::read(rec.join("poststop.state")).unwrap();
    let input = ipvnet::oci::read_hook_input(&st[..]).unwrap();
    assert_eq!(input.id, id);
    assert_eq!(input.pid, None);
    assert_eq!(
        input.annotations.get("ipvnet.network").map(String::as_str),
        Some("db_net")
    );
}

#[test]
fn real_runc_runs_the_hooks_it_was_given() {
    let d = tmpdir("real-hooks");
    check_real_hooks("runc", &d);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn real_crun_runs_the_hooks_it_was_given() {
    // crun refuses hybrid cgroup hosts (this build host); probe first so the
    // test runs wherever crun runs containers at all (the test guest).
    let d = tmpdir("real-crun");
    let Ok(probe_out) = Command::new("crun").arg("--version").output() else {
        eprintln!("crun not installed: skipped");
        return;
    };
    assert!(probe_out.status.success());
    let probe = busybox_bundle(&d.join("probe"), &["sh", "-c", "true"], json!({}));
    let id = format!("ipvnet-rw-probe-{}", std::process::id());
    let root = d.join("probe-root");
    let out = Command::new("crun")
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(&probe)
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new("crun")
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", &id])
        .output();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "crun cannot run containers on this host ({}): skipped",
            why.trim()
        );
        fs::remove_dir_all(&d).unwrap();
        return;
    }
    check_real_hooks("crun", &d);
    fs::remove_dir_all(&d).unwrap();
}
