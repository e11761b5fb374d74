//! `ipvnet network create`: Docker-style arguments (the fields clap fills
//! from --subnet/--gateway/--ip-range/-o/--internal/--ipv4/NAME) through
//! `network::plan`, the pure validation that `commands::network::create`
//! runs before touching the kernel, against networks created before.
//!
//! Checks: no panic; an accepted network is one the rest of ipvnet can live
//! with: valid name, non-overlapping subnets (with each other and with the
//! existing networks), gateways and ranges inside their subnet, a sane MTU,
//! a usable parent name, a JSON form that reads back identical, and an
//! address pool whose first free address is a legal container address.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipnetwork::IpNetwork;
use ipvnet::ipam::{check_static, Bitmap, Pool};
use ipvnet::netlink::{check_ifname, IpvlanMode};
use ipvnet::network::{check_name, dummy_name, is_network_or_broadcast, overlaps, plan, CreateRequest, Network};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Name {
    Short(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Cidr {
    /// Host bits cleared: a valid network most of the time.
    V4([u8; 4], u8),
    V6([u16; 8], u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Addr {
    /// An offset into the n-th subnet of the request (likely inside it).
    In(u8, u32),
    V4([u8; 4]),
    V6([u16; 8]),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Opt {
    Parent(u8),
    Mode(u8),
    Flag(u8),
    Mtu(u32),
    K8s(Vec<String>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Args {
    name: Name,
    subnets: Vec<Cidr>,
    gateways: Vec<Addr>,
    ip_ranges: Vec<Cidr>,
    internal: bool,
    no_ipv4: bool,
    opts: Vec<Opt>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    before: Vec<Args>,
    args: Args,
}

fn cidr(c: &Cidr) -> String {
    match c {
        Cidr::V4(o, p) => {
            let p = p % 34;
            let bits = u32::from_be_bytes(*o) & if p == 0 { 0 } else { u32::MAX << (32 - p.min(32)) };
            format!("{}/{p}", Ipv4Addr::from(bits))
        }
        Cidr::V6(s, p) => {
            let p = *p as u32 % 130;
            let v = u128::from(Ipv6Addr::from(*s)) & if p == 0 { 0 } else { u128::MAX << (128 - p.min(128)) };
            format!("{}/{p}", Ipv6Addr::from(v))
        }
        Cidr::Raw(s) => s.clone(),
    }
}

fn addr(a: &Addr, subnets: &[String]) -> String {
    match a {
        Addr::In(i, off) => {
            let Some(net) = (!subnets.is_empty()).then(|| &subnets[*i as usize % subnets.len()]) else {
                return "10.0.0.1".into();
            };
            match net.parse::<IpNetwork>() {
                Ok(IpNetwork::V4(n)) => Ipv4Addr::from(u32::from(n.network()).wrapping_add(*off)).to_string(),
                Ok(IpNetwork::V6(n)) => Ipv6Addr::from(u128::from(n.network()).wrapping_add(*off as u128)).to_string(),
                Err(_) => net.clone(),
            }
        }
        Addr::V4(o) => Ipv4Addr::from(*o).to_string(),
        Addr::V6(s) => Ipv6Addr::from(*s).to_string(),
        Addr::Raw(s) => s.clone(),
    }
}

fn opt(o: &Opt) -> String {
    const PARENTS: &[&str] = &["eth0", "eth0.10", "eth1", "lo", "", "eth0.0", "eth0.4095", "a/b", "abcdefghijklmnop"];
    const MODES: &[&str] = &["l2", "l3", "l3s", "L2", "l4", ""];
    const FLAGS: &[&str] = &["bridge", "private", "vepa", "Private", "both", ""];
    match o {
        Opt::Parent(i) => format!("parent={}", PARENTS[*i as usize % PARENTS.len()]),
        Opt::Mode(i) => format!("ipvlan_mode={}", MODES[*i as usize % MODES.len()]),
        Opt::Flag(i) => format!("ipvlan_flag={}", FLAGS[*i as usize % FLAGS.len()]),
        Opt::Mtu(m) => format!("{}={m}", if m % 2 == 0 { "mtu" } else { "com.docker.network.driver.mtu" }),
        Opt::K8s(list) => format!("k8s_namespaces={}", list.join(",")),
        Opt::Raw(s) => s.clone(),
    }
}

fn request(a: &Args) -> CreateRequest {
    let subnets: Vec<String> = a.subnets.iter().take(4).map(cidr).collect();
    CreateRequest {
        name: match &a.name {
            Name::Short(b) => format!("n{}", b % 4),
            Name::Raw(s) => s.clone(),
        },
        driver: "ipvlan".into(),
        gateways: a.gateways.iter().take(4).map(|g| addr(g, &subnets)).collect(),
        ip_ranges: a.ip_ranges.iter().take(4).map(cidr).collect(),
        subnets,
        internal: a.internal,
        ipv4: !a.no_ipv4,
        options: a.opts.iter().take(8).map(opt).collect(),
    }
}

fn check(net: &Network, existing: &[Network]) {
    check_name(&net.name).expect("accepted an invalid name");
    assert_eq!(net.driver, "ipvlan");
    assert!(!net.subnets.is_empty(), "a network without a subnet: {net:?}");
    check_ifname(&net.parent).expect("a parent the kernel would refuse");
    assert_ne!(net.parent, "lo");
    if net.owned_parent.is_some() {
        assert_eq!(net.parent, dummy_name(&net.id));
    }
    if let Some(m) = net.mtu {
        assert!((68..=65535).contains(&m), "mtu {m}");
    }
    for (i, s) in net.subnets.iter().enumerate() {
        assert_eq!(s.subnet.ip(), s.subnet.network(), "host bits kept in {}", s.subnet);
        for o in &net.subnets[i + 1..] {
            assert!(!overlaps(&s.subnet, &o.subnet), "{} overlaps {}", s.subnet, o.subnet);
        }
        for n in existing {
            for o in &n.subnets {
                assert!(!overlaps(&s.subnet, &o.subnet), "{} overlaps {} of {}", s.subnet, o.subnet, n.name);
            }
        }
        if let Some(g) = s.gateway {
            assert!(s.subnet.contains(g), "gateway {g} outside {}", s.subnet);
            assert!(!is_network_or_broadcast(&s.subnet, g), "gateway {g} is network/broadcast of {}", s.subnet);
            assert_eq!(net.mode, IpvlanMode::L2, "a gateway in {}", net.mode);
        }
        if let Some(r) = s.ip_range {
            assert_eq!(r.is_ipv4(), s.subnet.is_ipv4());
            assert!(s.subnet.contains(r.network()) && r.prefix() >= s.subnet.prefix(), "range {r} outside {}", s.subnet);
        }
        // The allocator must be able to start on it, and its first pick must
        // be an address a container may hold.
        let pool = Pool::new(s);
        assert!(pool.slots() > 0);
        let bm = Bitmap::new(pool.slots());
        let mut words = vec![0u64; bm.len()];
        bm.init(&mut words, pool.reserved()).expect("bitmap init");
        if let Some(slot) = bm.find_free(&mut words).expect("find_free") {
            let ip: IpAddr = pool.addr(slot);
            check_static(s, ip).unwrap_or_else(|e| panic!("first free address {ip} of {}: {e}", s.subnet));
            if let Some(r) = s.ip_range {
                assert!(r.contains(ip), "{ip} outside range {r}");
            }
        }
    }
    // What is written to networks/NAME.json reads back the same.
    let json = serde_json::to_vec_pretty(net).expect("serialize");
    let back: Network = serde_json::from_slice(&json).expect("read back");
    assert_eq!(&back, net);
}

fuzz_target!(|input: Input| {
    let mut existing: Vec<Network> = Vec::new();
    for (i, a) in input.before.iter().take(4).enumerate() {
        if let Ok((net, _)) = plan(&request(a), &existing, format!("{i:064x}"), "2026-01-01T00:00:00Z".into()) {
            existing.push(net);
        }
    }
    let req = request(&input.args);
    let res = plan(&req, &existing, "f".repeat(64), "2026-01-01T00:00:00Z".into());
    // IPVNET_FUZZ_DEBUG=1: show what each input asked and got (to pick seeds).
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *DEBUG.get_or_init(|| std::env::var_os("IPVNET_FUZZ_DEBUG").is_some()) {
        eprintln!("before: {}\nrequest: {req:?}\nresult: {res:?}", existing.len());
    }
    if let Ok((net, _warnings)) = res {
        check(&net, &existing);
    }
});
