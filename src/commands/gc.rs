//! `ipvnet gc`: release what containers that no longer exist still hold
//! (a runtime that crashed before poststop, a node that rebooted).
//!
//! How it decides, for each endpoint record of a container:
//! - it was made in another boot (its `boot_id` differs from
//!   /proc/sys/kernel/random/boot_id): the container is gone;
//! - else its init process (`pid`) is gone, or the process now holding that
//!   pid started at another time (`pid_start`, field 22 of /proc/PID/stat)
//!   than the one recorded: the container is gone;
//! - otherwise, or when the record lacks these facts, it is kept.
//!
//! Pods (the NRI plugin's) and `ipvnet lease` reservations are never
//! touched by that rule. Both forms also remove lease files that no record
//! owns and the temp files of writers killed mid-write (under the store's
//! lock, which every writer holds while its temp file exists).
//!
//! `ipvnet gc --containerd SOCKET` asks containerd instead: every namespace,
//! the containers (and, where the Sandbox API exists, the sandboxes) of
//! each; a record of kind container or pod whose id containerd does not
//! know is released, except a container whose recorded process still runs
//! (a container of another engine that uses the hook directly). The
//! records are read *before* containerd is asked: a container exists in
//! containerd before its hook writes its record, so a record created while
//! gc runs is never mistaken for a stale one. Nothing is released when
//! containerd cannot be asked.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::{Owner, OwnerKind, Store};

#[derive(Debug, Default)]
pub struct Report {
    pub released: Vec<String>,
    pub kept: usize,
    pub orphan_leases: usize,
    pub temp_files: usize,
}

/// What no record accounts for: lease files without an owner record, and
/// the temp files of writers killed before their rename or link.
fn sweep(lock: &crate::store::Locked<'_>, report: &mut Report, errors: &mut Vec<Error>) {
    match lock.remove_orphan_leases() {
        Ok(n) => report.orphan_leases = n,
        Err(e) => errors.push(e),
    }
    match lock.remove_temp_files() {
        Ok(n) => report.temp_files = n,
        Err(e) => errors.push(e),
    }
}

pub fn run(store: &Store) -> Result<Report> {
    let mut report = Report::default();
    let lock = store.lock()?;
    let mut errors = Vec::new();
    for owner in store.owners()? {
        if owner.kind == OwnerKind::Container && is_gone(&owner) {
            match lock.release(&owner.id) {
                Ok(_) => report.released.push(owner.id),
                Err(e) => errors.push(e),
            }
        } else {
            report.kept += 1;
        }
    }
    sweep(&lock, &mut report, &mut errors);
    Error::join(errors).map_or(Ok(report), Err)
}

/// `ipvnet gc --containerd SOCKET`: release the container and pod records
/// whose ids containerd does not know (see the module doc).
pub fn run_containerd(store: &Store, socket: &Path) -> Result<Report> {
    // Records first, then containerd (see the module doc for why).
    let owners = store.owners()?;
    let live = containerd_ids(socket, CONTAINERD_TIMEOUT)?;
    release_stale(store, &owners, &live)
}

