//! `ipvnet nri`: the containerd NRI plugin that gives Kubernetes pods
//! annotated `ipvnet.network` their ipvlan interfaces.
//!
//! - RunPodSandbox (after CNI set up the pod's eth0, before the sandbox
//!   starts): parse the pod's annotations; check that every requested
//!   network allows the pod's Kubernetes namespace (before anything is
//!   allocated); then attach the pod's network namespace (next free ethN
//!   names, a default route only where the namespace has none). The record
//!   is owned by the pod id, kind `pod`, and keeps the namespace path,
//!   because Stop/RemovePodSandbox carry none. Any error fails the pod.
//! - StopPodSandbox and RemovePodSandbox: delete the pod's ipvlan links
//!   if its namespace is still there, release its addresses. Idempotent.
//! - Synchronize (at every (re)connection): release the records of pods the
//!   runtime no longer has; keep the others.
//!
//! The plugin answers within the runtime's request timeout (2 s by
//! default): an attachment that takes longer fails the pod and is undone
//! in the background when it finishes.
//!
//! Launch: external (`ipvnet nri --socket /var/run/nri/nri.sock`) or
//! pre-registered (containerd starts `/opt/nri/plugins/10-ipvnet` with the
//! socket on an inherited fd, `NRI_PLUGIN_*` variables, no arguments).
//! Logs go to a file (default /var/log/ipvnet-nri.log) or to stderr (under
//! systemd, or `--log-file -`), never to stdout.
//!
//! (`annotations::is_pod_app_container` does not matter here: NRI pod
//! events are per sandbox, and app containers are never seen.)

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;

use nri::api::{Container, ContainerUpdate, PodSandbox};
use nri::{BoxError, Config, EventMask, Options, Plugin};

use crate::annotations;
use crate::attach::{attach, delete_interfaces, AttachRequest};
use crate::commands::gc::stale_ids;
use crate::error::{Error, Result};
use crate::store::{Owner, OwnerKind, Store};

pub const DEFAULT_NAME: &str = "ipvnet";
pub const DEFAULT_IDX: &str = "10";
pub const DEFAULT_LOG_FILE: &str = "/var/log/ipvnet-nri.log";
/// containerd's default request timeout (plugin_request_timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Labels of a pod's record.
pub const LABEL_K8S_NAMESPACE: &str = "k8s_namespace";
pub const LABEL_POD_NAME: &str = "pod_name";
pub const LABEL_POD_UID: &str = "pod_uid";
/// When the plugin attached the pod (seconds since the epoch).
pub const LABEL_ATTACHED_AT: &str = "attached_at";

/// Synchronize keeps records younger than this even if the runtime does not
/// list their pod yet: containerd adds a sandbox to the list it sends only
/// after RunPodSandbox returned, so a plugin restarted in between would
/// otherwise release a pod that is just starting. (Stop/RemovePodSandbox,
/// the next Synchronize or `gc --containerd` release a stale one later.)
pub const SYNC_GRACE: Duration = Duration::from_secs(60);

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
}

impl LogTarget {
    /// `-` is stderr; no flag means stderr under systemd (journald), else
    /// the default file.
    pub fn choose(flag: Option<&Path>) -> LogTarget {
        match flag {
            Some(p) if p.as_os_str() == "-" => LogTarget::Stderr,
            Some(p) => LogTarget::File(p.to_path_buf()),
            None if std::env::var_os("JOURNAL_STREAM").is_some() => LogTarget::Stderr,
            None => LogTarget::File(PathBuf::from(DEFAULT_LOG_FILE)),
        }
    }
}

/// The command line of `ipvnet nri`.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// External plugin: the runtime's socket (default /var/run/nri/nri.sock).
    pub socket: Option<PathBuf>,
    pub name: Option<String>,
    pub idx: Option<String>,
    pub log_file: Option<PathBuf>,
    pub debug: bool,
}

