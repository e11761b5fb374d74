//! Attach/detach stress against a real kernel: the drivers behind
//! tests/guest/t-stress-*.sh (a shell loop is far too slow in the guest,
//! where every exec costs 0.1-0.3 s).
//!
//! A "container" is a forked child that unshares its network namespace and
//! waits (no runtime needed); the hook runs as `ipvnet hook createRuntime |
//! poststop` with the OCI state on stdin, as runc calls it, so the netns is
//! /proc/PID/ns/net. The tests are #[ignore]d: they need root, the guest
//! kernel and a state directory prepared by the calling script. Parameters
//! come from the environment:
//!
//!   IPVNET_STATE_DIR  the state directory (networks already created)
//!   STRESS_NETS       comma-separated networks; workers are spread over them
//!   STRESS_BUNDLE     a directory the driver may write bundles into
//!   churn:   STRESS_CYCLES (1000), STRESS_WORKERS (4), STRESS_KILL_PCT (30),
//!            STRESS_MAX_SECONDS (300: no new cycle after that, so that a slow
//!            or busy machine stays within the script's time; at least
//!            STRESS_MIN_CYCLES (200) must have run)
//!   writers: STRESS_WRITERS per network (4), STRESS_SECONDS (60)
//!
//! While the workers run, a checker looks into every live namespace: no
//! address is held by two live containers, and every address a live
//! namespace holds is leased to that container in the store (so a crash can
//! never leave an address in use that the store thinks is free).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipvnet::netlink::Netlink;
use ipvnet::store::Owner;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("IPVNET_STATE_DIR").expect("IPVNET_STATE_DIR must be set"))
}

fn ipvnet_bin() -> PathBuf {
    if let Ok(p) = std::env::var("IPVNET_BIN") {
        return p.into();
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join("ipvnet");
        if p.is_file() {
            return p;
        }
    }
    panic!("ipvnet is not on PATH");
}