/// Release what [`stale_ids`] picks among `owners` (read before `live`
/// was taken), skipping a record that was replaced meanwhile.
pub fn release_stale(store: &Store, owners: &[Owner], live: &HashSet<String>) -> Result<Report> {
    let stale = stale_ids(owners, live, &[OwnerKind::Container, OwnerKind::Pod], is_running);
    let mut report = Report { kept: owners.len() - stale.len(), ..Report::default() };
    let lock = store.lock()?;
    let mut errors = Vec::new();
    for owner in owners.iter().filter(|o| stale.contains(&o.id)) {
        // Same id, another record (a container re-created under the same
        // name after the snapshot): not ours to release.
        match store.owner(&owner.id) {
            Ok(Some(now)) if now.created == owner.created && now.kind == owner.kind => {}
            Ok(_) => {
                report.kept += 1;
                continue;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        }
        if owner.kind == OwnerKind::Pod {
            // A pod's namespace path is unique to it (not a /proc/PID path
            // that another process may now hold): its links can go.
            if let Err(e) = crate::attach::delete_interfaces(owner) {
                errors.push(e);
            }
        }
        match lock.release(&owner.id) {
            Ok(_) => report.released.push(owner.id.clone()),
            Err(e) => errors.push(e),
        }
    }
    sweep(&lock, &mut report, &mut errors);
    Error::join(errors).map_or(Ok(report), Err)
}

/// The ids of the records to release, given the ids the runtime knows:
/// records of one of `kinds` whose id is not in `live` and for which
/// `running` is false. Pure, in the order of `owners`.
pub fn stale_ids(
    owners: &[Owner],
    live: &HashSet<String>,
    kinds: &[OwnerKind],
    running: impl Fn(&Owner) -> bool,
) -> Vec<String> {
    owners
        .iter()
        .filter(|o| kinds.contains(&o.kind) && !live.contains(&o.id) && !running(o))
        .map(|o| o.id.clone())
        .collect()
}

/// Whether a record's process provably still runs: it has a pid, made in
/// this boot, and that pid is held by a process started when the record
/// says. (No pid recorded, as for pods: false.)
pub fn is_running(owner: &Owner) -> bool {
    let Some(Ok(pid)) = owner.labels.get("pid").map(|p| p.parse::<i32>()) else { return false };
    if let Some(boot) = owner.labels.get("boot_id") {
        if Some(boot.as_str()) != boot_id().as_deref() {
            return false;
        }
    }
    match process_start_time(pid) {
        None => false,
        Some(now) => owner.labels.get("pid_start").map_or(true, |s| *s == now.to_string()),
    }
}

/// How long gc waits for containerd's answers, all together.
pub const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(30);

/// The ids of every container and sandbox in every namespace of the
/// containerd at `socket`.
pub fn containerd_ids(socket: &Path, timeout: Duration) -> Result<HashSet<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("start the async runtime: {e}")))?;
    let what = format!("ask containerd at {}", socket.display());
    rt.block_on(async {
        match tokio::time::timeout(timeout, containerd_list(socket)).await {
            Ok(r) => r.map_err(|e| e.context(&what)),
            Err(_) => Err(Error::new(format!("{what}: no answer within {} s", timeout.as_secs()))),
        }
    })
}

async fn containerd_list(socket: &Path) -> Result<HashSet<String>> {
    use containerd::*;
    let status = |what: &str, s: tonic::Status| Error::new(format!("{what}: {} ({:?})", s.message(), s.code()));
    let client = Client::connect(socket).await?;
    let namespaces: ListNamespacesResponse = client
        .unary(NAMESPACES_LIST, None, ListNamespacesRequest::default())
        .await
        .map_err(|s| status("list namespaces", s))?;
    let mut sandbox_api = true;
    let mut ids = HashSet::new();
    for ns in namespaces.namespaces {
        let what = format!("list the containers of namespace {}", ns.name);
        let mut stream = client
            .stream::<_, ListContainerMessage>(CONTAINERS_LIST_STREAM, &ns.name, ListContainersRequest::default())
            .await
            .map_err(|s| status(&what, s))?;
        while let Some(msg) = stream.message().await.map_err(|s| status(&what, s))? {
            if let Some(c) = msg.container {
                ids.insert(c.id);
            }
        }
        if sandbox_api {
            match client.unary::<_, StoreListResponse>(SANDBOX_STORE_LIST, Some(&ns.name), StoreListRequest::default()).await {
                Ok(r) => ids.extend(r.list.into_iter().map(|s| s.sandbox_id)),
                // containerd without the Sandbox API (1.6, or 1.7 without
                // the sandboxed CRI): its sandboxes are containers.
                Err(s) if s.code() == tonic::Code::Unimplemented => sandbox_api = false,
                Err(s) => return Err(status(&format!("list the sandboxes of namespace {}", ns.name), s)),
            }
        }
    }
    Ok(ids)
}

/// The few messages of containerd's gRPC API that gc needs, declared with
/// prost's derive (field numbers from containerd's api/*.proto), so that
/// the build needs no protoc. Fields not declared are skipped on decoding.
mod containerd {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use hyper_util::rt::TokioIo;
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic::transport::{Channel, Endpoint, Uri};

    use crate::error::{Error, Result};