/// Run the plugin until the runtime shuts it down or goes away.
pub fn main(state_dir: &Path, args: &Args) -> Result<()> {
    init_logging(LogTarget::choose(args.log_file.as_deref()), args.debug);
    let opts = match (Options::from_env(), &args.socket) {
        // Started by the runtime (fd in NRI_PLUGIN_SOCKET), unless a socket
        // path was given explicitly.
        (Some(mut opts), None) => {
            if let Some(n) = &args.name {
                opts.name = n.clone();
            }
            if let Some(i) = &args.idx {
                opts.idx = i.clone();
            }
            opts
        }
        (_, socket) => {
            let mut o = Options::new(
                args.name.clone().unwrap_or_else(|| DEFAULT_NAME.into()),
                args.idx.clone().unwrap_or_else(|| DEFAULT_IDX.into()),
            );
            if let Some(s) = socket {
                o = o.with_socket_path(s);
            }
            o
        }
    };
    let store = Store::open(state_dir)?;
    log::info!(
        "ipvnet nri {}: plugin {}-{}, state {}",
        env!("CARGO_PKG_VERSION"),
        opts.idx,
        opts.name,
        state_dir.display()
    );
    let plugin = IpvnetPlugin::new(store);
    match nri::run(plugin, opts) {
        Ok(()) => {
            log::info!("ipvnet nri: shut down by the runtime");
            Ok(())
        }
        Err(e) => {
            log::error!("ipvnet nri: {e}");
            Err(Error::new(e.to_string()))
        }
    }
}

/// The plugin. Public so that tests can drive it with `nri::serve`.
pub struct IpvnetPlugin {
    store: RwLock<Arc<Store>>,
    /// How long RunPodSandbox may work before it fails the pod.
    budget: Mutex<Duration>,
    /// One attachment at a time in this process: attach names its
    /// temporary link after the process id, and an attachment that missed
    /// its deadline may still run when the next pod comes.
    attaching: Arc<Mutex<()>>,
}

impl IpvnetPlugin {
    pub fn new(store: Store) -> IpvnetPlugin {
        IpvnetPlugin {
            store: RwLock::new(Arc::new(store)),
            budget: Mutex::new(budget_for(DEFAULT_REQUEST_TIMEOUT)),
            attaching: Arc::new(Mutex::new(())),
        }
    }