/// xorshift64*, seeded per worker (and printed, for reproduction).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// STRESS_SEED, else the clock.
fn seed() -> u64 {
    env_or("STRESS_SEED", 0u64).max(1).wrapping_add(if std::env::var("STRESS_SEED").is_ok() {
        0
    } else {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

// ---------------------------------------------------------------------------
// Holders: one process per container, in its own network namespace
// ---------------------------------------------------------------------------

/// Pids of every holder not yet killed: killed on panic (see `Reaper`).
static HOLDERS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

struct Holder {
    pid: i32,
}

impl Holder {
    /// Fork a child that unshares its network namespace and sleeps; returns
    /// once the namespace exists (the hook must never see the host's).
    fn spawn() -> Holder {
        let mut fds = [0i32; 2];
        // SAFETY: plain syscalls; the child only makes async-signal-safe calls.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe2");
            let pid = libc::fork();
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                libc::close(fds[0]);
                let ok: u8 = u8::from(libc::unshare(libc::CLONE_NEWNET) == 0);
                libc::write(fds[1], (&ok as *const u8).cast(), 1);
                // Inherited descriptors (another thread's netlink socket or
                // namespace file) would keep other namespaces alive: close
                // every one.
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                if ok == 0 {
                    libc::_exit(1);
                }
                loop {
                    libc::pause();
                }
            }
            libc::close(fds[1]);
            let mut b = 0u8;
            let n = libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
            libc::close(fds[0]);
            if n != 1 || b != 1 {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                panic!("holder {pid} could not unshare its network namespace");
            }
            HOLDERS.lock().unwrap().push(pid);
            Holder { pid }
        }
    }

    fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// SIGKILL and reap: the container is gone (its namespace dies with it).
    fn kill(self) {
        // SAFETY: our own unreaped child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        HOLDERS.lock().unwrap().retain(|p| *p != self.pid);
    }
}

/// Kills every holder left when dropped (a panicking test must not leave
/// containers that keep leases alive).
struct Reaper;

impl Drop for Reaper {
    fn drop(&mut self) {
        let pids: Vec<i32> = std::mem::take(&mut *HOLDERS.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in pids {
            // SAFETY: our own children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Running the hook (and gc), possibly SIGKILLing it at a chosen instant
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok,
    Killed,
    Failed(String),
}

/// Run `ipvnet ARGS` with `stdin`; if `kill_after` is set and the process
/// still runs then, SIGKILL it. Returns the outcome and how long it ran.
fn run_ipvnet(args: &[&str], stdin: &[u8], kill_after: Option<Duration>) -> (Outcome, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(ipvnet_bin())
        .args(args)
        .env("IPVNET_STATE_DIR", state_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ipvnet");
    {
        let mut si = child.stdin.take().unwrap();
        // A child killed early closes the pipe: EPIPE is fine then.
        let _ = si.write_all(stdin);
    }
    if let Some(d) = kill_after {
        let left = d.saturating_sub(t0.elapsed());
        if !wait_exit_for(child.id() as i32, left) {
            // Not reaped yet, so the pid is still this child's.
            let _ = child.kill();
        }
    }
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let status = child.wait().expect("wait for ipvnet");
    let took = t0.elapsed();
    use std::os::unix::process::ExitStatusExt;
    let outcome = if status.success() {
        Outcome::Ok
    } else if status.signal() == Some(libc::SIGKILL) {
        Outcome::Killed
    } else {
        Outcome::Failed(format!("ipvnet {} exited with {status}: {}", args.join(" "), err.trim()))
    };
    (outcome, took)
}

/// Wait up to `d` for the (unreaped) child `pid` to exit, without reaping
/// it; true if it exited.
fn wait_exit_for(pid: i32, d: Duration) -> bool {
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if fd < 0 {
            // No pidfd: sleep the whole delay.
            std::thread::sleep(d);
            return false;
        }
        let ts = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let r = libc::ppoll(&mut p, 1, &ts, std::ptr::null());
        libc::close(fd);
        r > 0
    }
}

fn oci_state(id: &str, pid: Option<i32>, bundle: &Path) -> Vec<u8> {
    let mut v = serde_json::json!({
        "ociVersion": "1.0.2", "id": id, "status": if pid.is_some() { "creating" } else { "stopped" },
        "bundle": bundle,
    });
    if let Some(p) = pid {
        v["pid"] = p.into();
    }
    serde_json::to_vec(&v).unwrap()
}

/// A bundle whose config.json names the network (the hook reads the
/// annotations from it, as with runc's state which carries none).
fn make_bundle(dir: &Path, network: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sleep", "3600"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "annotations": {"ipvnet.network": network},
        "linux": {"namespaces": [{"type": "network"}]},
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

// ---------------------------------------------------------------------------
// Looking: the store and the namespaces
// ---------------------------------------------------------------------------

fn record(id: &str) -> Option<Owner> {
    let p = state_dir().join("endpoints").join(format!("{id}.json"));
    match std::fs::read(&p) {
        Ok(b) => Some(serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{} does not load: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("read {}: {e}", p.display()),
    }
}

/// The owner named in the lease file of `ip` on `network`, if any.
fn lease_holder(network: &str, ip: IpAddr) -> Option<String> {
    let p = state_dir().join("ipam").join(network).join("leases").join(ip.to_string());
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn leases(network: &str) -> Vec<(String, String)> {
    let dir = state_dir().join("ipam").join(network).join("leases");
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let holder = std::fs::read_to_string(e.path()).unwrap_or_default().trim().to_string();
            out.push((name, holder));
        }
    }
    out.sort();
    out
}

/// What a namespace holds: link name, kind, up, and its global addresses.
#[derive(Debug, Clone)]
struct NsLink {
    name: String,
    kind: Option<String>,
    up: bool,
    addrs: Vec<IpAddr>,
}

fn ns_links(ns_path: &Path) -> Vec<NsLink> {
    let ns = ipvnet::netns::open(ns_path).unwrap_or_else(|e| panic!("open {}: {e}", ns_path.display()));
    let mut nl = Netlink::open_in(ns.as_fd()).expect("netlink in the namespace");
    let mut out = Vec::new();
    for l in nl.links().expect("list links") {
        if l.name == "lo" {
            continue;
        }
        let addrs = nl
            .addresses(l.index)
            .expect("list addresses")
            .into_iter()
            .map(|a| a.ip())
            .filter(|a| !matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80))
            .collect();
        out.push(NsLink { name: l.name, kind: l.kind, up: l.up, addrs });
    }
    out
}

/// Links of the host namespace a crash could leave behind: temporary
/// `ipvt*` names and any ipvlan link.
fn stray_host_links() -> Vec<String> {
    let mut nl = Netlink::open().expect("netlink");
    nl.links()
        .expect("list links")
        .into_iter()
        .filter(|l| l.name.starts_with("ipvt") || l.kind.as_deref() == Some("ipvlan"))
        .map(|l| l.name)
        .collect()
}

/// A container the checker watches.
struct Live {
    pid: i32,
    network: String,
    /// Some: a complete attachment with exactly these addresses. None: a
    /// half-made one (its createRuntime was killed): whatever it holds must
    /// be leased to it.
    addrs: Option<Vec<IpAddr>>,
}

#[derive(Default)]
struct Shared {
    live: Mutex<BTreeMap<String, Live>>,
    problems: Mutex<Vec<String>>,
    stop: AtomicBool,
    checks: AtomicU64,
    /// Cycles done, and when the first began (for progress lines).
    done: AtomicU64,
    started: std::sync::OnceLock<Instant>,
}

impl Shared {
    /// Count a finished cycle; a progress line every 100.
    fn cycle_done(&self) {
        let t0 = *self.started.get_or_init(Instant::now);
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 100 == 0 {
            println!("progress: {n} cycles begun after {:.1}s", t0.elapsed().as_secs_f64());
        }
    }

    fn problem(&self, p: String) {
        eprintln!("PROBLEM: {p}");
        self.problems.lock().unwrap().push(p);
    }

    /// Check every live namespace against the store. Each container is
    /// checked under the live map's lock (so it is not killed or released
    /// meanwhile), one at a time (so workers are not held up long).
    fn check_all(&self) {
        let ids: Vec<String> = self.live.lock().unwrap().keys().cloned().collect();
        let mut held_by: HashMap<IpAddr, Vec<String>> = HashMap::new();
        let mut problems = Vec::new();
        for id in ids {
            let live = self.live.lock().unwrap();
            let Some(l) = live.get(&id) else { continue };
            let links = ns_links(&PathBuf::from(format!("/proc/{}/ns/net", l.pid)));
            let held: Vec<IpAddr> = links.iter().flat_map(|k| k.addrs.iter().copied()).collect();
            for a in &held {
                held_by.entry(*a).or_default().push(id.clone());
                match lease_holder(&l.network, *a) {
                    Some(h) if h == id => {}
                    h => problems.push(format!("live container {id} holds {a} but its lease names {h:?}")),
                }
            }
            if let Some(want) = &l.addrs {
                let mut a = held.clone();
                a.sort();
                let mut w = want.clone();
                w.sort();
                if a != w {
                    problems.push(format!("live container {id} holds {a:?}, attached with {w:?}"));
                }
                if record(&id).is_none() {
                    problems.push(format!("live container {id} lost its endpoint record"));
                }
            }
        }
        // Two holders of one address count only if both still live: then
        // each held it throughout (a live container's addresses never change).
        let live = self.live.lock().unwrap();
        for (a, ids) in held_by {
            let still: Vec<&String> = ids.iter().filter(|i| live.contains_key(*i)).collect();
            if still.len() > 1 {
                problems.push(format!("address {a} is held by several live containers: {still:?}"));
            }
        }
        drop(live);
        self.checks.fetch_add(1, Ordering::Relaxed);
        for p in problems {
            self.problem(p);
        }
    }
}

/// After a createRuntime that succeeded: the record, the leases and the
/// namespace agree (eth0, up, the record's addresses). Returns the addresses.
fn verify_attached(sh: &Shared, id: &str, network: &str, h: &Holder) -> Option<Vec<IpAddr>> {
    let Some(rec) = record(id) else {
        sh.problem(format!("{id}: createRuntime succeeded but there is no record"));
        return None;
    };
    let want: Vec<IpAddr> = rec.endpoints.iter().flat_map(|e| e.addresses.iter().map(|a| a.ip())).collect();
    if rec.endpoints.len() != 1 || rec.endpoints[0].network != network || want.is_empty() {
        sh.problem(format!("{id}: unexpected record {rec:?}"));
        return None;
    }
    for a in &want {
        if lease_holder(network, *a).as_deref() != Some(id) {
            sh.problem(format!("{id}: address {a} of the record is leased to {:?}", lease_holder(network, *a)));
        }
    }
    let links = ns_links(&h.netns());
    match links.as_slice() {
        [l] if l.name == "eth0" && l.kind.as_deref() == Some("ipvlan") && l.up => {
            let mut got = l.addrs.clone();
            got.sort();
            let mut w = want.clone();
            w.sort();
            if got != w {
                sh.problem(format!("{id}: eth0 holds {got:?}, the record says {w:?}"));
            }
        }
        other => sh.problem(format!("{id}: after createRuntime the namespace holds {other:?}")),
    }
    Some(want)
}

/// What a killed createRuntime left in a still-live namespace.
fn classify_half(sh: &Shared, id: &str, network: &str, h: &Holder) -> &'static str {
    let rec = record(id).is_some();
    let links = ns_links(&h.netns());
    for l in &links {
        for a in &l.addrs {
            if lease_holder(network, *a).as_deref() != Some(id) {
                sh.problem(format!(
                    "{id}: killed mid-attach, its namespace holds {a} on {} but the lease names {:?}",
                    l.name,
                    lease_holder(network, *a)
                ));
            }
        }
        if !rec {
            sh.problem(format!("{id}: killed mid-attach, no record but a link {l:?} in its namespace"));
        }
    }
    match (rec, links.as_slice()) {
        (false, []) => "nothing",
        (true, []) => "record, no link",
        (true, [l]) if l.name.starts_with("ipvt") => "temporary link",
        (true, [l]) if l.addrs.is_empty() => "eth0 without address",
        (true, [l]) if !l.up => "eth0 down with address",
        (true, [_]) => "eth0 up (routes maybe missing)",
        _ => "several links",
    }
}

/// Median of durations (zero for none).
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn nets() -> Vec<String> {
    let s = std::env::var("STRESS_NETS").expect("STRESS_NETS must be set");
    s.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect()
}

fn bundle_root() -> PathBuf {
    PathBuf::from(std::env::var("STRESS_BUNDLE").unwrap_or_else(|_| "/tmp/stress-bundles".into()))
}

fn spawn_checker(sh: &Arc<Shared>, every: Duration) -> std::thread::JoinHandle<()> {
    let sh = sh.clone();
    std::thread::spawn(move || {
        while !sh.stop.load(Ordering::Relaxed) {
            sh.check_all();
            let t = Instant::now();
            while t.elapsed() < every && !sh.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
}

fn fail_on_problems(sh: &Shared) {
    let p = sh.problems.lock().unwrap();
    if !p.is_empty() {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for x in p.iter() {
            *counts.entry(x.as_str()).or_default() += 1;
        }
        panic!("{} problems:\n{}", p.len(), p.iter().take(40).cloned().collect::<Vec<_>>().join("\n"));
    }
}

// ---------------------------------------------------------------------------
// Churn with crashes
// ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Stats {
    cycles: u64,
    attached: u64,
    create_killed: u64,
    create_failed: u64,
    poststop_ok: u64,
    poststop_killed: u64,
    poststop_retried: u64,
    left_to_gc: u64,
    orphans: u64,
    half: BTreeMap<&'static str, u64>,
    create_times: Vec<Duration>,
    poststop_times: Vec<Duration>,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.cycles += o.cycles;
        self.attached += o.attached;
        self.create_killed += o.create_killed;
        self.create_failed += o.create_failed;
        self.poststop_ok += o.poststop_ok;
        self.poststop_killed += o.poststop_killed;
        self.poststop_retried += o.poststop_retried;
        self.left_to_gc += o.left_to_gc;
        self.orphans += o.orphans;
        for (k, v) in o.half {
            *self.half.entry(k).or_default() += v;
        }
        self.create_times.extend(o.create_times);
        self.poststop_times.extend(o.poststop_times);
    }
}

struct ChurnCfg {
    network: String,
    /// No cycle begins after this.
    deadline: Instant,
    worker: usize,
    cycles: u64,
    kill_pct: u64,
    /// Kill instants are drawn in 0..=these (about 1.3x the median run).
    create_window: Duration,
    poststop_window: Duration,
    seed: u64,
}

/// One worker: `cycles` containers, each attached, checked, stopped and
/// detached, with SIGKILLs at random instants of the hooks and runtime
/// "crashes" (no poststop, or the container left running).
fn churn_worker(sh: &Shared, cfg: &ChurnCfg, orphans: &Mutex<Vec<Holder>>) -> Stats {
    let mut rng = Rng::new(cfg.seed);
    let mut st = Stats::default();
    let bundle = bundle_root().join(format!("w{}", cfg.worker));
    make_bundle(&bundle, &cfg.network);
    let kill_at = |rng: &mut Rng, window: Duration, pct: u64| -> Option<Duration> {
        rng.pct(pct).then(|| Duration::from_micros(rng.below(window.as_micros() as u64 + 1)))
    };
    for i in 0..cfg.cycles {
        if sh.stop.load(Ordering::Relaxed) || Instant::now() >= cfg.deadline {
            break;
        }
        st.cycles += 1;
        sh.cycle_done();
        let id = format!("s{}c{i}", cfg.worker);
        let h = Holder::spawn();
        let (out, took) =
            run_ipvnet(&["hook", "createRuntime"], &oci_state(&id, Some(h.pid), &bundle), kill_at(&mut rng, cfg.create_window, cfg.kill_pct));
        let mut run_poststop = true;
        match out {
            Outcome::Ok => {
                st.attached += 1;
                st.create_times.push(took);
                let addrs = verify_attached(sh, &id, &cfg.network, &h);
                {
                    let mut live = sh.live.lock().unwrap();
                    live.insert(id.clone(), Live { pid: h.pid, network: cfg.network.clone(), addrs });
                }
                match rng.below(100) {
                    // The runtime and the container go on: never stopped
                    // until the end (gc must keep it meanwhile).
                    0..=2 => {
                        st.orphans += 1;
                        orphans.lock().unwrap().push(h);
                        continue;
                    }
                    // The container dies, the runtime never runs poststop.
                    3..=7 => run_poststop = false,
                    _ => {}
                }
                sh.live.lock().unwrap().remove(&id);
                h.kill();
            }
            Outcome::Killed => {
                st.create_killed += 1;
                let what = classify_half(sh, &id, &cfg.network, &h);
                *st.half.entry(what).or_default() += 1;
                match rng.below(100) {
                    // The runtime died too and the container stays:
                    // whatever it holds must stay leased to it.
                    0..=14 => {
                        sh.live.lock().unwrap().insert(id.clone(), Live { pid: h.pid, network: cfg.network.clone(), addrs: None });
                        st.orphans += 1;
                        orphans.lock().unwrap().push(h);
                        continue;
                    }
                    // crun: no poststop after a failed createRuntime.
                    15..=39 => run_poststop = false,
                    // runc: the container is killed, then poststop.
                    _ => {}
                }
                h.kill();
            }
            Outcome::Failed(e) => {
                st.create_failed += 1;
                sh.problem(format!("{id}: createRuntime failed by itself: {e}"));
                h.kill();
            }
        }
        if !run_poststop {
            st.left_to_gc += 1;
            continue;
        }
        let state = oci_state(&id, None, &bundle);
        let (out, took) = run_ipvnet(&["hook", "poststop"], &state, kill_at(&mut rng, cfg.poststop_window, cfg.kill_pct));
        match out {
            Outcome::Ok => {
                st.poststop_ok += 1;
                st.poststop_times.push(took);
                if let Some(r) = record(&id) {
                    sh.problem(format!("{id}: poststop succeeded but the record is still there: {r:?}"));
                }
            }
            Outcome::Killed => {
                st.poststop_killed += 1;
                if rng.pct(50) {
                    // The runtime retries the delete: poststop again.
                    st.poststop_retried += 1;
                    match run_ipvnet(&["hook", "poststop"], &state, None).0 {
                        Outcome::Ok => {
                            if record(&id).is_some() {
                                sh.problem(format!("{id}: poststop after a killed one left the record"));
                            }
                        }
                        o => sh.problem(format!("{id}: poststop after a killed one: {o:?}")),
                    }
                } else {
                    st.left_to_gc += 1;
                }
            }
            Outcome::Failed(e) => sh.problem(format!("{id}: poststop failed by itself: {e}")),
        }
    }
    st
}

/// gc now and then while the workers run, itself SIGKILLed now and then.
fn spawn_gc(sh: &Arc<Shared>, every: Duration, kill_pct: u64, seed: u64) -> std::thread::JoinHandle<(u64, u64)> {
    let sh = sh.clone();
    std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let (mut runs, mut killed) = (0, 0);
        while !sh.stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            while t.elapsed() < every && !sh.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let k = rng.pct(kill_pct).then(|| Duration::from_micros(rng.below(300_000)));
            match run_ipvnet(&["gc"], b"", k).0 {
                Outcome::Ok => runs += 1,
                Outcome::Killed => killed += 1,
                Outcome::Failed(e) => sh.problem(format!("gc failed: {e}")),
            }
        }
        (runs, killed)
    })
}

#[test]
#[ignore = "needs root and the guest kernel: run by tests/guest/t-stress-churn.sh"]
fn churn() {
    let _reaper = Reaper;
    let nets = nets();
    let cycles: u64 = env_or("STRESS_CYCLES", 1000);
    let workers: usize = env_or("STRESS_WORKERS", 4);
    let kill_pct: u64 = env_or("STRESS_KILL_PCT", 30);
    let max_secs: u64 = env_or("STRESS_MAX_SECONDS", 300);
    let min_cycles: u64 = env_or("STRESS_MIN_CYCLES", 200u64).min(cycles);
    let seed = seed();
    println!(
        "churn: {cycles} cycles (at least {min_cycles}, none begun after {max_secs}s), {workers} workers on {nets:?}, \
         kill {kill_pct}%, seed {seed}"
    );
    let deadline = Instant::now() + Duration::from_secs(max_secs);
    let sh = Arc::new(Shared::default());
    let orphans: Arc<Mutex<Vec<Holder>>> = Arc::default();
    let t0 = Instant::now();

    // Calibrate: a few cycles per worker without kills, all in parallel
    // (the load of the real run), to time each hook.
    let per = |total: u64, w: usize| total / workers as u64 + u64::from((w as u64) < total % workers as u64);
    let calib = 3u64;
    let run_workers = |sh: &Arc<Shared>, cycles: u64, kill_pct: u64, cw: Duration, pw: Duration, salt: u64| -> Stats {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let cfg = ChurnCfg {
                    network: nets[w % nets.len()].clone(),
                    deadline,
                    worker: w + (salt as usize) * 100,
                    cycles: per(cycles, w),
                    kill_pct,
                    create_window: cw,
                    poststop_window: pw,
                    seed: seed.wrapping_add((w as u64 + 1) * 7919 + salt),
                };
                let (sh, orphans) = (sh.clone(), orphans.clone());
                std::thread::spawn(move || churn_worker(&sh, &cfg, &orphans))
            })
            .collect();
        let mut total = Stats::default();
        for h in handles {
            total.add(h.join().expect("worker panicked"));
        }
        total
    };
    let cal = run_workers(&sh, calib * workers as u64, 0, Duration::ZERO, Duration::ZERO, 0);
    fail_on_problems(&sh);
    let (mc, mp) = (median(cal.create_times.clone()), median(cal.poststop_times.clone()));
    let (cw, pw) = (mc * 13 / 10, mp * 13 / 10);
    println!("calibration: createRuntime {mc:?}, poststop {mp:?} (median); kills within {cw:?} / {pw:?}");

    let checker = spawn_checker(&sh, Duration::from_millis(1000));
    let gc = spawn_gc(&sh, Duration::from_millis(1500), 30, seed ^ 0x9c);
    let rest = cycles.saturating_sub(cal.cycles);
    let mut st = run_workers(&sh, rest, kill_pct, cw, pw, 1);
    sh.stop.store(true, Ordering::Relaxed);
    checker.join().expect("checker panicked");
    let (gc_runs, gc_killed) = gc.join().expect("gc thread panicked");
    st.add(cal);
    let took = t0.elapsed();
    println!(
        "churn: {} cycles in {:.1}s ({:.1}/s): {} attached, {} createRuntime killed, {} failed; \
         poststop {} ok, {} killed ({} retried); {} left to gc; {} orphans; gc {} runs, {} killed; {} checks",
        st.cycles,
        took.as_secs_f64(),
        st.cycles as f64 / took.as_secs_f64(),
        st.attached,
        st.create_killed,
        st.create_failed,
        st.poststop_ok,
        st.poststop_killed,
        st.poststop_retried,
        st.left_to_gc,
        st.orphans,
        gc_runs,
        gc_killed,
        sh.checks.load(Ordering::Relaxed)
    );
    println!("what killed createRuntime hooks left: {:?}", st.half);
    println!(
        "hook times (median): createRuntime {:?}, poststop {:?}",
        median(st.create_times.clone()),
        median(st.poststop_times.clone())
    );

    // Every container still running: gc must keep what each holds.
    sh.check_all();
    match run_ipvnet(&["gc"], b"", None).0 {
        Outcome::Ok => {}
        o => sh.problem(format!("gc with live orphans: {o:?}")),
    }
    sh.check_all();
    let live_ids: Vec<String> = sh.live.lock().unwrap().keys().cloned().collect();
    println!("{} containers still running at the end: {live_ids:?}", live_ids.len());
    let strays = stray_host_links();
    if !strays.is_empty() {
        sh.problem(format!("links left in the host namespace: {strays:?}"));
    }
    // Now they stop, without poststop: the script runs gc and checks the
    // store empties.
    sh.live.lock().unwrap().clear();
    for h in std::mem::take(&mut *orphans.lock().unwrap()) {
        h.kill();
    }
    fail_on_problems(&sh);
    if st.cycles < cycles {
        println!("NOTE: only {} of {cycles} cycles began within {max_secs}s (a slow or busy machine)", st.cycles);
    }
    assert!(st.cycles >= min_cycles, "only {} cycles ran (want at least {min_cycles})", st.cycles);
    assert_eq!(st.create_failed, 0);
    // The test means something only if kills hit both hooks often, and
    // some landed after the reservation (a record was left).
    let min = (st.cycles * kill_pct / 100 / 6).max(1);
    assert!(st.create_killed >= min, "only {} createRuntime hooks were killed (want {min})", st.create_killed);
    assert!(st.poststop_killed >= min / 2, "only {} poststop hooks were killed", st.poststop_killed);
    let after_reserve: u64 = st.half.iter().filter(|(k, _)| **k != "nothing").map(|(_, v)| v).sum();
    assert!(after_reserve >= min / 4, "only {after_reserve} createRuntime kills came after the reservation");
    println!("churn OK");
}

