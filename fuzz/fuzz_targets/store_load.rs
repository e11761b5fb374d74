//! The state directory with one damaged file: a network definition, an
//! endpoint record, a lease file, a subnet bitmap or the hosts file.
//!
//! A template store is built once with the product's own API: network "n"
//! (10.1.0.0/28 and 2001:db8::/124, so a bitmap of 16 slots each) with owner
//! "a" (dynamic: 10.1.0.2, 2001:db8::2) and owner "b" (static 10.1.0.9).
//! Each input copies it to a scratch directory and damages one file:
//!
//!   byte 0, bits 0-2: which file (see FILES); bits 3-4: how
//!     0 replace it with the rest of the input
//!     1 truncate it to (u16 LE of the next two bytes) % (len + 1)
//!     2 overwrite it at offset (u16 LE) % len with the bytes after those
//!     3 append the rest of the input
//!
//! then runs the loaders (Store::open, networks, owners, leases), a reserve
//! of a new owner "c" on n, and a release of "a" and "c". Checks:
//! - no panic;
//! - a damaged definition or record that fails to load gives an error that
//!   names the file;
//! - no silent reset: "c" never gets an address a lease file holds, nor the
//!   network, broadcast or gateway address, nor one outside its subnet or
//!   range; "no free address" only when every slot really is taken;
//! - release of "a" never removes a lease held by anyone else.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ipvnet::ipam::{check_static, Pool};
use ipvnet::network::{plan, CreateRequest, Network};
use ipvnet::store::{Owner, OwnerKind, Store, Want};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 8] = [
    "networks/n.json",
    "endpoints/a.json",
    "endpoints/b.json",
    "ipam/n/leases/10.1.0.2",
    "ipam/n/10.1.0.0_28.bitmap",
    "ipam/n/2001_db8___124.bitmap",
    "hosts/n",
    "ipam/n/leases/10.1.0.9",
];

struct Template {
    net: Network,
    /// Relative paths: `None` for a directory, else the file's content.
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

/// Scratch space: $IPVNET_FUZZ_SCRATCH (fuzz/run.sh makes one and removes
/// it), else tmpfs when there is one (the store fsyncs its records).
fn base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let root = match std::env::var_os("IPVNET_FUZZ_SCRATCH") {
        Some(d) => PathBuf::from(d),
        None if shm.is_dir() => shm.to_path_buf(),
        None => std::env::temp_dir(),
    };
    root.join(format!("ipvnet-fuzz-store-{}", std::process::id()))
}

fn owner(id: &str) -> Owner {
    Owner {
        id: id.into(),
        kind: OwnerKind::Container,
        hostname: Some(format!("host-{id}")),
        netns: None,
        labels: BTreeMap::new(),
        endpoints: vec![],
        created: "2026-01-01T00:00:00Z".into(),
    }
}

fn want<'a>(net: &'a Network, statics: &[&str]) -> Want<'a> {
    Want { network: net, interface: "eth0".into(), statics: statics.iter().map(|s| s.parse().unwrap()).collect() }
}

fn collect(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
    for e in fs::read_dir(dir.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            out.push((r.clone(), None));
            collect(dir, &r, out);
        } else if r != Path::new("lock") {
            out.push((r, Some(fs::read(e.path()).unwrap())));
        }
    }
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = base_dir().join("template");
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let req = CreateRequest {
            name: "n".into(),
            driver: "ipvlan".into(),
            subnets: vec!["10.1.0.0/28".into(), "2001:db8::/124".into()],
            ipv4: true,
            options: vec!["parent=eth0".into()],
            ..Default::default()
        };
        let (net, _) = plan(&req, &[], "e".repeat(64), "2026-01-01T00:00:00Z".into()).unwrap();
        let lock = store.lock().unwrap();
        lock.save_network(&net).unwrap();
        lock.init_hosts("n").unwrap();
        lock.reserve(owner("a"), &[want(&net, &[])]).unwrap();
        lock.reserve(owner("b"), &[want(&net, &["10.1.0.9"])]).unwrap();
        drop(lock);
        let mut files = Vec::new();
        collect(&dir, Path::new(""), &mut files);
        files.sort();
        for f in FILES {
            assert!(files.iter().any(|(p, _)| p == Path::new(f)), "template lacks {f}");
        }
        let _ = fs::remove_dir_all(&dir);
        Template { net, files }
    })
}