    fn store(&self) -> Arc<Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn budget(&self) -> Duration {
        *self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RunPodSandbox, with errors in the crate's type.
    pub fn attach_pod(&self, pod: &PodSandbox) -> Result<Option<Owner>> {
        let who = pod_label(pod);
        let annotations: BTreeMap<String, String> =
            pod.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let Some(req) = annotations::parse(&annotations).map_err(|e| e.context(&who))? else {
            log::debug!("{who}: no {} annotation", annotations::NETWORK);
            return Ok(None);
        };
        let store = self.store();
        // Security first: every network must admit the pod's namespace.
        check_admission(&store, &req.networks, &pod.namespace).map_err(|e| e.context(&who))?;
        let Some(netns) = nri::pod_namespace(pod, "network") else {
            return Err(Error::new(format!(
                "{who}: the runtime sent no network namespace for the pod (a hostNetwork pod cannot join ipvnet networks)"
            )));
        };
        let netns = PathBuf::from(netns);
        if let Some(existing) = store.owner(&pod.id)? {
            if existing.kind == OwnerKind::Pod && existing.netns.as_deref() == Some(&netns) {
                log::info!("{who}: already attached");
                return Ok(Some(existing));
            }
        }

        let mut statics: Vec<IpAddr> = req.ips.iter().map(|a| IpAddr::from(*a)).collect();
        statics.extend(req.ip6s.iter().map(|a| IpAddr::from(*a)));
        let labels = BTreeMap::from([
            (LABEL_K8S_NAMESPACE.to_string(), pod.namespace.clone()),
            (LABEL_POD_NAME.to_string(), pod.name.clone()),
            (LABEL_POD_UID.to_string(), pod.uid.clone()),
            (LABEL_ATTACHED_AT.to_string(), unix_now().to_string()),
        ]);
        let id = pod.id.clone();
        let hostname = req.hostname.clone().unwrap_or_else(|| pod.name.clone());
        let networks = req.networks.clone();
        let work_store = store.clone();
        let undo_store = store.clone();
        let attaching = self.attaching.clone();
        let budget = self.budget();
        let started = std::time::Instant::now();
        let result = with_deadline(
            budget,
            move || {
                let _one_at_a_time = attaching.lock().unwrap_or_else(|e| e.into_inner());
                attach(
                    &work_store,
                    &AttachRequest {
                        owner_id: &id,
                        kind: OwnerKind::Pod,
                        hostname: Some(hostname),
                        netns: &netns,
                        networks: &networks,
                        statics: &statics,
                        labels,
                    },
                )
            },
            // Finished after the pod was failed: undo it.
            move |late: Result<Owner>| {
                if let Ok(owner) = late {
                    log::warn!("pod {}: attachment finished after the deadline; undoing it", owner.id);
                    release_pod(&undo_store, &owner);
                }
            },
        );
        match result {
            Some(Ok(owner)) => {
                log::info!(
                    "{who}: attached in {} ms: {}",
                    started.elapsed().as_millis(),
                    describe(&owner)
                );
                Ok(Some(owner))
            }
            Some(Err(e)) => Err(e.context(who)),
            None => Err(Error::new(format!(
                "{who}: attaching took longer than {} ms (the runtime waits {} ms at most); it is undone when it finishes",
                budget.as_millis(),
                (budget + Duration::from_millis(500)).as_millis()
            ))),
        }
    }

    /// Stop/RemovePodSandbox: delete the links (if the namespace is still
    /// there) and release. Returns the released record, if there was one.
    pub fn release_pod_id(&self, pod: &PodSandbox) -> Result<Option<Owner>> {
        let store = self.store();
        let Some(owner) = store.owner(&pod.id)? else {
            return Ok(None);
        };
        if owner.kind != OwnerKind::Pod {
            return Ok(None);
        }
        let released = release_pod(&store, &owner);
        if released {
            log::info!("{}: released {}", pod_label(pod), describe(&owner));
        }
        Ok(Some(owner))
    }

    /// Synchronize: release the records of pods the runtime does not know.
    /// Returns the released ids.
    pub fn reconcile(&self, pods: &[PodSandbox]) -> Result<Vec<String>> {
        let store = self.store();
        let live: HashSet<String> = pods.iter().map(|p| p.id.clone()).collect();
        let owners = store.owners()?;
        let now = unix_now();
        let stale = stale_ids(&owners, &live, &[OwnerKind::Pod], |o| {
            attached_within(o, now, SYNC_GRACE)
        });
        let mut released = Vec::new();
        for owner in owners.iter().filter(|o| stale.contains(&o.id)) {
            if release_pod(&store, owner) {
                released.push(owner.id.clone());
            }
        }
        let kept = owners.iter().filter(|o| o.kind == OwnerKind::Pod).count() - stale.len();
        log::info!(
            "synchronize: {} pods in the runtime; released {} stale pod records, kept {kept}",
            pods.len(),
            released.len()
        );
        Ok(released)
    }

    /// Apply the plugin configuration text (the conf.d file of a
    /// pre-registered plugin): `key = value` lines, `#` comments.
    /// Keys: `state_dir`, `log_file` (`-` for stderr), `debug` (true/false).
    pub fn apply_config(&self, text: &str) -> Result<()> {
        for (key, value) in parse_config(text)? {
            match key.as_str() {
                "state_dir" => {
                    let store = Store::open(Path::new(&value))?;
                    *self.store.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(store);
                    log::info!("configuration: state directory {value}");
                }
                "log_file" => set_log_target(LogTarget::choose(Some(Path::new(&value)))),
                "debug" => set_debug(matches!(value.as_str(), "1" | "true" | "yes" | "on")),
                other => log::warn!("configuration: unknown key {other:?} ignored (known: state_dir, log_file, debug)"),
            }
        }
        Ok(())
    }
}

impl Plugin for IpvnetPlugin {
    fn configure(&self, config: &Config) -> std::result::Result<EventMask, BoxError> {
        log::info!("configured by {} {}", config.runtime_name, config.runtime_version);
        if !config.config.trim().is_empty() {
            self.apply_config(&config.config)?;
        }
        let timeout = config.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        *self.budget.lock().unwrap_or_else(|e| e.into_inner()) = budget_for(timeout);
        Ok(EventMask::POD_EVENTS)
    }

    fn synchronize(
        &self,
        pods: &[PodSandbox],
        _containers: &[Container],
    ) -> std::result::Result<Vec<ContainerUpdate>, BoxError> {
        // A failure here would make the runtime drop the plugin: log it and
        // carry on (gc and later events clean up).
        if let Err(e) = self.reconcile(pods) {
            log::error!("synchronize: {e}");
        }
        Ok(Vec::new())
    }

    fn run_pod_sandbox(&self, pod: &PodSandbox) -> std::result::Result<(), BoxError> {
        match self.attach_pod(pod) {
            Ok(_) => Ok(()),
            Err(e) => {
                log::error!("RunPodSandbox: {e}");
                Err(e.into())
            }
        }
    }

    fn stop_pod_sandbox(&self, pod: &PodSandbox) -> std::result::Result<(), BoxError> {
        self.release_pod_id(pod)
            .map(|_| ())
            .map_err(|e| log_err("StopPodSandbox", pod, e))
    }