// ---------------------------------------------------------------------------
// Writers on two networks at once
// ---------------------------------------------------------------------------

/// Attach/detach for `secs` on `network`, keeping at most two containers.
fn writer(sh: &Shared, network: &str, w: usize, secs: Duration) -> (u64, Vec<Duration>) {
    let bundle = bundle_root().join(format!("{network}-{w}"));
    make_bundle(&bundle, network);
    let t0 = Instant::now();
    let mut held: std::collections::VecDeque<(String, Holder)> = Default::default();
    let mut n = 0u64;
    let mut times = Vec::new();
    let detach = |sh: &Shared, id: String, h: Holder| {
        sh.live.lock().unwrap().remove(&id);
        h.kill();
        match run_ipvnet(&["hook", "poststop"], &oci_state(&id, None, &bundle), None).0 {
            Outcome::Ok => {
                if record(&id).is_some() {
                    sh.problem(format!("{id}: record left after poststop"));
                }
            }
            o => sh.problem(format!("{id}: poststop: {o:?}")),
        }
    };
    while t0.elapsed() < secs && !sh.stop.load(Ordering::Relaxed) {
        let id = format!("{network}-w{w}-{n}");
        n += 1;
        sh.cycle_done();
        let h = Holder::spawn();
        let (out, took) = run_ipvnet(&["hook", "createRuntime"], &oci_state(&id, Some(h.pid), &bundle), None);
        match out {
            Outcome::Ok => {
                times.push(took);
                let addrs = verify_attached(sh, &id, network, &h);
                sh.live.lock().unwrap().insert(id.clone(), Live { pid: h.pid, network: network.into(), addrs });
                held.push_back((id, h));
            }
            o => {
                sh.problem(format!("{id}: createRuntime: {o:?}"));
                h.kill();
            }
        }
        if held.len() > 1 {
            let (id, h) = held.pop_front().unwrap();
            detach(sh, id, h);
        }
    }
    while let Some((id, h)) = held.pop_front() {
        detach(sh, id, h);
    }
    (n, times)
}