    pub const NAMESPACES_LIST: &str = "/containerd.services.namespaces.v1.Namespaces/List";
    pub const CONTAINERS_LIST_STREAM: &str = "/containerd.services.containers.v1.Containers/ListStream";
    pub const SANDBOX_STORE_LIST: &str = "/containerd.services.sandbox.v1.Store/List";
    const NAMESPACE_HEADER: &str = "containerd-namespace";
    const MAX_MESSAGE: usize = 64 << 20;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNamespacesRequest {
        #[prost(string, tag = "1")]
        pub filter: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNamespacesResponse {
        #[prost(message, repeated, tag = "1")]
        pub namespaces: Vec<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Namespace {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainerMessage {
        #[prost(message, optional, tag = "1")]
        pub container: Option<Container>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Container {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StoreListRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StoreListResponse {
        #[prost(message, repeated, tag = "1")]
        pub list: Vec<Sandbox>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sandbox {
        #[prost(string, tag = "1")]
        pub sandbox_id: String,
    }

    pub struct Client {
        channel: Channel,
    }

    impl Client {
        pub async fn connect(socket: &Path) -> Result<Client> {
            let path: PathBuf = socket.to_path_buf();
            // The URI is a placeholder: the connector dials the Unix socket.
            let channel = Endpoint::from_static("http://localhost")
                .connect_timeout(Duration::from_secs(5))
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
                }))
                .await
                .map_err(|e| {
                    // The causes, each once (tonic repeats its source's text).
                    let mut msg = format!("connect: {e}");
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        let text = s.to_string();
                        if !msg.contains(&text) {
                            msg = format!("{msg}: {text}");
                        }
                        src = s.source();
                    }
                    Error::new(msg)
                })?;
            Ok(Client { channel })
        }

        async fn grpc(&self, method: &'static str) -> std::result::Result<(tonic::client::Grpc<Channel>, PathAndQuery), tonic::Status> {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE);
            grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            Ok((grpc, PathAndQuery::from_static(method)))
        }

        fn request<Q>(msg: Q, namespace: Option<&str>) -> std::result::Result<tonic::Request<Q>, tonic::Status> {
            let mut req = tonic::Request::new(msg);
            if let Some(ns) = namespace {
                let value = ns
                    .parse()
                    .map_err(|_| tonic::Status::invalid_argument(format!("namespace {ns:?} is not a valid header value")))?;
                req.metadata_mut().insert(NAMESPACE_HEADER, value);
            }
            Ok(req)
        }

        pub async fn unary<Q, R>(&self, method: &'static str, namespace: Option<&str>, msg: Q) -> std::result::Result<R, tonic::Status>
        where
            Q: prost::Message + Send + Sync + 'static,
            R: prost::Message + Default + Send + Sync + 'static,
        {
            let (mut grpc, path) = self.grpc(method).await?;
            let codec = tonic_prost::ProstCodec::<Q, R>::default();
            grpc.unary(Self::request(msg, namespace)?, path, codec).await.map(|r| r.into_inner())
        }

        pub async fn stream<Q, R>(&self, method: &'static str, namespace: &str, msg: Q) -> std::result::Result<tonic::Streaming<R>, tonic::Status>
        where
            Q: prost::Message + Send + Sync + 'static,
            R: prost::Message + Default + Send + Sync + 'static,
        {
            let (mut grpc, path) = self.grpc(method).await?;
            let codec = tonic_prost::ProstCodec::<Q, R>::default();
            grpc.server_streaming(Self::request(msg, Some(namespace))?, path, codec).await.map(|r| r.into_inner())
        }
    }
}

/// Whether a container's record is provably stale (see the module doc).
pub fn is_gone(owner: &Owner) -> bool {
    let (Some(boot), Some(pid)) = (owner.labels.get("boot_id"), owner.labels.get("pid")) else {
        return false;
    };
    if Some(boot.as_str()) != boot_id().as_deref() {
        return true;
    }
    let Ok(pid) = pid.parse::<i32>() else { return false };
    match process_start_time(pid) {
        None => true,
        Some(now) => owner.labels.get("pid_start").is_some_and(|s| s != &now.to_string()),
    }
}

/// Start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat); `None` when there is no such process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past
    // the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // A zombie (Z) or dying (X) process holds no namespace any more: its
    // container is gone even though the pid is not reaped yet.
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_dead_pid_is_gone() {
        let me = std::process::id() as i32;
        let mut owner = Owner {
            id: "c1".into(),
            kind: OwnerKind::Container,
            hostname: None,
            netns: None,
            labels: crate::commands::hook::liveness_labels(Some(me)),
            endpoints: vec![],
            created: String::new(),
        };
        assert!(!is_gone(&owner));
        // Same pid, another start time: the pid was reused.
        owner.labels.insert("pid_start".into(), "1".into());
        assert!(is_gone(&owner));
        // Another boot.
        owner.labels = crate::commands::hook::liveness_labels(Some(me));
        owner.labels.insert("boot_id".into(), "another-boot".into());
        assert!(is_gone(&owner));
        // Unknown facts: kept.
        owner.labels.clear();
        assert!(!is_gone(&owner));
    }

    fn rec(id: &str, kind: OwnerKind, labels: &[(&str, String)]) -> Owner {
        Owner {
            id: id.into(),
            kind,
            hostname: None,
            netns: None,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            endpoints: vec![],
            created: String::new(),
        }
    }

    #[test]
    fn stale_ids_against_live_ids() {
        let owners = vec![
            rec("c-live", OwnerKind::Container, &[]),
            rec("c-gone", OwnerKind::Container, &[]),
            rec("p-live", OwnerKind::Pod, &[]),
            rec("p-gone", OwnerKind::Pod, &[]),
            rec("lease", OwnerKind::Lease, &[]),
            rec("c-other-engine", OwnerKind::Container, &[]),
        ];
        let live: HashSet<String> = ["c-live", "p-live"].iter().map(|s| s.to_string()).collect();
        let running = |o: &Owner| o.id == "c-other-engine";
        assert_eq!(
            stale_ids(&owners, &live, &[OwnerKind::Container, OwnerKind::Pod], running),
            vec!["c-gone", "p-gone"]
        );
        // The NRI plugin's reconciliation: pods only.
        assert_eq!(stale_ids(&owners, &live, &[OwnerKind::Pod], |_| false), vec!["p-gone"]);
        // An empty runtime: everything of the kinds asked, never leases.
        let none = HashSet::new();
        assert_eq!(stale_ids(&owners, &none, &[OwnerKind::Pod], |_| false), vec!["p-live", "p-gone"]);
        assert!(stale_ids(&owners, &none, &[], |_| false).is_empty());
    }

    #[test]
    fn running_needs_a_live_process_of_this_boot() {
        let me = std::process::id() as i32;
        let mine = crate::commands::hook::liveness_labels(Some(me));
        let labels: Vec<(&str, String)> = mine.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        assert!(is_running(&rec("c", OwnerKind::Container, &labels)));
        assert!(!is_running(&rec("c", OwnerKind::Container, &[])), "no pid: not provably running");
        let mut reused = labels.clone();
        reused.retain(|(k, _)| *k != "pid_start");
        reused.push(("pid_start", "1".into()));
        assert!(!is_running(&rec("c", OwnerKind::Container, &reused)), "pid reused");
        let mut other_boot = labels.clone();
        other_boot.retain(|(k, _)| *k != "boot_id");
        other_boot.push(("boot_id", "another-boot".into()));
        assert!(!is_running(&rec("c", OwnerKind::Container, &other_boot)));
    }

    #[test]
    fn release_stale_keeps_live_and_replaced_records() {
        let dir = std::env::temp_dir().join(format!("ipvnet-gc-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut owners = Vec::new();
        for (id, kind) in [("live1", OwnerKind::Container), ("gone1", OwnerKind::Container), ("pod1", OwnerKind::Pod), ("again", OwnerKind::Container), ("l1", OwnerKind::Lease)] {
            let mut o = rec(id, kind, &[]);
            o.created = "t0".into();
            owners.push(store.lock().unwrap().reserve(o, &[]).unwrap());
        }
        // "again" was deleted and re-created after the snapshot.
        store.lock().unwrap().release("again").unwrap();
        let mut newer = rec("again", OwnerKind::Container, &[]);
        newer.created = "t1".into();
        store.lock().unwrap().reserve(newer, &[]).unwrap();

        let live: HashSet<String> = ["live1".to_string()].into();
        let r = release_stale(&store, &owners, &live).unwrap();
        assert_eq!(r.released, vec!["gone1", "pod1"]);
        assert_eq!(r.kept, 3);
        let left: Vec<String> = store.owners().unwrap().into_iter().map(|o| o.id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        assert_eq!(left, vec!["again", "l1", "live1"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unreachable_containerd_is_an_error_naming_the_socket() {
        let e = containerd_ids(Path::new("/nonexistent/containerd.sock"), Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/containerd.sock"), "{e}");
    }

    #[test]
    fn unreaped_zombie_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = child.id() as i32;
        let labels = crate::commands::hook::liveness_labels(Some(pid));
        assert!(labels.contains_key("pid_start"), "a running process has a start time");
        let owner = Owner {
            id: "z".into(),
            kind: OwnerKind::Container,
            hostname: None,
            netns: None,
            labels,
            endpoints: vec![],
            created: String::new(),
        };
        assert!(!is_gone(&owner));
        // Not reaped yet: a zombie still has /proc/PID/stat.
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(&stat).unwrap().contains(") Z ") {
            assert!(std::time::Instant::now() < deadline, "child never became a zombie");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(is_gone(&owner), "a zombie holds no namespace");
        child.wait().unwrap();
    }

    #[test]
    fn exited_child_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let labels = crate::commands::hook::liveness_labels(Some(pid));
        child.wait().unwrap();
        let owner = Owner {
            id: "c2".into(),
            kind: OwnerKind::Container,
            hostname: None,
            netns: None,
            labels,
            endpoints: vec![],
            created: String::new(),
        };
        assert!(is_gone(&owner));
    }
}
