//! ipvnet-bench: ipvnet side by side with CNI's reference `ipvlan` plugin
//! and `host-local` IPAM, run as root inside the test guest.
//!
//!     ipvnet-bench run --out DIR [--n 200] [--alloc-reps 20] [--conc 64]
//!                      [--conc-rounds 3] [--runc-reps 10] [--nri-events 50]
//!     ipvnet-bench render DIR/results.json > BENCHMARKS.md
//!
//! `run` writes DIR/results.json (every sample); `render` turns it into the
//! Markdown report. Each timed operation is one child process: the clock
//! runs from just before spawn to the return of wait4(2), whose rusage gives
//! the child's peak RSS (ru_maxrss: the largest of the child and the
//! descendants it waited for). The two tools alternate (A B A B ...) in the
//! same guest boot, on the same parent link, with named network namespaces
//! of the same kind, and their state on the same filesystem.

#[path = "../../../nri/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use ipvnet::ipam::Pool;
use ipvnet::network::{plan, CreateRequest};
use ipvnet::store::{now_rfc3339, Owner, OwnerKind, Store, Want};

const PARENT: &str = "bpar0";
const NET: &str = "benchnet"; // ipvnet's network for attaches
const NET_SUBNET: &str = "10.30.0.0/16";
const CNI_NET: &str = "cnibench";
const CNI_SUBNET: &str = "10.31.0.0/16";
const BASE: &str = "/tmp/bench"; // both stores live here (one filesystem)
const CNI_BIN: &str = "/run/bench-cni"; // tmpfs copy of the plugins, as ipvnet's binary is
const LEVELS: [u32; 3] = [1, 50, 99];

type R<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("render") if args.len() == 2 => render(Path::new(&args[1])),
        _ => Err("usage: ipvnet-bench run --out DIR [--n N] ... | ipvnet-bench render RESULTS.json".into()),
    };
    if let Err(e) = res {
        eprintln!("ipvnet-bench: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------ processes --

struct Ran {
    us: f64,
    maxrss_kb: i64,
    ok: bool,
    out: String,
    err: String,
}

/// Spawn, feed stdin, wait4: wall time and peak RSS of one child.
fn spawn(cmd: &mut Command) -> R<Child> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))
}

fn finish(mut child: Child, t0: Instant) -> Ran {
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is written by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let us = t0.elapsed().as_secs_f64() * 1e6;
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let st = std::process::ExitStatus::from_raw(status);
    Ran { us, maxrss_kb: ru.ru_maxrss, ok: st.success(), out, err }
}

fn timed(cmd: &mut Command, stdin: &[u8]) -> R<Ran> {
    let t0 = Instant::now();
    let mut child = spawn(cmd)?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    Ok(finish(child, t0))
}

/// An untimed helper command that must succeed.
fn sh(prog: &str, args: &[&str]) -> R<String> {
    let out = Command::new(prog).args(args).output().map_err(|e| format!("{prog}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ipvnet_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    me.parent().unwrap().join("ipvnet")
}

fn ipvnet_state() -> PathBuf {
    PathBuf::from(BASE).join("ipvnet")
}

fn hook_cmd(stage: &str) -> Command {
    let mut c = Command::new(ipvnet_bin());
    c.args(["hook", stage]).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("IPVNET_STATE_DIR", ipvnet_state());
    if let Ok(v) = std::env::var("IPVNET_HOOK_TIMINGS") {
        c.env("IPVNET_HOOK_TIMINGS", v);
    }
    c
}

fn ipvnet_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(ipvnet_bin());
    c.args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("IPVNET_STATE_DIR", ipvnet_state());
    c
}

fn cni_cmd(plugin: &str, command: &str, id: &str, netns: &Path) -> Command {
    let mut c = Command::new(Path::new(CNI_BIN).join(plugin));
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_BIN);
    c
}

fn cni_attach_conf() -> String {
    json!({
        "cniVersion": "1.0.0", "name": CNI_NET, "type": "ipvlan", "master": PARENT, "mode": "l2",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": CNI_SUBNET}]], "dataDir": format!("{BASE}/cni")}
    })
    .to_string()
}

fn cni_ipam_conf(name: &str, subnet: &str) -> String {
    json!({
        "cniVersion": "1.0.0", "name": name,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": format!("{BASE}/cni")}
    })
    .to_string()
}

/// The first IPv4 address of a CNI result.
fn cni_ip(out: &str) -> Option<String> {
    let v: Value = serde_json::from_str(out).ok()?;
    let a = v["ips"][0]["address"].as_str()?;
    Some(a.split('/').next()?.to_string())
}

// ------------------------------------------------------------- netns --

fn netns_add(name: &str) -> R<PathBuf> {
    let path = PathBuf::from(format!("/run/netns/{name}"));
    fs::create_dir_all("/run/netns").map_err(|e| e.to_string())?;
    fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let p = path.clone();
    let r = std::thread::spawn(move || -> R<()> {
        // SAFETY: unshare/mount on this thread only; the thread then exits.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(format!("unshare: {}", std::io::Error::last_os_error()));
            }
            let src = CString::new("/proc/thread-self/ns/net").unwrap();
            let dst = CString::new(p.to_str().unwrap()).unwrap();
            if libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0 {
                return Err(format!("bind {}: {}", p.display(), std::io::Error::last_os_error()));
            }
        }
        Ok(())
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())?;
    r.map(|()| path)
}

fn netns_del(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: umount2 of our own bind mount.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    let _ = fs::remove_file(path);
}

/// IPv4 addresses of eth0 in every named netns: one `ip -all netns exec`.
fn netns_addrs() -> R<BTreeMap<String, Vec<String>>> {
    let out = sh("ip", &["-all", "netns", "exec", "ip", "-o", "-4", "addr", "show", "dev", "eth0"]).unwrap_or_else(|e| e);
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur = String::new();
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("netns: ") {
            cur = n.trim().to_string();
            m.entry(cur.clone()).or_default();
        } else if let Some(i) = line.find(" inet ") {
            let a = line[i + 6..].split('/').next().unwrap_or("").to_string();
            m.entry(cur.clone()).or_default().push(a);
        }
    }
    Ok(m)
}

fn ns_addr(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    sh("ip", &["-n", name, "-o", "-4", "addr", "show", "dev", "eth0"])
        .ok()
        .and_then(|o| o.find(" inet ").map(|i| o[i + 6..].split('/').next().unwrap_or("").to_string()))
        .unwrap_or_default()
}

// ----------------------------------------------------------- the hook --

/// A bundle whose config.json names the netns, and the state on stdin.
fn hook_bundle(id: &str, netns: &Path) -> R<Vec<u8>> {
    let dir = PathBuf::from(BASE).join("bundles").join(id);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ann = json!({"ipvnet.network": NET});
    let cfg = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["true"], "cwd": "/"},
        "annotations": ann,
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": netns}]}
    });
    fs::write(dir.join("config.json"), cfg.to_string()).map_err(|e| e.to_string())?;
    Ok(json!({"ociVersion": "1.0.2", "id": id, "status": "creating", "bundle": dir, "annotations": ann})
        .to_string()
        .into_bytes())
}

