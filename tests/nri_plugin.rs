//! The ipvnet NRI plugin against a fake runtime (the nri crate's test
//! runtime: multiplexed frames and ttrpc by hand over a socket pair).
//!
//! What needs no ipvlan: the admission rule (a pod of a namespace the
//! network does not allow fails, and nothing is allocated), pods without
//! the annotation, annotation and network errors, an attach that fails
//! after its addresses were reserved (rolled back), Stop/RemovePodSandbox
//! releasing a record, Synchronize releasing stale pod records and keeping
//! live ones; and the `ipvnet nri` binary in both launch modes (external
//! socket path, pre-registered `NN-ipvnet` with the socket on fd 3).
//! The success path (interfaces in a real pod) runs in the guest.

#[path = "../nri/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::*;
use ipvnet::commands::nri::IpvnetPlugin;
use ipvnet::network::{plan, CreateRequest};
use ipvnet::store::{Owner, OwnerKind, Store, Want};
use nri::api;
use nri::Options;
use protobuf::Message;
use tokio::net::UnixStream;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ipvnet-nri-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A network definition written straight into the store (no parent link
/// is made: `plan` is pure).
fn add_network(store: &Store, name: &str, subnet: &str, opts: &[&str]) {
    let req = CreateRequest {
        name: name.into(),
        driver: "ipvlan".into(),
        subnets: vec![subnet.into()],
        ipv4: true,
        options: opts.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let (net, _) = plan(
        &req,
        &store.networks().unwrap(),
        format!("{:0>64}", name.len()),
        "now".into(),
    )
    .unwrap();
    let lock = store.lock().unwrap();
    lock.save_network(&net).unwrap();
    lock.init_hosts(&net.name).unwrap();
}

fn pod(id: &str, k8s_ns: &str, netns: Option<&str>, annotations: &[(&str, &str)]) -> api::PodSandbox {
    let mut p = api::PodSandbox::new();
    p.id = id.into();
    p.name = format!("{id}-name");
    p.uid = format!("{id}-uid");
    p.namespace = k8s_ns.into();
    for (k, v) in annotations {
        p.annotations.insert(k.to_string(), v.to_string());
    }
    if let Some(path) = netns {
        let mut ns = api::LinuxNamespace::new();
        ns.type_ = "network".into();
        ns.path = path.into();
        p.linux.mut_or_insert_default().namespaces.push(ns);
    }
    p
}

fn state_change(event: api::Event, pod: api::PodSandbox) -> api::StateChangeEvent {
    let mut ev = api::StateChangeEvent::new();
    ev.event = event.into();
    ev.pod = Some(pod).into();
    ev
}

/// Every lease of every network: (network, address, owner).
fn leases(store: &Store) -> Vec<(String, IpAddr, String)> {
    let mut out = Vec::new();
    for n in store.networks().unwrap() {
        for (ip, owner) in store.leases(&n.name).unwrap() {
            out.push((n.name.clone(), ip, owner));
        }
    }
    out
}

fn owner_ids(store: &Store) -> BTreeSet<String> {
    store.owners().unwrap().into_iter().map(|o| o.id).collect()
}

/// A record with one lease on `network`, as the plugin (or the hook) makes.
fn add_record(store: &Store, id: &str, kind: OwnerKind, network: &str, netns: Option<&str>) -> Owner {
    let net = store.network(network).unwrap();
    let owner = Owner {
        id: id.into(),
        kind,
        hostname: Some(id.into()),
        netns: netns.map(PathBuf::from),
        labels: Default::default(),
        endpoints: vec![],
        created: "now".into(),
    };
    let want = Want {
        network: &net,
        interface: "eth1".into(),
        statics: vec![],
    };
    store.lock().unwrap().reserve(owner, &[want]).unwrap()
}

/// Registration, then Configure (checks the pod-events mask). Returns the
/// next free stream id.
async fn handshake(rt: &mut FakeRuntime) -> u32 {
    handshake_with_timeout(rt, 0).await
}

/// The same, with the runtime's request timeout in Configure (ms; 0: not
/// sent, as containerd 1.7 does).
async fn handshake_with_timeout(rt: &mut FakeRuntime, request_timeout_ms: i64) -> u32 {
    let msg = rt.read_msg(2).await;
    let req = ttrpc::Request::parse_from_bytes(&msg.payload).unwrap();
    assert_eq!(req.method, "RegisterPlugin");
    let reg = api::RegisterPluginRequest::parse_from_bytes(&req.payload).unwrap();
    assert_eq!((reg.plugin_name.as_str(), reg.plugin_idx.as_str()), ("ipvnet", "10"));
    rt.reply_ok(msg.stream_id, Vec::new()).await;
    let mut cfg = api::ConfigureRequest::new();
    cfg.runtime_name = "fake".into();
    cfg.runtime_version = "v0".into();
    cfg.request_timeout = request_timeout_ms;
    let resp = rt.call(1, "Configure", &cfg).await;
    assert_eq!(code(&resp), 0);
    // events (field 2) = 0x7: Run/Stop/RemovePodSandbox only.
    assert_eq!(resp.payload, vec![0x10, 0x07]);
    3
}

async fn sync(rt: &mut FakeRuntime, stream: u32, pods: Vec<api::PodSandbox>) {
    let mut req = api::SynchronizeRequest::new();
    req.pods = pods;
    let resp = rt.call(stream, "Synchronize", &req).await;
    assert_eq!(code(&resp), 0);
}

/// Serve the plugin over a socket pair; returns the fake runtime's end.
fn start(store_dir: &Path) -> (FakeRuntime, tokio::task::JoinHandle<Result<(), nri::Error>>) {
    let (plugin_end, runtime_end) = UnixStream::pair().unwrap();
    let plugin = IpvnetPlugin::new(Store::open(store_dir).unwrap());
    let opts = Options::new("ipvnet", "10");
    let served = tokio::spawn(async move { nri::serve(plugin, &opts, plugin_end).await });
    (FakeRuntime::new(runtime_end), served)
}

async fn stop(mut rt: FakeRuntime, stream: u32, served: tokio::task::JoinHandle<Result<(), nri::Error>>) {
    assert_eq!(code(&rt.call(stream, "Shutdown", &api::Empty::new()).await), 0);
    drop(rt);
    let r = tokio::time::timeout(STEP_TIMEOUT, served)
        .await
        .expect("plugin ended")
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
}

/// The status message of a failed call (code 2, UNKNOWN).
fn failure(resp: &ttrpc::Response) -> String {
    assert_eq!(code(resp), 2, "expected a failure, got {resp:?}");
    resp.status.as_ref().unwrap().message.clone()
}

#[tokio::test]
async fn pod_of_a_namespace_the_network_does_not_allow_fails_before_any_allocation() {
    let dir = scratch("admission");
    let store = Store::open(&dir).unwrap();
    add_network(&store, "db_net", "192.168.50.0/24", &["k8s_namespaces=team-a,team-c"]);
    add_network(&store, "closed", "192.168.51.0/24", &[]);
    add_network(&store, "open", "192.168.52.0/24", &["k8s_namespaces=*"]);
    let (mut rt, served) = start(&dir);
    let mut s = handshake(&mut rt).await;
    sync(&mut rt, s, vec![]).await;
    s += 2;

    // An allowed namespace would go on to attach: a real namespace path is
    // needed for the rule to be the only reason of failure below.
    let netns = format!("/proc/{}/ns/net", std::process::id());
    let p = pod("aaa111", "team-b", Some(&netns), &[("ipvnet.network", "db_net")]);
    let msg = failure(
        &rt.call(s, "StateChange", &state_change(api::Event::RUN_POD_SANDBOX, p))
            .await,
    );
    s += 2;
    assert!(msg.contains("pod team-b/aaa111-name"), "{msg}");
    assert!(
        msg.contains(r#"network "db_net" does not allow pods of Kubernetes namespace "team-b""#),
        "{msg}"
    );
    assert!(msg.contains("k8s_namespaces=team-a,team-c"), "{msg}");

    // A network without k8s_namespaces admits no pod at all; the check
    // covers every network of the list (here the second one).
    let p = pod("bbb222", "team-a", Some(&netns), &[("ipvnet.network", "open,closed")]);
    let msg = failure(
        &rt.call(s, "StateChange", &state_change(api::Event::RUN_POD_SANDBOX, p))
            .await,
    );
    s += 2;
    assert!(
        msg.contains(r#"network "closed" does not allow pods of Kubernetes namespace "team-a""#),
        "{msg}"
    );
    assert!(msg.contains("no pod may join"), "{msg}");

    assert!(owner_ids(&store).is_empty(), "no record");
    assert!(leases(&store).is_empty(), "no lease");
    stop(rt, s, served).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn pod_without_the_annotation_passes_untouched() {
    let dir = scratch("plain");
    let store = Store::open(&dir).unwrap();
    add_network(&store, "db_net", "192.168.60.0/24", &["k8s_namespaces=*"]);
    let (mut rt, served) = start(&dir);
    let mut s = handshake(&mut rt).await;
    sync(&mut rt, s, vec![]).await;
    s += 2;
    // Other annotations, a netns path that does not even exist: not looked at.
    let p = pod(
        "ccc333",
        "default",
        Some("/nonexistent/netns"),
        &[("io.kubernetes.cri.container-type", "sandbox")],
    );
    for ev in [
        api::Event::RUN_POD_SANDBOX,
        api::Event::STOP_POD_SANDBOX,
        api::Event::REMOVE_POD_SANDBOX,
    ] {
        let resp = rt.call(s, "StateChange", &state_change(ev, p.clone())).await;
        s += 2;
        assert_eq!(code(&resp), 0, "{ev:?}: {resp:?}");
    }
    assert!(owner_ids(&store).is_empty());
    stop(rt, s, served).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_requests_fail_the_pod_with_a_clear_message() {
    let dir = scratch("bad");
    let store = Store::open(&dir).unwrap();
    add_network(&store, "db_net", "192.168.70.0/24", &["k8s_namespaces=*"]);
    let (mut rt, served) = start(&dir);
    let mut s = handshake(&mut rt).await;
    sync(&mut rt, s, vec![]).await;
    s += 2;
    let netns = format!("/proc/{}/ns/net", std::process::id());
    let cases: Vec<(api::PodSandbox, &str)> = vec![
        (
            pod("d1", "default", Some(&netns), &[("ipvnet.network", "nosuch")]),
            r#"network "nosuch" not found"#,
        ),
        (
            pod("d2", "default", Some(&netns), &[("ipvnet.netwrok", "db_net")]),
            "annotation ipvnet.netwrok: unknown key",
        ),
        (
            pod(
                "d3",
                "default",
                Some(&netns),
                &[("ipvnet.network", "db_net"), ("ipvnet.ip", "10.9.9.9")],
            ),
            "address 10.9.9.9 is in no subnet of network db_net",
        ),
        (
            pod("d4", "default", None, &[("ipvnet.network", "db_net")]),
            "hostNetwork",
        ),
        (
            pod(
                "d5",
                "default",
                Some("/nonexistent/netns/cni-x"),
                &[("ipvnet.network", "db_net")],
            ),
            "open network namespace /nonexistent/netns/cni-x",
        ),
    ];
    for (p, want) in cases {
        let id = p.id.clone();
        let msg = failure(
            &rt.call(s, "StateChange", &state_change(api::Event::RUN_POD_SANDBOX, p))
                .await,
        );
        s += 2;
        assert!(msg.contains(&format!("pod default/{id}-name")), "{msg}");
        assert!(msg.contains(want), "{id}: {msg}");
    }
    assert!(owner_ids(&store).is_empty());
    assert!(leases(&store).is_empty());
    stop(rt, s, served).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn attach_failing_after_the_reservation_is_rolled_back() {
    let dir = scratch("rollback");
    let store = Store::open(&dir).unwrap();
    // A parent that does not exist: the addresses are reserved, then the
    // link cannot be made (the host's own namespace is given as the pod's:
    // nothing is created in it).
    add_network(
        &store,
        "gone_parent",
        "192.168.80.0/24",
        &["parent=ipvnt-nope0", "k8s_namespaces=default"],
    );
    let (mut rt, served) = start(&dir);
    let mut s = handshake(&mut rt).await;
    sync(&mut rt, s, vec![]).await;
    s += 2;
    let netns = format!("/proc/{}/ns/net", std::process::id());
    let p = pod(
        "eee555",
        "default",
        Some(&netns),
        &[("ipvnet.network", "gone_parent"), ("ipvnet.ip", "192.168.80.7")],
    );
    let msg = failure(
        &rt.call(s, "StateChange", &state_change(api::Event::RUN_POD_SANDBOX, p))
            .await,
    );
    s += 2;
    assert!(
        msg.contains("parent interface ipvnt-nope0 of network gone_parent does not exist"),
        "{msg}"
    );
    assert!(owner_ids(&store).is_empty(), "record rolled back");
    assert!(leases(&store).is_empty(), "lease rolled back");
    stop(rt, s, served).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_slow_attachment_fails_the_pod_within_the_request_timeout() {
    let dir = scratch("slow");
    let store = Store::open(&dir).unwrap();
    add_network(
        &store,
        "slow_net",
        "192.168.85.0/24",
        &["parent=ipvnt-nope1", "k8s_namespaces=*"],
    );
    let (mut rt, served) = start(&dir);
    // The runtime says its request timeout is 1 s: the plugin allows
    // itself 500 ms.
    let mut s = handshake_with_timeout(&mut rt, 1000).await;
    sync(&mut rt, s, vec![]).await;
    s += 2;
    // Hold the store's lock: the attachment blocks at its reservation.
    let held = store.lock().unwrap();
    let netns = format!("/proc/{}/ns/net", std::process::id());
    let p = pod("jjj000", "default", Some(&netns), &[("ipvnet.network", "slow_net")]);
    let t0 = std::time::Instant::now();
    let msg = failure(
        &rt.call(s, "StateChange", &state_change(api::Event::RUN_POD_SANDBOX, p))
            .await,
    );
    s += 2;
    let took = t0.elapsed();
    assert!(msg.contains("attaching took longer than 500 ms"), "{msg}");
    assert!(took < std::time::Duration::from_millis(1000), "answered after {took:?}");
    // The attachment goes on once the lock is free, fails (no parent) and
    // is rolled back; had it succeeded, it would have been undone.
    drop(held);
    let t0 = std::time::Instant::now();
    while !owner_ids(&store).is_empty() || !leases(&store).is_empty() {
        assert!(t0.elapsed() < STEP_TIMEOUT, "the late attachment left a record");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The next pod is served normally.
    let p = pod("kkk111", "default", None, &[]);
    assert_eq!(
        code(
            &rt.call(s, "StateChange", &state_change(api::Event::RUN_POD_SANDBOX, p))
                .await
        ),
        0
    );
    s += 2;
    stop(rt, s, served).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stop_and_remove_release_the_pod_idempotently() {
    let dir = scratch("stop");
    let store = Store::open(&dir).unwrap();
    add_network(&store, "db_net", "192.168.90.0/24", &["k8s_namespaces=*"]);
    // The namespace is gone already (the usual case at RemovePodSandbox).
    add_record(
        &store,
        "fff666",
        OwnerKind::Pod,
        "db_net",
        Some("/nonexistent/netns/cni-f"),
    );
    add_record(
        &store,
        "ggg777",
        OwnerKind::Pod,
        "db_net",
        Some("/nonexistent/netns/cni-g"),
    );
    // A container record with a pod's id is not the plugin's to release.
    add_record(&store, "hhh888", OwnerKind::Container, "db_net", None);
    let (mut rt, served) = start(&dir);
    let mut s = handshake(&mut rt).await;
    let live = vec![pod("fff666", "default", None, &[]), pod("ggg777", "default", None, &[])];
    sync(&mut rt, s, live).await;
    s += 2;
    assert_eq!(leases(&store).len(), 3);

    // Stop then Remove (no namespace in these events, as containerd sends).
    for ev in [api::Event::STOP_POD_SANDBOX, api::Event::REMOVE_POD_SANDBOX] {
        let resp = rt
            .call(s, "StateChange", &state_change(ev, pod("fff666", "default", None, &[])))
            .await;
        s += 2;
        assert_eq!(code(&resp), 0, "{resp:?}");
        assert!(!owner_ids(&store).contains("fff666"));
    }
    // Remove alone also releases.
    let resp = rt
        .call(
            s,
            "StateChange",
            &state_change(api::Event::REMOVE_POD_SANDBOX, pod("ggg777", "default", None, &[])),
        )
        .await;
    s += 2;
    assert_eq!(code(&resp), 0);
    let resp = rt
        .call(
            s,
            "StateChange",
            &state_change(api::Event::STOP_POD_SANDBOX, pod("hhh888", "default", None, &[])),
        )
        .await;
    s += 2;
    assert_eq!(code(&resp), 0);
    assert_eq!(owner_ids(&store), BTreeSet::from(["hhh888".to_string()]));
    assert_eq!(leases(&store).len(), 1);
    stop(rt, s, served).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn synchronize_releases_stale_pod_records_and_keeps_live_ones() {
    let dir = scratch("sync");
    let store = Store::open(&dir).unwrap();
    add_network(&store, "db_net", "192.168.100.0/24", &["k8s_namespaces=*"]);
    add_record(
        &store,
        "live-pod",
        OwnerKind::Pod,
        "db_net",
        Some("/nonexistent/netns/cni-live"),
    );
    add_record(
        &store,
        "stale-pod",
        OwnerKind::Pod,
        "db_net",
        Some("/nonexistent/netns/cni-stale"),
    );
    add_record(&store, "a-container", OwnerKind::Container, "db_net", None);
    add_record(&store, "a-lease", OwnerKind::Lease, "db_net", None);
    // Attached a moment ago by a plugin that died before the runtime listed
    // the pod: spared (SYNC_GRACE).
    let mut young = add_record(
        &store,
        "young-pod",
        OwnerKind::Pod,
        "db_net",
        Some("/nonexistent/netns/cni-y"),
    );
    store.lock().unwrap().release("young-pod").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    young
        .labels
        .insert(ipvnet::commands::nri::LABEL_ATTACHED_AT.into(), now.to_string());
    let net = store.network("db_net").unwrap();
    let want = Want {
        network: &net,
        interface: "eth1".into(),
        statics: vec![],
    };
    store.lock().unwrap().reserve(young, &[want]).unwrap();

    // A restarted plugin: the runtime reports its pods at Synchronize (in
    // two parts here), one of which has an ipvnet record.
    let (mut rt, served) = start(&dir);
    let s = handshake(&mut rt).await;
    let mut part = api::SynchronizeRequest::new();
    part.pods = vec![pod("unrelated", "default", None, &[])];
    part.more = true;
    assert_eq!(code(&rt.call(s, "Synchronize", &part).await), 0);
    assert_eq!(owner_ids(&store).len(), 5, "nothing released before the last part");
    sync(&mut rt, s + 2, vec![pod("live-pod", "default", None, &[])]).await;

    let kept = BTreeSet::from(["live-pod", "young-pod", "a-container", "a-lease"].map(String::from));
    assert_eq!(owner_ids(&store), kept);
    let holders: BTreeSet<String> = leases(&store).into_iter().map(|l| l.2).collect();
    assert_eq!(holders, kept);
    stop(rt, s + 4, served).await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the binary ----

/// Runtime side for the binary tests: registration, Configure with
/// `config`, Synchronize, a rejected pod, Shutdown.
async fn drive_binary(mut rt: FakeRuntime, config: &str) {
    let s = {
        let msg = rt.read_msg(2).await;
        let req = ttrpc::Request::parse_from_bytes(&msg.payload).unwrap();
        let reg = api::RegisterPluginRequest::parse_from_bytes(&req.payload).unwrap();
        assert_eq!((reg.plugin_name.as_str(), reg.plugin_idx.as_str()), ("ipvnet", "10"));
        rt.reply_ok(msg.stream_id, Vec::new()).await;
        let mut cfg = api::ConfigureRequest::new();
        cfg.config = config.into();
        let resp = rt.call(1, "Configure", &cfg).await;
        assert_eq!(code(&resp), 0);
        assert_eq!(resp.payload, vec![0x10, 0x07]);
        3
    };
    sync(&mut rt, s, vec![]).await;
    let p = pod(
        "iii999",
        "default",
        Some("/nonexistent/x"),
        &[("ipvnet.network", "nosuch")],
    );
    let msg = failure(
        &rt.call(s + 2, "StateChange", &state_change(api::Event::RUN_POD_SANDBOX, p))
            .await,
    );
    assert!(msg.contains(r#"network "nosuch" not found"#), "{msg}");
    assert_eq!(code(&rt.call(s + 4, "Shutdown", &api::Empty::new()).await), 0);
    rt.expect_eof().await;
}

#[tokio::test]
async fn binary_external_mode_with_socket_flag() {
    let dir = scratch("bin-ext");
    let sock = dir.join("nri.sock");
    let log = dir.join("nri.log");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipvnet"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["nri", "--socket"])
        .arg(&sock)
        .arg("--log-file")
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (conn, _) = tokio::time::timeout(STEP_TIMEOUT, listener.accept())
        .await
        .expect("plugin connected")
        .unwrap();
    drive_binary(FakeRuntime::new(conn), "").await;
    let out = tokio::time::timeout(STEP_TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("registered as 10-ipvnet"), "{text}");
    assert!(text.contains(r#"network "nosuch" not found"#), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_preregistered_launch_as_nn_ipvnet_without_arguments() {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::process::CommandExt;

    let dir = scratch("bin-pre");
    // containerd runs /opt/nri/plugins/10-ipvnet: a symlink to the binary.
    let exe = dir.join("10-ipvnet");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ipvnet"), &exe).unwrap();
    let state = dir.join("conf-state");
    let (plugin_end, runtime_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = plugin_end.as_raw_fd();
    let mut cmd = std::process::Command::new(&exe);
    // Only what containerd passes (plus where to log, so that the test
    // writes nothing under /var/log and /var/lib).
    cmd.env_clear()
        .env("NRI_PLUGIN_NAME", "ipvnet")
        .env("NRI_PLUGIN_IDX", "10")
        .env("NRI_PLUGIN_SOCKET", "3")
        .env("JOURNAL_STREAM", "0:0")
        .env("IPVNET_STATE_DIR", dir.join("env-state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 clears close-on-exec on the copy; if the socket already
            // is fd 3, clear it by hand.
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(plugin_end);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state_conf = format!("# /etc/nri/conf.d/10-ipvnet.conf\nstate_dir = {}\n", state.display());
    rt.block_on(async {
        runtime_end.set_nonblocking(true).unwrap();
        let rt = FakeRuntime::new(UnixStream::from_std(runtime_end).unwrap());
        drive_binary(rt, &state_conf).await;
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(out.stdout.is_empty());
    assert!(err.contains("pre-registered plugin 10-ipvnet"), "{err}");
    // The plugin configuration's state_dir was used.
    assert!(state.join("endpoints").is_dir(), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