    fn remove_pod_sandbox(&self, pod: &PodSandbox) -> std::result::Result<(), BoxError> {
        self.release_pod_id(pod)
            .map(|_| ())
            .map_err(|e| log_err("RemovePodSandbox", pod, e))
    }

    fn shutdown(&self) {
        log::info!("the runtime is shutting down");
    }
}

fn log_err(what: &str, pod: &PodSandbox, e: Error) -> BoxError {
    let e = e.context(pod_label(pod));
    log::error!("{what}: {e}");
    e.into()
}

/// Every network must exist and admit pods of `k8s_namespace`.
pub fn check_admission(store: &Store, networks: &[String], k8s_namespace: &str) -> Result<()> {
    for name in networks {
        let net = store.network(name)?;
        if !net.allows_k8s_namespace(k8s_namespace) {
            let why = match &net.k8s_namespaces {
                None => "it has no k8s_namespaces option, so no pod may join it".to_string(),
                Some(list) => format!("it allows only k8s_namespaces={}", list.join(",")),
            };
            return Err(Error::new(format!(
                "network {name:?} does not allow pods of Kubernetes namespace {k8s_namespace:?}: {why} \
                 (the network's owner sets -o k8s_namespaces=NS[,NS...] or * at network create)"
            )));
        }
    }
    Ok(())
}

/// Delete an owner's links (best effort) and release its record and
/// leases. Returns whether a record was released. Errors are logged.
fn release_pod(store: &Store, owner: &Owner) -> bool {
    if let Err(e) = delete_interfaces(owner) {
        log::warn!("pod {}: delete interfaces: {e}", owner.id);
    }
    match store.lock().and_then(|l| l.release(&owner.id)) {
        Ok(r) => r.is_some(),
        Err(e) => {
            log::error!("pod {}: release: {e}", owner.id);
            false
        }
    }
}

fn pod_label(pod: &PodSandbox) -> String {
    format!("pod {}/{} ({})", pod.namespace, pod.name, short(&pod.id))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn describe(owner: &Owner) -> String {
    owner
        .endpoints
        .iter()
        .map(|e| {
            let addrs: Vec<String> = e.addresses.iter().map(|a| a.to_string()).collect();
            format!(
                "{} on {} {}",
                if e.interface.is_empty() { "-" } else { &e.interface },
                e.network,
                addrs.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether the plugin attached this pod less than `grace` before `now`
/// (records without the label are old).
pub fn attached_within(owner: &Owner, now: u64, grace: Duration) -> bool {
    owner
        .labels
        .get(LABEL_ATTACHED_AT)
        .and_then(|t| t.parse::<u64>().ok())
        .is_some_and(|t| now.saturating_sub(t) < grace.as_secs())
}

/// Time allowed to RunPodSandbox for a runtime request timeout: a margin
/// for the reply to travel, at least 250 ms.
pub fn budget_for(timeout: Duration) -> Duration {
    timeout
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(250))
}

/// `key = value` lines; blank lines and `#` comments skipped.
pub fn parse_config(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::new(format!(
                "plugin configuration line {}: {line:?} is not key = value",
                n + 1
            )));
        };
        let v = v.trim().trim_matches('"');
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

/// Run `work` on its own thread and wait at most `budget`. If it finishes
/// in time, its result; else `None`, and `undo` gets the result whenever
/// it comes.
pub fn with_deadline<T: Send + 'static>(
    budget: Duration,
    work: impl FnOnce() -> T + Send + 'static,
    undo: impl FnOnce(T) + Send + 'static,
) -> Option<T> {
    enum Slot<T> {
        Waiting,
        Done(T),
        Abandoned,
    }
    let shared = Arc::new((Mutex::new(Slot::Waiting), Condvar::new()));
    let theirs = shared.clone();
    let spawned = std::thread::Builder::new().name("ipvnet-attach".into()).spawn(move || {
        let r = work();
        let (m, cv) = &*theirs;
        let mut slot = m.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*slot, Slot::Abandoned) {
            drop(slot);
            undo(r);
        } else {
            *slot = Slot::Done(r);
            cv.notify_all();
        }
    });
    if spawned.is_err() {
        return None;
    }
    let (m, cv) = &*shared;
    let slot = m.lock().unwrap_or_else(|e| e.into_inner());
    let (mut slot, _) = cv
        .wait_timeout_while(slot, budget, |s| matches!(s, Slot::Waiting))
        .unwrap_or_else(|e| e.into_inner());
    match std::mem::replace(&mut *slot, Slot::Abandoned) {
        Slot::Done(r) => Some(r),
        _ => None,
    }
}

// ---- logging: a file or stderr, never stdout ----

struct Logger {
    out: Mutex<(LogTarget, Option<std::fs::File>)>,
    debug: std::sync::atomic::AtomicBool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Install the logger (once per process; later calls retarget it).
pub fn init_logging(target: LogTarget, debug: bool) {
    let logger = LOGGER.get_or_init(|| Logger {
        out: Mutex::new((LogTarget::Stderr, None)),
        debug: std::sync::atomic::AtomicBool::new(false),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    set_debug(debug);
    set_log_target(target);
}

fn set_debug(on: bool) {
    if let Some(l) = LOGGER.get() {
        l.debug.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

fn set_log_target(target: LogTarget) {
    let Some(l) = LOGGER.get() else { return };
    let file = match &target {
        LogTarget::Stderr => None,
        LogTarget::File(p) => {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(p)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!(
                        "ipvnet nri: cannot open log file {}: {e}; logging to stderr",
                        p.display()
                    );
                    *l.out.lock().unwrap_or_else(|e| e.into_inner()) = (LogTarget::Stderr, None);
                    return;
                }
            }
        }
    };
    *l.out.lock().unwrap_or_else(|e| e.into_inner()) = (target, file);
}

impl log::Log for Logger {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.level() <= log::Level::Info || self.debug.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        match &mut out.1 {
            Some(f) => {
                let line = format!(
                    "{} {:5} {}\n",
                    crate::store::now_rfc3339(),
                    record.level(),
                    record.args()
                );
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                if std::env::var_os("JOURNAL_STREAM").is_some() {
                    // journald adds the time; the level becomes a priority prefix.
                    let prio = match record.level() {
                        log::Level::Error => 3,
                        log::Level::Warn => 4,
                        log::Level::Info => 6,
                        _ => 7,
                    };
                    let _ = writeln!(std::io::stderr().lock(), "<{prio}>{}", record.args());
                } else {
                    let line = format!("{} {:5} {}", crate::store::now_rfc3339(), record.level(), record.args());
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines() {
        let c = parse_config("# comment\n\nstate_dir = /tmp/x\nlog_file=\"-\"\n debug = true \n").unwrap();
        assert_eq!(
            c,
            vec![
                ("state_dir".to_string(), "/tmp/x".to_string()),
                ("log_file".to_string(), "-".to_string()),
                ("debug".to_string(), "true".to_string())
            ]
        );
        assert!(parse_config("nonsense").unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn young_records_are_spared_by_synchronize() {
        let mut o = Owner {
            id: "p".into(),
            kind: OwnerKind::Pod,
            hostname: None,
            netns: None,
            labels: Default::default(),
            endpoints: vec![],
            created: String::new(),
        };
        let grace = Duration::from_secs(60);
        assert!(!attached_within(&o, 1000, grace), "no label: old");
        o.labels.insert(LABEL_ATTACHED_AT.into(), "990".into());
        assert!(attached_within(&o, 1000, grace));
        assert!(!attached_within(&o, 1060, grace));
        // A clock that went back: still young, kept.
        assert!(attached_within(&o, 900, grace));
        o.labels.insert(LABEL_ATTACHED_AT.into(), "garbage".into());
        assert!(!attached_within(&o, 1000, grace));
    }

    #[test]
    fn budget_leaves_a_margin() {
        assert_eq!(budget_for(Duration::from_secs(2)), Duration::from_millis(1500));
        assert_eq!(budget_for(Duration::from_millis(300)), Duration::from_millis(250));
    }

    #[test]
    fn log_target_choice() {
        assert_eq!(LogTarget::choose(Some(Path::new("-"))), LogTarget::Stderr);
        assert_eq!(
            LogTarget::choose(Some(Path::new("/tmp/l"))),
            LogTarget::File("/tmp/l".into())
        );
    }

    #[test]
    fn deadline_met_and_missed() {
        assert_eq!(
            with_deadline(Duration::from_secs(5), || 7, |_| panic!("not undone")),
            Some(7)
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let r = with_deadline(
            Duration::from_millis(20),
            || {
                std::thread::sleep(Duration::from_millis(200));
                9
            },
            move |late| tx.send(late).unwrap(),
        );
        assert_eq!(r, None);
        // The late result reaches undo.
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 9);
    }
}