#[test]
#[ignore = "needs root and the guest kernel: run by tests/guest/t-stress-writers.sh"]
fn writers() {
    let _reaper = Reaper;
    let nets = nets();
    let per_net: usize = env_or("STRESS_WRITERS", 4);
    let secs = Duration::from_secs(env_or("STRESS_SECONDS", 60));
    println!("writers: {per_net} per network on {nets:?} for {secs:?}");
    let sh = Arc::new(Shared::default());
    let checker = spawn_checker(&sh, Duration::from_millis(500));
    let t0 = Instant::now();
    let handles: Vec<_> = nets
        .iter()
        .flat_map(|n| (0..per_net).map(move |w| (n.clone(), w)))
        .map(|(n, w)| {
            let sh = sh.clone();
            std::thread::spawn(move || (n.clone(), writer(&sh, &n, w, secs)))
        })
        .collect();
    let mut per: BTreeMap<String, u64> = BTreeMap::new();
    let mut times = Vec::new();
    for h in handles {
        let (n, (c, t)) = h.join().expect("writer panicked");
        *per.entry(n).or_default() += c;
        times.extend(t);
    }
    sh.stop.store(true, Ordering::Relaxed);
    checker.join().expect("checker panicked");
    println!(
        "writers: {:?} attach/detach cycles in {:.1}s; createRuntime median {:?}; {} checks",
        per,
        t0.elapsed().as_secs_f64(),
        median(times),
        sh.checks.load(Ordering::Relaxed)
    );
    for n in &nets {
        let l = leases(n);
        if !l.is_empty() {
            sh.problem(format!("network {n}: leases left after every container was detached: {l:?}"));
        }
    }
    let strays = stray_host_links();
    if !strays.is_empty() {
        sh.problem(format!("links left in the host namespace: {strays:?}"));
    }
    fail_on_problems(&sh);
    for (n, c) in &per {
        assert!(*c >= 10, "network {n}: only {c} cycles ran");
    }
    println!("writers OK");
}
