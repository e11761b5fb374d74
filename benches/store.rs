//! Allocation cost of the address store against occupancy: a /16 at 1 %,
//! 50 % and 99 %, with the free addresses scattered at random (the worst
//! case for a next-fit allocator). Runs without root or kernel support:
//!
//!     cargo bench --bench store
//!
//! Each sample is one reserve + release of a fresh owner (the work a hook
//! does in the store), timed over many rounds; prints medians and the ratio
//! to the 1 % case. The store lives on tmpfs (/dev/shm) so that the disk's
//! fsync latency, the same at any occupancy, does not hide the allocator's
//! cost; set IPVNET_BENCH_DIR to measure on a real disk.

use std::path::Path;
use std::time::Instant;

use ipvnet::network::{plan, CreateRequest};
use ipvnet::store::{now_rfc3339, Owner, OwnerKind, Store, Want};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn measure(dir: &Path, fill_percent: u32, rounds: usize) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(dir).unwrap();
    let req = CreateRequest {
        name: "bench".into(),
        driver: "ipvlan".into(),
        subnets: vec!["10.20.0.0/16".into()],
        ipv4: true,
        options: vec!["parent=eth0".into()],
        ..Default::default()
    };
    let (net, _) = plan(&req, &[], "b".repeat(64), now_rfc3339()).unwrap();
    let lock = store.lock().unwrap();
    lock.save_network(&net).unwrap();
    let usable = 65533u32;
    let target = (usable as u64 * fill_percent as u64 / 100) as u32;
    // Fill, then free a random subset so the free slots are scattered.
    let total = usable.min(target + (usable - target) / 2);
    for i in 0..total {
        lock.reserve(Owner::new(&format!("f{i}"), OwnerKind::Lease), &[Want { network: &net, interface: String::new(), statics: vec![] }]).unwrap();
    }
    let mut x: u64 = 0x2545f4914f6cdd1d;
    let mut freed = 0;
    while total - freed > target {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if lock.release(&format!("f{}", x % total as u64)).unwrap().is_some() {
            freed += 1;
        }
    }
    drop(lock);
    let mut samples = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let t = Instant::now();
        let lock = store.lock().unwrap();
        lock.reserve(Owner::new(&format!("b{r}"), OwnerKind::Lease), &[Want { network: &net, interface: String::new(), statics: vec![] }]).unwrap();
        lock.release(&format!("b{r}")).unwrap();
        drop(lock);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(samples)
}

fn main() {
    let base_dir = std::env::var_os("IPVNET_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| if Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() });
    let dir = base_dir.join(format!("ipvnet-bench-{}", std::process::id()));
    let rounds = 2000;
    let base = measure(&dir, 1, rounds);
    println!("occupancy   median reserve+release (us)   ratio to 1%");
    println!("{:>8}%   {:>10.1}   {:>6.2}", 1, base, 1.0);
    for p in [50, 99] {
        let m = measure(&dir, p, rounds);
        println!("{:>8}%   {:>10.1}   {:>6.2}", p, m, m / base);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