/// Lease files of n: address and content.
fn lease_files(dir: &Path) -> BTreeMap<IpAddr, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(dir.join("ipam/n/leases")) {
        for e in rd.flatten() {
            if let Some(ip) = e.file_name().to_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                out.insert(ip, fs::read(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let t = template();
    let which = FILES[(sel & 7) as usize];
    let dir = base_dir().join("s");
    let _ = fs::remove_dir_all(&dir);
    for (rel, bytes) in &t.files {
        let p = dir.join(rel);
        match bytes {
            None => fs::create_dir_all(&p).unwrap(),
            Some(b) => fs::write(&p, b).unwrap(),
        }
    }
    let target = dir.join(which);
    let orig = fs::read(&target).unwrap();
    let u16_at = |b: &[u8]| u16::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)]) as usize;
    let damaged: Vec<u8> = match (sel >> 3) & 3 {
        0 => rest.to_vec(),
        1 => orig[..u16_at(rest) % (orig.len() + 1)].to_vec(),
        2 => {
            let mut v = orig.clone();
            let at = u16_at(rest) % v.len().max(1);
            for (i, b) in rest.iter().skip(2).enumerate() {
                match v.get_mut(at + i) {
                    Some(x) => *x = *b,
                    None => v.push(*b),
                }
            }
            v
        }
        _ => [orig.as_slice(), rest].concat(),
    };
    fs::write(&target, &damaged).unwrap();

    let store = Store::open(&dir).expect("open a store whose directories exist");
    let net = match store.networks() {
        Ok(nets) => nets.into_iter().find(|n| n.name == "n"),
        Err(e) => {
            assert_eq!(which, "networks/n.json", "networks() failed for damage in {which}: {e}");
            assert!(e.to_string().contains(which), "error does not name {which}: {e}");
            None
        }
    };
    match store.owners() {
        Ok(_) => {}
        Err(e) => {
            assert!(which.starts_with("endpoints/"), "owners() failed for damage in {which}: {e}");
            assert!(e.to_string().contains(which), "error does not name {which}: {e}");
        }
    }
    let _ = store.leases("n");

    // With an unreadable definition nobody can reserve on n; use the
    // template's to exercise the rest of the store anyway.
    let net = net.unwrap_or_else(|| t.net.clone());
    let before = lease_files(&dir);
    let lock = store.lock().expect("lock");
    let mut got: Vec<IpAddr> = Vec::new();
    match lock.reserve(owner("c"), &[want(&net, &[])]) {
        Ok(c) => {
            got = c.endpoints.iter().flat_map(|ep| ep.addresses.iter().map(|a| a.ip())).collect();
            for ep in &c.endpoints {
                for a in &ep.addresses {
                    let ip = a.ip();
                    assert!(!before.contains_key(&ip), "handed out {ip}, held by lease {:?} (damage in {which})", String::from_utf8_lossy(&before[&ip]));
                    let sub = net.subnets.iter().find(|s| s.subnet.contains(ip)).unwrap_or_else(|| panic!("{ip} in no subnet of {net:?}"));
                    check_static(sub, ip).unwrap_or_else(|e| panic!("handed out {ip} (damage in {which}): {e}"));
                    if let Some(r) = sub.ip_range {
                        assert!(r.contains(ip), "handed out {ip} outside range {r}");
                    }
                    assert_eq!(fs::read(dir.join("ipam/n/leases").join(ip.to_string())).ok().as_deref(), Some(&b"c"[..]), "no lease file for {ip}");
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("no free address") {
                // Really full? Count the free slots of the family it names.
                let v6 = msg.contains("IPv6");
                let leased: BTreeSet<IpAddr> = before.keys().copied().collect();
                for sub in net.subnets.iter().filter(|s| s.subnet.is_ipv6() == v6) {
                    let pool = Pool::new(sub);
                    let reserved: BTreeSet<u64> = pool.reserved().collect();
                    let free = (0..pool.slots())
                        .filter(|s| !reserved.contains(s) && !leased.contains(&pool.addr(*s)))
                        .count();
                    assert_eq!(free, 0, "\"{msg}\" with {free} free slots in {} (damage in {which})", sub.subnet);
                }
            }
        }
    }

    // Releasing a never frees an address someone else holds.
    let mid = lease_files(&dir);
    let _ = lock.release("a");
    let after = lease_files(&dir);
    for (ip, holder) in &mid {
        // The product reads a lease's owner trimmed, as UTF-8.
        if std::str::from_utf8(holder).map(str::trim) != Ok("a") {
            assert!(after.get(ip) == Some(holder), "release of a removed or changed lease {ip} of {:?} (damage in {which})", String::from_utf8_lossy(holder));
        }
    }
    if !got.is_empty() {
        assert!(lock.release("c").expect("release c").is_some());
        let left = lease_files(&dir);
        for ip in &got {
            assert!(!left.contains_key(ip), "release of c left its lease {ip}");
        }
    }
});