fn poststop_state(id: &str) -> Vec<u8> {
    json!({"ociVersion": "1.0.2", "id": id, "status": "stopped", "bundle": format!("{BASE}/bundles/{id}")})
        .to_string()
        .into_bytes()
}

fn lease_of(store: &Store, net: &str, owner: &str) -> Option<String> {
    store.leases(net).ok()?.into_iter().find(|(_, o)| o == owner).map(|(ip, _)| ip.to_string())
}

fn must(r: &Ran, what: &str) -> R<()> {
    if r.ok {
        Ok(())
    } else {
        Err(format!("{what} failed: {}{}", r.err, r.out))
    }
}

fn samples(v: &[Ran]) -> Value {
    json!({
        "us": v.iter().map(|r| r.us).collect::<Vec<_>>(),
        "maxrss_kb": v.iter().map(|r| r.maxrss_kb).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------ run --

struct Opts {
    out: PathBuf,
    n: usize,
    alloc_reps: usize,
    inproc_reps: usize,
    conc: usize,
    conc_rounds: usize,
    runc_reps: usize,
    nri_events: usize,
    profile_reps: usize,
    only: Option<BTreeSet<String>>,
}

fn parse_opts(args: &[String]) -> R<Opts> {
    let mut o = Opts {
        out: PathBuf::from("."),
        n: 200,
        alloc_reps: 10,
        inproc_reps: 300,
        conc: 64,
        conc_rounds: 2,
        runc_reps: 8,
        nri_events: 30,
        profile_reps: 20,
        only: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
        match a.as_str() {
            "--out" => o.out = PathBuf::from(v()?),
            "--n" => o.n = num(v()?)?,
            "--alloc-reps" => o.alloc_reps = num(v()?)?,
            "--inproc-reps" => o.inproc_reps = num(v()?)?,
            "--conc" => o.conc = num(v()?)?,
            "--conc-rounds" => o.conc_rounds = num(v()?)?,
            "--runc-reps" => o.runc_reps = num(v()?)?,
            "--nri-events" => o.nri_events = num(v()?)?,
            "--profile-reps" => o.profile_reps = num(v()?)?,
            "--only" => o.only = Some(v()?.split(',').map(String::from).collect()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn log(msg: &str) {
    eprintln!("[{:>7.1}s] {msg}", START.with(|s| s.elapsed().as_secs_f64()));
}

thread_local! {
    static START: Instant = Instant::now();
}

fn run(args: &[String]) -> R<()> {
    let o = parse_opts(args)?;
    log("start");
    fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(BASE);
    fs::create_dir_all(format!("{BASE}/cni")).map_err(|e| e.to_string())?;
    // The CNI plugins from tmpfs, like ipvnet's binary (exec from the 9p root is slow).
    fs::create_dir_all(CNI_BIN).map_err(|e| e.to_string())?;
    for p in ["ipvlan", "host-local"] {
        fs::copy(Path::new("/usr/lib/cni").join(p), Path::new(CNI_BIN).join(p))
            .map_err(|e| format!("copy /usr/lib/cni/{p} (install containernetworking-plugins): {e}"))?;
    }
    // The parent both use; without dummy/ipvlan support (not in the
    // guest) only the allocation section can run.
    let _ = sh("ip", &["link", "del", PARENT]);
    let parent = sh("ip", &["link", "add", PARENT, "type", "dummy"]).and_then(|_| sh("ip", &["link", "set", PARENT, "up"])).and_then(|_| {
        let mut c = ipvnet_cmd(&["network", "create", "-d", "ipvlan", "--subnet", NET_SUBNET, "-o"]);
        c.arg(format!("parent={PARENT}")).args(["-o", "ipvlan_mode=l2", "-o", "k8s_namespaces=*", NET]);
        must(&timed(&mut c, b"")?, "ipvnet network create")
    });
    if let Err(e) = parent {
        log(&format!("no parent link: {e}"));
    }

    let mut res = serde_json::Map::new();
    res.insert("env".into(), environment());
    let want = |s: &str| o.only.as_ref().map_or(true, |w| w.contains(s));
    let sections: Vec<(&str, fn(&Opts) -> R<Value>)> = vec![
        ("attach", bench_attach),
        ("profile", bench_profile),
        ("nri", bench_nri),
        ("runc", bench_runc),
        ("concurrent", bench_concurrent),
        ("alloc", bench_alloc),
    ];
    for (name, f) in sections {
        if !want(name) {
            continue;
        }
        log(&format!("== {name}"));
        let t = Instant::now();
        let v = match f(&o) {
            Ok(v) => v,
            Err(e) => {
                log(&format!("{name} FAILED: {e}"));
                json!({"error": e})
            }
        };
        log(&format!("== {name} done in {:.0}s", t.elapsed().as_secs_f64()));
        res.insert(name.into(), v);
        let mut all = Value::Object(res.clone());
        all["env"]["loadavg_end"] = json!(fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
        fs::write(o.out.join("results.json"), serde_json::to_string_pretty(&all).unwrap()).map_err(|e| e.to_string())?;
    }
    log("done");
    Ok(())
}

fn environment() -> Value {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let tmp = mounts.lines().filter(|l| l.split(' ').nth(1) == Some("/tmp")).last().unwrap_or("").to_string();
    let cpus = fs::read_to_string("/proc/cpuinfo").unwrap_or_default().lines().filter(|l| l.starts_with("processor")).count();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let ipvnet_size = fs::metadata(ipvnet_bin()).map(|m| m.len()).unwrap_or(0);
    // The plugin prints its name and version when run without CNI_COMMAND.
    let cni_version = Command::new(format!("{CNI_BIN}/ipvlan"))
        .env_clear()
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .unwrap_or_default();
    json!({
        "kernel": kernel.trim(), "cpus": cpus, "tmp_mount": tmp,
        "loadavg_start": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "ipvnet_binary_bytes": ipvnet_size,
        "cni_ipvlan_bytes": fs::metadata(format!("{CNI_BIN}/ipvlan")).map(|m| m.len()).unwrap_or(0),
        "cni_host_local_bytes": fs::metadata(format!("{CNI_BIN}/host-local")).map(|m| m.len()).unwrap_or(0),
        "cni_about": cni_version.lines().last().unwrap_or("").trim(),
    })
}

// ---------------------------------------------------- 1. attach/detach --

fn bench_attach(o: &Opts) -> R<Value> {
    let store = Store::open(&ipvnet_state()).map_err(|e| e.to_string())?;
    let conf = cni_attach_conf();
    let (mut a_add, mut a_del, mut b_add, mut b_del) = (vec![], vec![], vec![], vec![]);
    let mut checks = vec![];
    let mut a_ips = BTreeSet::new();
    let mut b_ips = BTreeSet::new();
    for i in 0..o.n {
        let (ida, idb) = (format!("ba{i}"), format!("bb{i}"));
        let nsa = netns_add(&format!("bench-a{i}"))?;
        let nsb = netns_add(&format!("bench-b{i}"))?;
        let state = hook_bundle(&ida, &nsa)?;
        // A B: attach both, check, detach both.
        let ra = timed(&mut hook_cmd("createRuntime"), &state)?;
        must(&ra, "ipvnet hook createRuntime")?;
        let rb = timed(&mut cni_cmd("ipvlan", "ADD", &idb, &nsb), conf.as_bytes())?;
        must(&rb, "CNI ADD")?;
        let ipa = lease_of(&store, NET, &ida).ok_or("the hook left no lease")?;
        let ipb = cni_ip(&rb.out).ok_or_else(|| format!("no address in the CNI result {}", rb.out))?;
        if i < 3 {
            // Untimed proof that both really configured the namespace.
            let (ga, gb) = (ns_addr(&nsa), ns_addr(&nsb));
            if ga != ipa || gb != ipb {
                return Err(format!("namespace check: ipvnet {ipa} vs eth0 {ga:?}; CNI {ipb} vs eth0 {gb:?}"));
            }
            checks.push(json!({"ipvnet": ga, "cni": gb}));
        }
        a_ips.insert(ipa);
        b_ips.insert(ipb);
        let da = timed(&mut hook_cmd("poststop"), &poststop_state(&ida))?;
        must(&da, "ipvnet hook poststop")?;
        let db = timed(&mut cni_cmd("ipvlan", "DEL", &idb, &nsb), conf.as_bytes())?;
        must(&db, "CNI DEL")?;
        if lease_of(&store, NET, &ida).is_some() {
            return Err("poststop left the lease".into());
        }
        a_add.push(ra);
        b_add.push(rb);
        a_del.push(da);
        b_del.push(db);
        netns_del(&nsa);
        netns_del(&nsb);
        let _ = fs::remove_dir_all(format!("{BASE}/bundles/{ida}"));
        if i % 20 == 19 {
            log(&format!("attach {}/{}", i + 1, o.n));
        }
    }
    let left = fs::read_dir(format!("{BASE}/cni/{CNI_NET}")).map(|d| d.filter(|e| e.as_ref().map_or(false, |e| e.file_name().to_string_lossy().starts_with("10."))).count()).unwrap_or(0);
    Ok(json!({
        "n": o.n,
        "ipvnet_add": samples(&a_add), "ipvnet_del": samples(&a_del),
        "cni_add": samples(&b_add), "cni_del": samples(&b_del),
        "namespace_checks": checks,
        "distinct_addresses": {"ipvnet": a_ips.len(), "cni": b_ips.len()},
        "cni_leases_left": left,
        "ipvnet_leases_left": store.leases(NET).map(|l| l.len()).unwrap_or(999),
    }))
}

// ---------------------------------------------------------- 2. allocation --

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn bench_alloc(o: &Opts) -> R<Value> {
    let store = Store::open(&ipvnet_state()).map_err(|e| e.to_string())?;
    let probe_ns = netns_add("bench-alloc")?;
    let mut levels = serde_json::Map::new();
    for (li, &pct) in LEVELS.iter().enumerate() {
        let name = format!("alloc{pct}");
        let subnet = format!("10.{}.0.0/16", 100 + li);
        let req = CreateRequest {
            name: name.clone(),
            driver: "ipvlan".into(),
            subnets: vec![subnet.clone()],
            ipv4: true,
            options: vec![format!("parent={PARENT}")],
            ..Default::default()
        };
        let (net, _) = plan(&req, &store.networks().map_err(|e| e.to_string())?, format!("{:0>64}", 100 + li), now_rfc3339())
            .map_err(|e| e.to_string())?;
        let pool = Pool::new(&net.subnets[0]);
        let reserved: BTreeSet<u64> = pool.reserved().collect();
        let mut slots: Vec<u64> = (0..pool.slots()).filter(|s| !reserved.contains(s)).collect();
        let usable = slots.len();
        let k = usable * pct as usize / 100;
        // The same random set of addresses for both stores, free slots scattered.
        let mut x = 0x2545f4914f6cdd1d_u64 ^ pct as u64;
        for i in (1..slots.len()).rev() {
            let j = (xorshift(&mut x) % (i as u64 + 1)) as usize;
            slots.swap(i, j);
        }
        let mut taken: Vec<u64> = slots[..k].to_vec();
        taken.sort_unstable();
        // ipvnet: through the library, in ascending order (the next-fit
        // cursor ends after the highest taken slot).
        let t = Instant::now();
        {
            let lock = store.lock().map_err(|e| e.to_string())?;
            lock.save_network(&net).map_err(|e| e.to_string())?;
            for &s in &taken {
                let want = Want { network: &net, interface: String::new(), statics: vec![pool.addr(s)] };
                lock.reserve(Owner::new(&format!("fill{pct}-{s}"), OwnerKind::Lease), &[want]).map_err(|e| e.to_string())?;
            }
        }
        let fill_ipvnet_s = t.elapsed().as_secs_f64();
        // host-local: one file per address (owner id CRLF ifname) and
        // last_reserved_ip.0 = the highest taken address (same cursor).
        let t = Instant::now();
        let dir = PathBuf::from(BASE).join("cni").join(&name);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for &s in &taken {
            fs::write(dir.join(pool.addr(s).to_string()), format!("fill{pct}-{s}\r\neth0")).map_err(|e| e.to_string())?;
        }
        if let Some(&last) = taken.last() {
            fs::write(dir.join("last_reserved_ip.0"), pool.addr(last).to_string()).map_err(|e| e.to_string())?;
        }
        let fill_cni_s = t.elapsed().as_secs_f64();
        log(&format!("alloc {pct}%: {k} of {usable} taken (ipvnet fill {fill_ipvnet_s:.1}s, host-local fill {fill_cni_s:.1}s)"));

        let conf = cni_ipam_conf(&name, &subnet);
        let (mut a_add, mut a_rm, mut b_add, mut b_del) = (vec![], vec![], vec![], vec![]);
        let (mut got_a, mut got_b) = (vec![], vec![]);
        for r in 0..o.alloc_reps {
            let owner = format!("probe{pct}-{r}");
            let ra = timed(&mut ipvnet_cmd(&["lease", "add", &name, "--owner", &owner]), b"")?;
            must(&ra, "ipvnet lease add")?;
            let rb = timed(&mut cni_cmd("host-local", "ADD", &owner, &probe_ns), conf.as_bytes())?;
            must(&rb, "host-local ADD")?;
            got_a.push(ra.out.trim().to_string());
            got_b.push(cni_ip(&rb.out).unwrap_or_default());
            let da = timed(&mut ipvnet_cmd(&["lease", "rm", "--owner", &owner]), b"")?;
            must(&da, "ipvnet lease rm")?;
            let db = timed(&mut cni_cmd("host-local", "DEL", &owner, &probe_ns), conf.as_bytes())?;
            must(&db, "host-local DEL")?;
            a_add.push(ra);
            a_rm.push(da);
            b_add.push(rb);
            b_del.push(db);
        }
        // The probes must have got free addresses (not one of the taken ones).
        let taken_ips: BTreeSet<String> = taken.iter().map(|&s| pool.addr(s).to_string()).collect();
        for g in got_a.iter().chain(&got_b) {
            let ip = g.split('/').next().unwrap_or("");
            if ip.is_empty() || taken_ips.contains(ip) {
                return Err(format!("alloc {pct}%: probe got {g:?}: empty or already taken"));
            }
        }
        // In-process: Store::reserve + release under the lock, no exec.
        let mut inproc = Vec::with_capacity(o.inproc_reps);
        for r in 0..o.inproc_reps {
            let t = Instant::now();
            let lock = store.lock().map_err(|e| e.to_string())?;
            let want = Want { network: &net, interface: String::new(), statics: vec![] };
            lock.reserve(Owner::new(&format!("inproc{pct}-{r}"), OwnerKind::Lease), &[want]).map_err(|e| e.to_string())?;
            lock.release(&format!("inproc{pct}-{r}")).map_err(|e| e.to_string())?;
            drop(lock);
            inproc.push(t.elapsed().as_secs_f64() * 1e6);
        }
        // Free the level's files before the next one (the guest's /tmp is
        // a small tmpfs): the network, its leases and its fill records.
        for d in [ipvnet_state().join("ipam").join(&name), dir.clone()] {
            let _ = fs::remove_dir_all(d);
        }
        let _ = fs::remove_file(ipvnet_state().join("networks").join(format!("{name}.json")));
        let prefix = format!("fill{pct}-");
        if let Ok(rd) = fs::read_dir(ipvnet_state().join("endpoints")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        levels.insert(
            pct.to_string(),
            json!({
                "usable": usable, "taken": k, "fill_ipvnet_s": fill_ipvnet_s, "fill_cni_s": fill_cni_s,
                "ipvnet_add": samples(&a_add), "ipvnet_rm": samples(&a_rm),
                "cni_add": samples(&b_add), "cni_del": samples(&b_del),
                "inproc_reserve_release_us": inproc,
                "first_probe": {"ipvnet": got_a.first(), "cni": got_b.first()},
            }),
        );
    }
    netns_del(&probe_ns);
    Ok(json!({"reps": o.alloc_reps, "levels": levels}))
}

// ------------------------------------------------------- 3. concurrency --

fn bench_concurrent(o: &Opts) -> R<Value> {
    let store = Store::open(&ipvnet_state()).map_err(|e| e.to_string())?;
    let conf = cni_attach_conf();
    let mut rounds = vec![];
    for round in 0..o.conc_rounds {
        let mut nsa = vec![];
        let mut nsb = vec![];
        let mut states = vec![];
        for i in 0..o.conc {
            let a = netns_add(&format!("conc-a{i}"))?;
            states.push(hook_bundle(&format!("ca{i}"), &a)?);
            nsa.push(a);
            nsb.push(netns_add(&format!("conc-b{i}"))?);
        }
        // A: every hook at once.
        let t0 = Instant::now();
        let mut kids = vec![];
        for st in &states {
            let mut c = spawn(&mut hook_cmd("createRuntime"))?;
            let _ = c.stdin.take().unwrap().write_all(st);
            kids.push(c);
        }
        let ra: Vec<Ran> = kids.into_iter().map(|c| finish(c, t0)).collect();
        let a_wall = t0.elapsed().as_secs_f64();
        // B: every CNI ADD at once.
        let t0 = Instant::now();
        let mut kids = vec![];
        for (i, ns) in nsb.iter().enumerate() {
            let mut c = spawn(&mut cni_cmd("ipvlan", "ADD", &format!("cb{i}"), ns))?;
            let _ = c.stdin.take().unwrap().write_all(conf.as_bytes());
            kids.push(c);
        }
        let rb: Vec<Ran> = kids.into_iter().map(|c| finish(c, t0)).collect();
        let b_wall = t0.elapsed().as_secs_f64();
        let a_fail = ra.iter().filter(|r| !r.ok).count();
        let b_fail = rb.iter().filter(|r| !r.ok).count();
        let first_err = ra.iter().chain(&rb).find(|r| !r.ok).map(|r| r.err.clone());
        // Duplicates: what the namespaces really hold, and what the stores say.
        let seen = netns_addrs()?;
        let count = |prefix: &str| -> (usize, usize, usize) {
            let mut all = vec![];
            let mut with = 0;
            for (n, a) in &seen {
                if n.starts_with(prefix) {
                    if a.len() == 1 {
                        with += 1;
                    }
                    all.extend(a.iter().cloned());
                }
            }
            let distinct: BTreeSet<_> = all.iter().collect();
            (with, all.len(), all.len() - distinct.len())
        };
        let (a_with, a_total, a_dup) = count("conc-a");
        let (b_with, b_total, b_dup) = count("conc-b");
        let b_result_ips: Vec<String> = rb.iter().filter_map(|r| cni_ip(&r.out)).collect();
        let b_result_dup = b_result_ips.len() - b_result_ips.iter().collect::<BTreeSet<_>>().len();
        let store_leases = store.leases(NET).map_err(|e| e.to_string())?;
        let store_dup = store_leases.len() - store_leases.iter().map(|(ip, _)| *ip).collect::<BTreeSet<IpAddr>>().len();
        // Detach all at once, A then B.
        let t0 = Instant::now();
        let kids: Vec<Child> = (0..o.conc)
            .map(|i| {
                let mut c = spawn(&mut hook_cmd("poststop"))?;
                let _ = c.stdin.take().unwrap().write_all(&poststop_state(&format!("ca{i}")));
                Ok(c)
            })
            .collect::<R<_>>()?;
        let da: Vec<Ran> = kids.into_iter().map(|c| finish(c, t0)).collect();
        let a_del_wall = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let kids: Vec<Child> = nsb
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let mut c = spawn(&mut cni_cmd("ipvlan", "DEL", &format!("cb{i}"), ns))?;
                let _ = c.stdin.take().unwrap().write_all(conf.as_bytes());
                Ok(c)
            })
            .collect::<R<_>>()?;
        let db: Vec<Ran> = kids.into_iter().map(|c| finish(c, t0)).collect();
        let b_del_wall = t0.elapsed().as_secs_f64();
        let left = store.leases(NET).map(|l| l.len()).unwrap_or(999);
        for ns in nsa.iter().chain(&nsb) {
            netns_del(ns);
        }
        let _ = fs::remove_dir_all(format!("{BASE}/bundles"));
        log(&format!("concurrent round {round}: ipvnet {a_wall:.1}s ({a_fail} failed, {a_dup} dup), CNI {b_wall:.1}s ({b_fail} failed, {b_dup} dup)"));
        rounds.push(json!({
            "ipvnet": {"wall_s": a_wall, "failed": a_fail, "ns_with_addr": a_with, "addrs": a_total, "duplicates": a_dup,
                       "store_duplicates": store_dup, "del_wall_s": a_del_wall,
                       "del_failed": da.iter().filter(|r| !r.ok).count(), "leases_left": left,
                       "maxrss_kb": ra.iter().map(|r| r.maxrss_kb).max()},
            "cni": {"wall_s": b_wall, "failed": b_fail, "ns_with_addr": b_with, "addrs": b_total, "duplicates": b_dup,
                    "result_duplicates": b_result_dup, "del_wall_s": b_del_wall,
                    "del_failed": db.iter().filter(|r| !r.ok).count()},
            "first_error": first_err,
        }));
    }
    Ok(json!({"conc": o.conc, "rounds": rounds}))
}

// ------------------------------------------------------ 4. runc run --

fn bench_runc(o: &Opts) -> R<Value> {
    let rootfs = std::env::var("IPVNET_ROOTFS").unwrap_or_else(|_| "/run/ipvnet-rootfs".into());
    let dir = PathBuf::from(BASE).join("runc");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(dir.join("config.json"));
    sh("runc", &["spec", "--bundle", dir.to_str().unwrap()])?;
    let mut spec: Value = serde_json::from_str(&fs::read_to_string(dir.join("config.json")).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    spec["root"] = json!({"path": rootfs, "readonly": true});
    spec["process"]["args"] = json!(["/bin/true"]);
    spec["process"]["terminal"] = json!(false);
    let plain = spec.clone();
    let hook = |stage: &str| {
        json!([{"path": ipvnet_bin(), "args": ["ipvnet", "hook", stage],
                "env": [format!("IPVNET_STATE_DIR={}", ipvnet_state().display()), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}])
    };
    spec["hooks"] = json!({"createRuntime": hook("createRuntime"), "poststop": hook("poststop")});
    spec["annotations"] = json!({"ipvnet.network": NET});
    let (bp, bh) = (dir.join("plain"), dir.join("hook"));
    for (b, s) in [(&bp, &plain), (&bh, &spec)] {
        fs::create_dir_all(b).map_err(|e| e.to_string())?;
        fs::write(b.join("config.json"), s.to_string()).map_err(|e| e.to_string())?;
    }
    let store = Store::open(&ipvnet_state()).map_err(|e| e.to_string())?;
    let (mut with, mut without) = (vec![], vec![]);
    // One untimed warm-up of each (first runc call pays page-cache misses).
    for r in 0..=o.runc_reps {
        let id = format!("rp{r}");
        let rp = timed(Command::new("runc").args(["run", "--bundle", bp.to_str().unwrap(), &id]).stdin(Stdio::null()), b"")?;
        must(&rp, "runc run (no hook)")?;
        let id = format!("rh{r}");
        let rh = timed(Command::new("runc").args(["run", "--bundle", bh.to_str().unwrap(), &id]).stdin(Stdio::null()), b"")?;
        must(&rh, "runc run (hook)")?;
        if store.owner(&id).map_err(|e| e.to_string())?.is_some() || lease_of(&store, NET, &id).is_some() {
            return Err(format!("{id}: the poststop hook did not release"));
        }
        if r > 0 {
            without.push(rp);
            with.push(rh);
        }
    }
    Ok(json!({"reps": o.runc_reps, "runtime": "runc", "without_hook": samples(&without), "with_hook": samples(&with)}))
}

// -------------------------------------------------------------- profile --

/// Where a hook run's time goes: the exec floor (`/bin/true`), the
/// binaries' bare start (`ipvnet --version`, CNI `ipvlan` without
/// CNI_COMMAND), and the hook's own phases (IPVNET_HOOK_TIMINGS=1: the time
/// since main of each phase's end, printed to stderr).
fn bench_profile(o: &Opts) -> R<Value> {
    let k = o.profile_reps;
    let (mut t_true, mut t_ver, mut t_cni) = (vec![], vec![], vec![]);
    let mut add_wall = vec![];
    let mut del_wall = vec![];
    let mut add_phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut del_phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let parse = |err: &str, into: &mut BTreeMap<String, Vec<f64>>| {
        for l in err.lines() {
            let mut w = l.split_whitespace();
            if w.next() == Some("ipvnet-timing") {
                if let (Some(p), Some(v)) = (w.next(), w.next().and_then(|v| v.parse::<f64>().ok())) {
                    into.entry(p.to_string()).or_default().push(v);
                }
            }
        }
    };
    for i in 0..k {
        t_true.push(timed(Command::new("/bin/true").env_clear(), b"")?.us);
        let v = timed(&mut ipvnet_cmd(&["--version"]), b"")?;
        must(&v, "ipvnet --version")?;
        t_ver.push(v.us);
        t_cni.push(timed(Command::new(format!("{CNI_BIN}/ipvlan")).env_clear(), b"")?.us);
        let id = format!("prof{i}");
        let ns = netns_add(&format!("prof-{i}"))?;
        let st = hook_bundle(&id, &ns)?;
        let r = timed(hook_cmd("createRuntime").env("IPVNET_HOOK_TIMINGS", "1"), &st)?;
        must(&r, "hook createRuntime (timed phases)")?;
        parse(&r.err, &mut add_phases);
        add_wall.push(r.us);
        let r = timed(hook_cmd("poststop").env("IPVNET_HOOK_TIMINGS", "1"), &poststop_state(&id))?;
        must(&r, "hook poststop (timed phases)")?;
        parse(&r.err, &mut del_phases);
        del_wall.push(r.us);
        netns_del(&ns);
    }
    Ok(json!({
        "k": k, "true_us": t_true, "ipvnet_version_us": t_ver, "cni_ipvlan_bare_us": t_cni,
        "add_wall_us": add_wall, "add_phases_us": add_phases,
        "del_wall_us": del_wall, "del_phases_us": del_phases,
    }))
}

// ------------------------------------------------------------ 5. NRI --

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

fn bench_nri(o: &Opts) -> R<Value> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(nri_async(o))
}

async fn nri_async(o: &Opts) -> R<Value> {
    use common::*;
    use nri::api;
    use protobuf::Message;

    let sock = PathBuf::from(BASE).join("nri.sock");
    let _ = fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(ipvnet_bin())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("IPVNET_STATE_DIR", ipvnet_state())
        .args(["nri", "--socket"])
        .arg(&sock)
        .arg("--log-file")
        .arg(format!("{BASE}/nri.log"))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id().ok_or("no pid")?;
    let (conn, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .map_err(|_| "the plugin did not connect")?
        .map_err(|e| e.to_string())?;
    let mut rt = FakeRuntime::new(conn);
    let msg = rt.read_msg(2).await;
    let req = ttrpc::Request::parse_from_bytes(&msg.payload).map_err(|e| e.to_string())?;
    if req.method != "RegisterPlugin" {
        return Err(format!("expected RegisterPlugin, got {}", req.method));
    }
    rt.reply_ok(msg.stream_id, Vec::new()).await;
    let mut cfg = api::ConfigureRequest::new();
    cfg.runtime_name = "ipvnet-bench".into();
    cfg.runtime_version = "v0".into();
    if code(&rt.call(1, "Configure", &cfg).await) != 0 {
        return Err("Configure failed".into());
    }
    if code(&rt.call(3, "Synchronize", &api::SynchronizeRequest::new()).await) != 0 {
        return Err("Synchronize failed".into());
    }
    let mut stream = 5;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = proc_status_kb(pid, "VmRSS:");
    let idle_hwm = proc_status_kb(pid, "VmHWM:");
    let store = Store::open(&ipvnet_state()).map_err(|e| e.to_string())?;
    let (mut run_us, mut stop_us, mut remove_us) = (vec![], vec![], vec![]);
    let mut checked = json!(null);
    for i in 0..o.nri_events {
        let ns = netns_add(&format!("nri-{i}"))?;
        let id = format!("pod{i:04}");
        let mut p = api::PodSandbox::new();
        p.id = id.clone();
        p.name = format!("bench-{i}");
        p.uid = format!("uid-{i}");
        p.namespace = "default".into();
        p.annotations.insert("ipvnet.network".into(), NET.into());
        let mut lns = api::LinuxNamespace::new();
        lns.type_ = "network".into();
        lns.path = ns.to_str().unwrap().into();
        p.linux.mut_or_insert_default().namespaces.push(lns);
        let mut times = vec![];
        for ev in [api::Event::RUN_POD_SANDBOX, api::Event::STOP_POD_SANDBOX, api::Event::REMOVE_POD_SANDBOX] {
            let mut e = api::StateChangeEvent::new();
            e.event = ev.into();
            e.pod = Some(p.clone()).into();
            let t = Instant::now();
            let resp = rt.call(stream, "StateChange", &e).await;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            stream += 2;
            if code(&resp) != 0 {
                return Err(format!("{ev:?} for {id} failed: {:?}", resp.status.as_ref().map(|s| s.message.clone())));
            }
            if ev == api::Event::RUN_POD_SANDBOX {
                let ip = lease_of(&store, NET, &id).ok_or("RunPodSandbox left no lease")?;
                if i == 0 {
                    let got = ns_addr(&ns);
                    if got != ip {
                        return Err(format!("pod {id}: lease {ip} but eth0 holds {got:?}"));
                    }
                    checked = json!({"pod": id, "address": got});
                }
            }
        }
        if lease_of(&store, NET, &id).is_some() {
            return Err(format!("pod {id}: lease left after Stop/Remove"));
        }
        run_us.push(times[0]);
        stop_us.push(times[1]);
        remove_us.push(times[2]);
        netns_del(&ns);
    }
    let after_rss = proc_status_kb(pid, "VmRSS:");
    let after_hwm = proc_status_kb(pid, "VmHWM:");
    let _ = code(&rt.call(stream, "Shutdown", &api::Empty::new()).await);
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let _ = child.start_kill();
    Ok(json!({
        "events": o.nri_events,
        "idle_rss_kb": idle_rss, "idle_hwm_kb": idle_hwm,
        "after_rss_kb": after_rss, "after_hwm_kb": after_hwm,
        "run_pod_sandbox_us": run_us, "stop_pod_sandbox_us": stop_us, "remove_pod_sandbox_us": remove_us,
        "namespace_check": checked,
    }))
}

// --------------------------------------------------------------- render --

#[derive(Clone, Copy)]
struct Stat {
    n: usize,
    p10: f64,
    med: f64,
    p90: f64,
    max: f64,
}

fn stat(v: &[f64]) -> Stat {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return Stat { n: 0, p10: f64::NAN, med: f64::NAN, p90: f64::NAN, max: f64::NAN };
    }
    let q = |p: f64| {
        let x = p * (v.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
    };
    Stat { n: v.len(), p10: q(0.1), med: q(0.5), p90: q(0.9), max: v[v.len() - 1] }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

fn ms(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 100_000.0 {
        format!("{:.0}", x / 1000.0)
    } else {
        format!("{:.1}", x / 1000.0)
    }
}

fn row_ms(label: &str, s: Stat) -> String {
    format!("| {label} | {} | {} | {} | {} | {} |\n", s.n, ms(s.med), ms(s.p10), ms(s.p90), ms(s.max))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**pass**"
    } else {
        "**miss**"
    }
}

fn render(path: &Path) -> R<()> {
    let r: Value = serde_json::from_str(&fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
        .map_err(|e| e.to_string())?;
    let mut md = String::new();
    let mut targets: Vec<String> = vec![];
    let env = &r["env"];
    md.push_str("# Benchmarks: ipvnet and CNI's ipvlan + host-local\n\n");
    md.push_str("Produced by `tests/bench/run.sh` (one command: release build, one test-guest boot, the\n");
    md.push_str("driver `ipvnet-bench` in the guest, this file rendered from its `results.json`).\n");
    md.push_str("The peer is Debian's containernetworking-plugins (`/usr/lib/cni/ipvlan` with `host-local`\n");
    md.push_str("IPAM), driven as a runtime drives it (CNI_COMMAND/CONTAINERID/NETNS/IFNAME/PATH, config on\n");
    md.push_str("stdin). Both work on the same dummy parent in ipvlan L2 mode, against named network\n");
    md.push_str("namespaces made the same way, with their state under the same /tmp, alternating A B A B in\n");
    md.push_str("the same boot. Every timed operation is one process, timed from spawn to wait4(2).\n\n");
    md.push_str("**Absolute times are inflated about tenfold**: the guest runs under QEMU software emulation\n");
    md.push_str("(TCG, no KVM), where every exec costs ~0.1-0.3 s. Compare ratios, not milliseconds.\n");
    if let Ok(note) = std::env::var("IPVNET_BENCH_HOST_NOTE") {
        md.push_str(&format!("{note}\n"));
    }
    md.push_str(&format!(
        "\nGuest: kernel {}, {} vCPUs, /tmp = `{}`; load average at start {}, at end {}.\n",
        env["kernel"].as_str().unwrap_or("?"),
        env["cpus"],
        env["tmp_mount"].as_str().unwrap_or("?"),
        env["loadavg_start"].as_str().unwrap_or("?"),
        env["loadavg_end"].as_str().unwrap_or("?"),
    ));
    md.push_str(&format!(
        "Binaries: ipvnet {:.1} MB; CNI ipvlan {:.1} MB, host-local {:.1} MB ({}).\n",
        env["ipvnet_binary_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        env["cni_ipvlan_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        env["cni_host_local_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        env["cni_about"].as_str().unwrap_or("?"),
    ));
    let table_head = "| | N | median ms | p10 | p90 | max |\n|---|---|---|---|---|---|\n";

    // 1.
    let a = &r["attach"];
    md.push_str("\n## 1. Attach and detach, one container at a time\n\n");
    if let Some(e) = a.get("error") {
        md.push_str(&format!("Failed: {e}\n"));
    } else if a.is_object() {
        md.push_str("ipvnet: `ipvnet hook createRuntime` / `poststop` with the state on stdin, the bundle's\n");
        md.push_str("config.json naming a named netns. CNI: `ipvlan` ADD / DEL (which execs `host-local`).\n\n");
        md.push_str(table_head);
        let s = |k: &str| stat(&nums(&a[k]["us"]));
        let (ia, ca, id, cd) = (s("ipvnet_add"), s("cni_add"), s("ipvnet_del"), s("cni_del"));
        md.push_str(&row_ms("ipvnet hook createRuntime", ia));
        md.push_str(&row_ms("CNI ipvlan ADD", ca));
        md.push_str(&row_ms("ipvnet hook poststop", id));
        md.push_str(&row_ms("CNI ipvlan DEL", cd));
        let ratio = ia.med / ca.med;
        md.push_str(&format!(
            "\nRatio ipvnet/CNI (medians): attach **{:.2}**, detach **{:.2}**. Checked: the first namespaces' eth0 held\nthe leased addresses ({}); no lease left after detach (ipvnet {}, host-local {}).\n",
            ratio,
            id.med / cd.med,
            a["namespace_checks"],
            a["ipvnet_leases_left"],
            a["cni_leases_left"],
        ));
        targets.push(format!("| attach ≤ 0.3× CNI's | {:.2}× | {} |", ratio, verdict(ratio <= 0.3)));
    }

    // 2.
    let al = &r["alloc"];
    md.push_str("\n## 2. Address allocation in a /16 at 1 %, 50 % and 99 % occupancy\n\n");
    if let Some(e) = al.get("error") {
        md.push_str(&format!("Failed: {e}\n"));
    } else if al.is_object() {
        md.push_str("The same random set of addresses is taken in both stores before measuring (ipvnet\n");
        md.push_str("through its library, host-local by writing its one-file-per-address store). ipvnet:\n");
        md.push_str("`ipvnet lease add NET --owner X` / `lease rm --owner X`; host-local run directly as an\n");
        md.push_str("IPAM plugin (ADD / DEL). In-process: `Store::reserve` + `release` under the lock, no exec.\n\n");
        md.push_str("| occupancy | ipvnet lease add | host-local ADD | ratio | ipvnet lease rm | host-local DEL | ratio | in-process reserve+release µs (p10-p90) |\n|---|---|---|---|---|---|---|---|\n");
        let mut base_exec = f64::NAN;
        let mut base_inproc = f64::NAN;
        let mut at99 = (f64::NAN, f64::NAN);
        for pct in LEVELS {
            let l = &al["levels"][pct.to_string()];
            let s = |k: &str| stat(&nums(&l[k]["us"]));
            let (ia, ca, ir, cd) = (s("ipvnet_add"), s("cni_add"), s("ipvnet_rm"), s("cni_del"));
            let ip = stat(&nums(&l["inproc_reserve_release_us"]));
            md.push_str(&format!(
                "| {pct} % ({} of {}) | {} ms ({}-{}) | {} ms ({}-{}) | {:.2} | {} ms | {} ms | {:.2} | {:.0} ({:.0}-{:.0}) |\n",
                l["taken"], l["usable"], ms(ia.med), ms(ia.p10), ms(ia.p90), ms(ca.med), ms(ca.p10), ms(ca.p90),
                ia.med / ca.med, ms(ir.med), ms(cd.med), ir.med / cd.med, ip.med, ip.p10, ip.p90
            ));
            if pct == 1 {
                base_exec = ia.med;
                base_inproc = ip.med;
            }
            if pct == 99 {
                at99 = (ia.med, ip.med);
            }
        }
        let (re, ri) = (at99.0 / base_exec, at99.1 / base_inproc);
        md.push_str(&format!(
            "\nN = {} per level and tool (in-process: {} per level). ipvnet at 99 % vs 1 %: **{:.2}×** per\n`lease add` process, **{:.2}×** in-process. Every probe got a free address (checked against the taken set).\n",
            al["reps"],
            nums(&al["levels"]["1"]["inproc_reserve_release_us"]).len(),
            re,
            ri
        ));
        targets.push(format!(
            "| ipvnet allocation at 99 % ≤ 1.5× at 1 % | {:.2}× (`lease add`), {:.2}× (in-process) | {} |",
            re,
            ri,
            verdict(re <= 1.5 && ri <= 1.5)
        ));
    }

    // 3.
    let c = &r["concurrent"];
    md.push_str("\n## 3. Concurrent attaches on one network\n\n");
    if let Some(e) = c.get("error") {
        md.push_str(&format!("Failed: {e}\n"));
    } else if c.is_object() {
        md.push_str(&format!(
            "{} attaches started at once (all spawned, then all waited), then {} detaches at once; rounds alternate\nipvnet and CNI. Duplicates are counted over the addresses the namespaces' eth0 really hold\n(`ip -all netns exec`), and over ipvnet's lease files / CNI's results.\n\n",
            c["conc"], c["conc"]
        ));
        md.push_str("| round | ipvnet attach wall s | CNI attach wall s | ratio | ipvnet detach s | CNI detach s | failed (ipvnet/CNI) | namespaces with one address | duplicates (ipvnet/CNI) |\n|---|---|---|---|---|---|---|---|---|\n");
        let mut all_ok = true;
        for (i, rd) in c["rounds"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            let (x, y) = (&rd["ipvnet"], &rd["cni"]);
            let w = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let dups = x["duplicates"].as_u64().unwrap_or(1) + x["store_duplicates"].as_u64().unwrap_or(1);
            let cd = y["duplicates"].as_u64().unwrap_or(1) + y["result_duplicates"].as_u64().unwrap_or(1);
            all_ok &= dups == 0 && cd == 0 && x["failed"] == 0 && y["failed"] == 0;
            md.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {}/{} | {}/{} | {}/{} |\n",
                i + 1,
                w(x, "wall_s"),
                w(y, "wall_s"),
                w(x, "wall_s") / w(y, "wall_s"),
                w(x, "del_wall_s"),
                w(y, "del_wall_s"),
                x["failed"],
                y["failed"],
                x["ns_with_addr"],
                y["ns_with_addr"],
                dups,
                cd
            ));
            if let Some(e) = rd["first_error"].as_str() {
                md.push_str(&format!("\nFirst failure: `{}`\n", e.trim()));
            }
        }
        md.push_str(&format!("\nZero duplicate addresses and no failure in every round: **{}**.\n", if all_ok { "yes" } else { "NO" }));
    }

    // 4.
    let rc = &r["runc"];
    md.push_str("\n## 4. Container start overhead (`runc run` of busybox `true`)\n\n");
    if let Some(e) = rc.get("error") {
        md.push_str(&format!("Failed: {e}\n"));
    } else if rc.is_object() {
        md.push_str("Same bundle (read-only busybox rootfs, own network namespace) with and without the\n");
        md.push_str("createRuntime + poststop hooks and the `ipvnet.network` annotation; `runc run` creates,\n");
        md.push_str("starts, waits and deletes, so both hooks run. Alternating, after one warm-up each.\n\n");
        md.push_str(table_head);
        let (wo, wi) = (stat(&nums(&rc["without_hook"]["us"])), stat(&nums(&rc["with_hook"]["us"])));
        md.push_str(&row_ms("runc run, no hook", wo));
        md.push_str(&row_ms("runc run, ipvnet hooks", wi));
        md.push_str(&format!(
            "\nOverhead of the hooks (difference of medians): {} ms, {:.0} % of a plain start.\n",
            ms(wi.med - wo.med),
            (wi.med / wo.med - 1.0) * 100.0
        ));
    }

    // 5.
    md.push_str("\n## 5. Memory, and the NRI plugin's per-event latency\n\n");
    if a.is_object() && a.get("error").is_none() {
        let kb = |k: &str| stat(&nums(&a[k]["maxrss_kb"]));
        md.push_str("Peak RSS (wait4 ru_maxrss; for CNI ADD/DEL the largest of the plugin and the `host-local` it ran):\n\n");
        md.push_str("| process | N | median MiB | p90 | max |\n|---|---|---|---|---|\n");
        for (label, k) in [
            ("ipvnet hook createRuntime", "ipvnet_add"),
            ("ipvnet hook poststop", "ipvnet_del"),
            ("CNI ipvlan ADD", "cni_add"),
            ("CNI ipvlan DEL", "cni_del"),
        ] {
            let s = kb(k);
            md.push_str(&format!("| {label} | {} | {:.2} | {:.2} | {:.2} |\n", s.n, s.med / 1024.0, s.p90 / 1024.0, s.max / 1024.0));
        }
        let peak = kb("ipvnet_add").max.max(kb("ipvnet_del").max) / 1024.0;
        targets.push(format!("| hook peak RSS ≤ 4 MiB | {:.2} MiB (max over {} createRuntime + poststop runs) | {} |", peak, kb("ipvnet_add").n * 2, verdict(peak <= 4.0)));
    }
    let n = &r["nri"];
    if let Some(e) = n.get("error") {
        md.push_str(&format!("\nNRI: failed: {e}\n"));
    } else if n.is_object() {
        let kb = |k: &str| n[k].as_f64().unwrap_or(f64::NAN) / 1024.0;
        md.push_str(&format!(
            "\nNRI plugin (`ipvnet nri --socket`, external mode, driven by a fake runtime built on the\nworkspace's `nri` crate: RegisterPlugin, Configure, Synchronize, then per pod RunPodSandbox /\nStopPodSandbox / RemovePodSandbox with a named netns). RSS from /proc/PID/status: idle (3 s\nafter Synchronize) **{:.2} MiB** (peak so far {:.2} MiB); after {} pods {:.2} MiB (peak {:.2} MiB).\n\n",
            kb("idle_rss_kb"),
            kb("idle_hwm_kb"),
            n["events"],
            kb("after_rss_kb"),
            kb("after_hwm_kb")
        ));
        md.push_str("Round trip of each event, as the runtime sees it:\n\n");
        md.push_str(table_head);
        md.push_str(&row_ms("RunPodSandbox (attach)", stat(&nums(&n["run_pod_sandbox_us"]))));
        md.push_str(&row_ms("StopPodSandbox (detach)", stat(&nums(&n["stop_pod_sandbox_us"]))));
        md.push_str(&row_ms("RemovePodSandbox (no-op)", stat(&nums(&n["remove_pod_sandbox_us"]))));
        md.push_str(&format!("\nChecked: {}.\n", n["namespace_check"]));
        let idle = kb("idle_rss_kb");
        targets.push(format!("| NRI plugin idle RSS ≤ 10 MiB | {:.2} MiB | {} |", idle, verdict(idle <= 10.0)));
    }

    let p = &r["profile"];
    if p.is_object() && p.get("error").is_none() {
        md.push_str("\n## Where the hook's time goes\n\n");
        md.push_str(&format!(
            "{} runs of each, in the same guest. Bare process costs (spawn to wait4):\n\n",
            p["k"]
        ));
        md.push_str(table_head);
        md.push_str(&row_ms("`/bin/true` (the exec floor)", stat(&nums(&p["true_us"]))));
        md.push_str(&row_ms("`ipvnet --version` (start of the binary, no work)", stat(&nums(&p["ipvnet_version_us"]))));
        md.push_str(&row_ms("CNI `ipvlan` with no CNI_COMMAND (Go start, prints its version)", stat(&nums(&p["cni_ipvlan_bare_us"]))));
        for (title, wall, phases, order) in [
            ("createRuntime", "add_wall_us", "add_phases_us", &["main", "parse", "labels", "networks", "netns", "reserve", "done"][..]),
            ("poststop", "del_wall_us", "del_phases_us", &["main", "done"][..]),
        ] {
            let w = stat(&nums(&p[wall]));
            md.push_str(&format!(
                "\n`ipvnet hook {title}` with IPVNET_HOOK_TIMINGS=1 (phase ends measured from the start of main; medians):\n\n| phase | ms | share of the wall time |\n|---|---|---|\n"
            ));
            let mut prev = 0.0;
            for ph in order {
                let m = stat(&nums(&p[phases][*ph])).med;
                if m.is_nan() {
                    continue;
                }
                let label = match *ph {
                    "main" => "arguments, read the state on stdin",
                    "parse" => "parse state + config.json, annotations",
                    "labels" => "open the store, liveness labels (/proc, boot id)",
                    "networks" => "read the network definitions",
                    "netns" => "open the netns, netlink socket in it, list its links",
                    "reserve" => "store: lock, reserve address, write record/lease/bitmap/hosts",
                    "done" if *title == *"poststop" => "store: lock, release (lease, bitmap, hosts, record)",
                    "done" => "netlink: create ipvlan in the netns, rename, address, up, routes",
                    _ => ph,
                };
                md.push_str(&format!("| {label} | {} | {:.0} % |\n", ms(m - prev), (m - prev) / w.med * 100.0));
                prev = m;
            }
            md.push_str(&format!(
                "| process start and exit (wall time minus the above: exec, loader, runtime init, exit) | {} | {:.0} % |\n| **wall time** | **{}** | |\n",
                ms(w.med - prev),
                (w.med - prev) / w.med * 100.0,
                ms(w.med)
            ));
        }
        if let Ok(extra) = std::env::var("IPVNET_BENCH_ANALYSIS") {
            if let Ok(text) = fs::read_to_string(extra) {
                md.push('\n');
                md.push_str(&text);
            }
        }
    }

    let mut head = String::new();
    head.push_str("\n## Targets (all from this run)\n\n| target | measured | |\n|---|---|---|\n");
    for t in &targets {
        head.push_str(t);
        head.push('\n');
    }
    // Targets right after the introduction.
    let cut = md.find("\n## 1.").unwrap_or(md.len());
    md.insert_str(cut, &head);
    print!("{md}");
    Ok(())
}
