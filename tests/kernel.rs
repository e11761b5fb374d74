//! The netlink layer against a real kernel.
//!
//! The ignored tests need root and a kernel with the ipvlan, 8021q and dummy
//! modules: tests/guest runs this binary in the QEMU guest as
//! `kernel-HASH --ignored --test-threads=1` after `modprobe ipvlan 8021q dummy`.
//! They observe the results with ip(8), independently of the code under test.
//! Every test uses unique names and removes what it created, even on failure.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnetwork::IpNetwork;
use ipvnet::netlink::{check_ifname, IpvlanFlag, IpvlanMode, IpvlanRequest, Link, Netlink};
use ipvnet::netns;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A unique interface / namespace name (at most 15 bytes).
fn uniq(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("k{tag}{:x}x{n}", std::process::id() & 0xffff);
    check_ifname(&name).unwrap();
    name
}

/// Run ip(8); returns (success, stdout + stderr).
fn ip_try(args: &[&str]) -> (bool, String) {
    let out = Command::new("ip").args(args).output().expect("run ip(8)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ip(args: &[&str]) -> String {
    let (ok, text) = ip_try(args);
    assert!(ok, "ip {} failed: {text}", args.join(" "));
    text
}

/// A named network namespace made with `ip netns add`, removed on drop.
struct Ns {
    name: String,
    file: std::fs::File,
}

impl Ns {
    fn new() -> Ns {
        let name = uniq("ns");
        ip(&["netns", "add", &name]);
        let file = netns::open(&PathBuf::from("/run/netns").join(&name)).unwrap();
        Ns { name, file }
    }

    fn nl(&self) -> Netlink {
        Netlink::open_in(self.file.as_fd()).unwrap()
    }

    /// ip(8) inside the namespace.
    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = ip_try(&["netns", "del", &self.name]);
    }
}

/// A link in the root namespace, deleted (by name) on drop.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = ip_try(&["link", "del", &self.0]);
    }
}

/// A dummy link (an Ethernet device: a valid ipvlan parent) in the root
/// namespace.
fn dummy(nl: &mut Netlink) -> (Guard, Link) {
    let name = uniq("d");
    nl.create_dummy(&name).unwrap();
    let guard = Guard(name.clone());
    let link = nl.link(&name).unwrap().expect("dummy just created");
    (guard, link)
}

fn req<'a>(name: &'a str, parent: &Link, mode: IpvlanMode, flag: IpvlanFlag) -> IpvlanRequest<'a> {
    IpvlanRequest {
        name,
        parent: parent.index,
        mode,
        flag,
        mtu: None,
        netns: None,
    }
}

/// The line of `ip addr` output that shows `needle`.
fn addr_line<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {out}"))
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn dummy_and_vlan_are_created_read_back_and_deleted() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    assert_eq!(d.kind.as_deref(), Some("dummy"));
    assert!(!d.up, "a new link is down");
    assert_eq!(d.parent, None);
    assert_eq!(nl.link_by_index(d.index).unwrap().as_ref(), Some(&d));
    assert!(ip(&["-d", "link", "show", &d.name]).contains("dummy"));

    nl.set_up(d.index).unwrap();
    assert!(nl.link(&d.name).unwrap().unwrap().up);
    assert!(ip(&["link", "show", &d.name]).contains(",UP"));

    let vname = uniq("v");
    nl.create_vlan(&vname, d.index, 10).unwrap();
    let _gv = Guard(vname.clone());
    let links = nl.links().unwrap();
    let v = links
        .iter()
        .find(|l| l.name == vname)
        .expect("vlan listed by links()");
    assert_eq!(v.kind.as_deref(), Some("vlan"));
    assert_eq!(v.vlan_id, Some(10));
    assert_eq!(v.parent, Some(d.index));
    assert_eq!(v.mtu, d.mtu, "a vlan inherits its parent's MTU");
    assert!(links.iter().any(|l| l.name == "lo" && l.kind.is_none()));
    assert!(ip(&["-d", "link", "show", &vname]).contains("vlan protocol 802.1Q id 10"));

    // Out-of-range ids never reach the kernel.
    let e = nl.create_vlan(&uniq("v"), d.index, 4095).unwrap_err();
    assert!(
        e.to_string()
            .contains("vlan id 4095 is out of range 1-4094"),
        "{e}"
    );

    nl.delete_link(v.index).unwrap();
    assert_eq!(nl.link(&vname).unwrap(), None);
    assert_eq!(nl.link_by_index(v.index).unwrap(), None);
    let e = nl.delete_link(v.index).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
    assert!(e.to_string().contains(&format!("index {}", v.index)), "{e}");
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn existing_names_and_missing_parents_are_reported_by_name() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);

    let e = nl.create_dummy(&d.name).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(
        e.to_string()
            .contains(&format!("link {} already exists", d.name)),
        "{e}"
    );

    let e = nl.create_vlan(&d.name, d.index, 20).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("link {} already exists", d.name)),
        "{e}"
    );

    let e = nl
        .create_ipvlan(&req(&d.name, &d, IpvlanMode::L2, IpvlanFlag::Bridge))
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");

    // A parent index that does not exist.
    let name = uniq("i");
    let gone = IpvlanRequest {
        name: &name,
        parent: 999_999,
        mode: IpvlanMode::L2,
        flag: IpvlanFlag::Bridge,
        mtu: None,
        netns: None,
    };
    let e = nl.create_ipvlan(&gone).unwrap_err();
    println!("ipvlan on a missing parent: {e}");
    assert!(e.to_string().contains("999999"), "{e}");
    assert_eq!(nl.link(&name).unwrap(), None);

    // Looking up an absent link is not an error.
    assert_eq!(nl.link(&uniq("none")).unwrap(), None);
    assert!(nl
        .link("bad/name")
        .unwrap_err()
        .to_string()
        .contains("\"bad/name\""));
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn ipvlan_is_born_in_the_target_namespace_with_each_mode_and_flag() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    let ns = Ns::new();
    let mut nsl = ns.nl();

    // A fresh namespace only has lo.
    let names: Vec<String> = nsl.links().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["lo"]);

    for mode in IpvlanMode::ALL {
        for flag in IpvlanFlag::ALL {
            let name = uniq("i");
            nl.create_ipvlan(&IpvlanRequest {
                netns: Some(ns.file.as_fd()),
                ..req(&name, &d, mode, flag)
            })
            .unwrap_or_else(|e| panic!("{mode}/{flag}: {e}"));
            assert_eq!(
                nl.link(&name).unwrap(),
                None,
                "{name} must not appear in the root namespace"
            );
            let l = nsl
                .link(&name)
                .unwrap()
                .unwrap_or_else(|| panic!("{name} not in the namespace"));
            assert_eq!(l.kind.as_deref(), Some("ipvlan"));
            assert_eq!(l.ipvlan, Some((mode, flag)), "read back {name}");
            assert_eq!(l.mtu, d.mtu, "without an MTU the slave follows its parent");
            // IFLA_LINK names the parent's index in the namespace it lives in.
            assert_eq!(l.parent, Some(d.index));
            let shown = ns.ip(&["-d", "link", "show", &name]);
            let want = format!("ipvlan  mode {mode} {flag}");
            assert!(
                shown.contains(&want),
                "ip -d link shows {shown:?}, want {want:?}"
            );
            nsl.delete_link(l.index).unwrap();
            assert_eq!(nsl.link(&name).unwrap(), None);
        }
    }
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn mode_and_flag_belong_to_the_parent_latest_wins() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    let (a, b) = (uniq("i"), uniq("i"));
    nl.create_ipvlan(&req(&a, &d, IpvlanMode::L2, IpvlanFlag::Private))
        .unwrap();
    let _ga = Guard(a.clone());
    nl.create_ipvlan(&req(&b, &d, IpvlanMode::L3, IpvlanFlag::Vepa))
        .unwrap();
    let _gb = Guard(b.clone());
    // The first slave now reports the second one's settings.
    assert_eq!(
        nl.link(&a).unwrap().unwrap().ipvlan,
        Some((IpvlanMode::L3, IpvlanFlag::Vepa))
    );
    assert_eq!(
        nl.link(&b).unwrap().unwrap().ipvlan,
        Some((IpvlanMode::L3, IpvlanFlag::Vepa))
    );
    // Deleting the parent deletes its slaves.
    nl.delete_link(d.index).unwrap();
    assert_eq!(nl.link(&a).unwrap(), None);
    assert_eq!(nl.link(&b).unwrap(), None);
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn ipvlan_on_a_vlan_parent_with_explicit_mtu() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    let vname = uniq("v");
    nl.create_vlan(&vname, d.index, 4094).unwrap();
    let _gv = Guard(vname.clone());
    let v = nl.link(&vname).unwrap().unwrap();
    assert_eq!(v.vlan_id, Some(4094));
    let name = uniq("i");
    nl.create_ipvlan(&IpvlanRequest {
        mtu: Some(1400),
        ..req(&name, &v, IpvlanMode::L3s, IpvlanFlag::Bridge)
    })
    .unwrap();
    let _gi = Guard(name.clone());
    let l = nl.link(&name).unwrap().unwrap();
    assert_eq!(
        (l.parent, l.mtu, l.ipvlan),
        (
            Some(v.index),
            1400,
            Some((IpvlanMode::L3s, IpvlanFlag::Bridge))
        )
    );
    assert!(ip(&["link", "show", &name]).contains("mtu 1400"));

    // Observed on 6.1: an explicit MTU above the parent's is accepted (the
    // slave's maximum is 65535), so callers must check it themselves.
    let big = uniq("i");
    nl.create_ipvlan(&IpvlanRequest {
        mtu: Some(9000),
        ..req(&big, &v, IpvlanMode::L3s, IpvlanFlag::Bridge)
    })
    .unwrap();
    let _gb = Guard(big.clone());
    assert_eq!(nl.link(&big).unwrap().unwrap().mtu, 9000);
    // Beyond what any device allows it is refused, naming link and value.
    let huge = uniq("i");
    let e = nl
        .create_ipvlan(&IpvlanRequest {
            mtu: Some(70000),
            ..req(&huge, &v, IpvlanMode::L3s, IpvlanFlag::Bridge)
        })
        .unwrap_err();
    println!("ipvlan MTU 70000: {e}");
    assert!(e.to_string().contains(&huge), "{e}");
    assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
    assert_eq!(nl.link(&huge).unwrap(), None);
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn the_new_name_must_be_free_in_both_namespaces() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    let ns = Ns::new();
    let mut nsl = ns.nl();
    // Taken only in the creating namespace: the kernel first looks the name
    // up there (and with NLM_F_EXCL refuses instead of modifying that link).
    let e = nl
        .create_ipvlan(&IpvlanRequest {
            netns: Some(ns.file.as_fd()),
            ..req(&d.name, &d, IpvlanMode::L2, IpvlanFlag::Bridge)
        })
        .unwrap_err();
    println!("ipvlan named like a root-namespace link into a namespace: {e}");
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("link {} already exists", d.name)),
        "{e}"
    );
    assert_eq!(
        nl.link(&d.name).unwrap().unwrap(),
        d,
        "the existing link is untouched"
    );
    // Taken only in the target namespace: refused when it is registered there.
    let only_there = uniq("d");
    nsl.create_dummy(&only_there).unwrap();
    let e = nl
        .create_ipvlan(&IpvlanRequest {
            netns: Some(ns.file.as_fd()),
            ..req(&only_there, &d, IpvlanMode::L2, IpvlanFlag::Bridge)
        })
        .unwrap_err();
    println!("ipvlan named like a link of the target namespace: {e}");
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("link {only_there} already exists")),
        "{e}"
    );
    assert_eq!(
        nsl.link(&only_there).unwrap().unwrap().kind.as_deref(),
        Some("dummy")
    );
    // Free in both: created in the target only.
    let free = uniq("i");
    nl.create_ipvlan(&IpvlanRequest {
        netns: Some(ns.file.as_fd()),
        ..req(&free, &d, IpvlanMode::L2, IpvlanFlag::Bridge)
    })
    .unwrap();
    assert!(nsl.link(&free).unwrap().is_some());
    assert_eq!(nl.link(&free).unwrap(), None);
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn ipvlan_parent_must_be_ethernet() {
    let mut nl = Netlink::open().unwrap();
    let lo = nl.link("lo").unwrap().unwrap();
    let name = uniq("i");
    let e = nl
        .create_ipvlan(&req(&name, &lo, IpvlanMode::L2, IpvlanFlag::Bridge))
        .unwrap_err();
    println!("ipvlan on lo: {e} (errno {:?})", e.errno());
    assert!(e.to_string().contains("lo (index 1)"), "{e}");
    assert!(
        e.to_string()
            .contains("parent lo (index 1) cannot carry ipvlan links"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("module"),
        "not a missing module: {e}"
    );
    assert_eq!(nl.link(&name).unwrap(), None);
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn parent_used_by_macvlan_is_busy() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    let mv = uniq("m");
    ip(&[
        "link", "add", "link", &d.name, "name", &mv, "type", "macvlan", "mode", "bridge",
    ]);
    let _gm = Guard(mv.clone());
    let name = uniq("i");
    let e = nl
        .create_ipvlan(&req(&name, &d, IpvlanMode::L2, IpvlanFlag::Bridge))
        .unwrap_err();
    println!("ipvlan on a macvlan parent: {e}");
    assert_eq!(e.errno(), Some(libc::EBUSY), "{e}");
    assert!(
        e.to_string().contains(&format!(
            "parent {} (index {}) is already in use by another driver (bridge, bond or macvlan)",
            d.name, d.index
        )),
        "{e}"
    );
    assert_eq!(nl.link(&name).unwrap(), None);
}

// ---------------------------------------------------------------------------
// Configuring a slave inside its namespace
// ---------------------------------------------------------------------------

/// An ipvlan slave born in `ns` under a temporary name, renamed to eth0
/// there, as the hook does.
fn slave_in(ns: &Ns, nl: &mut Netlink, parent: &Link, mode: IpvlanMode) -> Link {
    let tmp = uniq("t");
    nl.create_ipvlan(&IpvlanRequest {
        netns: Some(ns.file.as_fd()),
        ..req(&tmp, parent, mode, IpvlanFlag::Bridge)
    })
    .unwrap();
    let mut nsl = ns.nl();
    let l = nsl.link(&tmp).unwrap().unwrap();
    nsl.rename_link(l.index, "eth0").unwrap();
    assert_eq!(nsl.link(&tmp).unwrap(), None);
    let l = nsl.link("eth0").unwrap().unwrap();
    assert_eq!(l.kind.as_deref(), Some("ipvlan"));
    l
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn l2_slave_gets_mtu_addresses_and_gateway_routes() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    nl.set_up(d.index).unwrap();
    let ns = Ns::new();
    let mut nsl = ns.nl();
    let eth0 = slave_in(&ns, &mut nl, &d, IpvlanMode::L2);

    nsl.set_mtu(eth0.index, 1300).unwrap();
    assert_eq!(nsl.link_by_index(eth0.index).unwrap().unwrap().mtu, 1300);
    assert!(ns.ip(&["link", "show", "eth0"]).contains("mtu 1300"));
    let e = nsl.set_mtu(eth0.index, 70000).unwrap_err();
    println!("MTU 70000: {e}");
    assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
    assert!(
        e.to_string().contains("eth0") && e.to_string().contains("70000"),
        "{e}"
    );

    nsl.set_up(eth0.index).unwrap();
    let lo = nsl.link("lo").unwrap().unwrap();
    nsl.set_up(lo.index).unwrap();
    assert!(nsl.link("eth0").unwrap().unwrap().up);

    // Renaming an up link is refused by the kernel.
    let e = nsl.rename_link(eth0.index, "eth1").unwrap_err();
    println!("rename while up: {e}");
    assert_eq!(e.errno(), Some(libc::EBUSY), "{e}");

    assert!(!nsl.has_default_route(false).unwrap());
    assert!(!nsl.has_default_route(true).unwrap());

    nsl.add_address(eth0.index, net("10.77.1.5/24")).unwrap();
    nsl.add_address(eth0.index, net("fd77:1::5/64")).unwrap();
    let addrs = nsl.addresses(eth0.index).unwrap();
    assert!(addrs.contains(&net("10.77.1.5/24")), "{addrs:?}");
    assert!(addrs.contains(&net("fd77:1::5/64")), "{addrs:?}");
    assert!(nsl
        .addresses(lo.index)
        .unwrap()
        .contains(&net("127.0.0.1/8")));
    let v4 = ns.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(v4.contains("inet 10.77.1.5/24 brd 10.77.1.255"), "{v4}");
    let v6 = ns.ip(&["-6", "addr", "show", "dev", "eth0"]);
    let line = addr_line(&v6, "inet6 fd77:1::5/64");
    // The kernel's own link-local address does go through DAD (it may
    // still be tentative here); the ones we add must be usable at once.
    assert!(!line.contains("tentative"), "NODAD: {v6}");
    assert!(line.contains("nodad"), "{v6}");

    let e = nsl
        .add_address(eth0.index, net("10.77.1.5/24"))
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(
        e.to_string().contains("10.77.1.5 is already on this link"),
        "{e}"
    );

    // A gateway outside every subnet of the link is unreachable.
    let e = nsl
        .add_default_route(false, Some("10.99.0.1".parse().unwrap()), eth0.index)
        .unwrap_err();
    println!("unreachable gateway: {e}");
    assert_eq!(e.errno(), Some(libc::ENETUNREACH), "{e}");
    let e = nsl
        .add_default_route(false, Some("fd77:1::1".parse().unwrap()), eth0.index)
        .unwrap_err();
    assert!(e.to_string().contains("not an IPv4 address"), "{e}");

    nsl.add_default_route(false, Some("10.77.1.1".parse().unwrap()), eth0.index)
        .unwrap();
    nsl.add_default_route(true, Some("fd77:1::1".parse().unwrap()), eth0.index)
        .unwrap();
    let r4 = ns.ip(&["route", "show", "default"]);
    assert!(r4.contains("default via 10.77.1.1 dev eth0"), "{r4}");
    let r6 = ns.ip(&["-6", "route", "show", "default"]);
    assert!(r6.contains("default via fd77:1::1 dev eth0"), "{r6}");
    assert!(nsl.has_default_route(false).unwrap());
    assert!(nsl.has_default_route(true).unwrap());
    // The root namespace's routes are not the namespace's.
    assert!(!ip(&["route", "show", "default"]).contains("10.77.1.1"));

    let e = nsl
        .add_default_route(false, Some("10.77.1.1".parse().unwrap()), eth0.index)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(
        e.to_string().contains("a default route already exists"),
        "{e}"
    );
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn l3_slave_gets_device_only_default_routes() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    nl.set_up(d.index).unwrap();
    let ns = Ns::new();
    let mut nsl = ns.nl();
    let eth0 = slave_in(&ns, &mut nl, &d, IpvlanMode::L3);

    // IPv6 routes need the link up (ENETDOWN otherwise).
    let e = nsl.add_default_route(true, None, eth0.index).unwrap_err();
    println!("v6 route on a down link: {e}");
    nsl.set_up(eth0.index).unwrap();
    nsl.add_address(eth0.index, net("10.78.0.9/32")).unwrap();
    nsl.add_address(eth0.index, net("fd78::9/128")).unwrap();
    nsl.add_default_route(false, None, eth0.index).unwrap();
    nsl.add_default_route(true, None, eth0.index).unwrap();
    let r4 = ns.ip(&["route", "show", "default"]);
    assert!(
        r4.contains("default dev eth0") && r4.contains("scope link"),
        "{r4}"
    );
    let r6 = ns.ip(&["-6", "route", "show", "default"]);
    assert!(r6.contains("default dev eth0"), "{r6}");
    assert!(!r4.contains("via") && !r6.contains("via"));
    assert!(nsl.has_default_route(false).unwrap());
    assert!(nsl.has_default_route(true).unwrap());
    let v6 = ns.ip(&["-6", "addr", "show", "dev", "eth0"]);
    let line = addr_line(&v6, "inet6 fd78::9/128");
    assert!(
        !line.contains("tentative") && line.contains("nodad"),
        "{v6}"
    );
    // Host routes (/32) have no broadcast.
    assert!(!ns
        .ip(&["-4", "addr", "show", "dev", "eth0"])
        .contains("brd"));

    // Deleting the slave from inside the namespace takes its routes along.
    nsl.delete_link(eth0.index).unwrap();
    assert!(!nsl.has_default_route(false).unwrap());
    assert!(!nsl.has_default_route(true).unwrap());
    assert!(nl.link(&d.name).unwrap().is_some(), "the parent stays");
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn duplicate_address_on_two_siblings_is_addrinuse() {
    let mut nl = Netlink::open().unwrap();
    let (_g, d) = dummy(&mut nl);
    let (a, b) = (Ns::new(), Ns::new());
    let ea = slave_in(&a, &mut nl, &d, IpvlanMode::L2);
    let eb = slave_in(&b, &mut nl, &d, IpvlanMode::L2);
    let (mut na, mut nb) = (a.nl(), b.nl());
    for addr in ["10.79.0.2/24", "fd79::2/64"] {
        na.add_address(ea.index, net(addr)).unwrap();
        let e = nb.add_address(eb.index, net(addr)).unwrap_err();
        println!("duplicate {addr}: {e}");
        assert_eq!(e.errno(), Some(libc::EADDRINUSE), "{e}");
        let ip_only = addr.split('/').next().unwrap();
        assert!(
            e.to_string().contains(&format!(
                "address {ip_only} is already assigned to an ipvlan device on this parent"
            )),
            "{e}"
        );
        assert!(e.to_string().contains("eth0"), "{e}");
        assert!(!nb.addresses(eb.index).unwrap().contains(&net(addr)));
    }
    // Once the holder is gone the address is free again.
    na.delete_link(ea.index).unwrap();
    nb.add_address(eb.index, net("10.79.0.2/24")).unwrap();
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn open_in_a_process_namespace_and_reuse_the_socket_from_any_thread() {
    let ns = Ns::new();
    // /proc/PID/ns/net of a process inside the namespace, like a container's.
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sleep", "30"])
        .spawn()
        .unwrap();
    let path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
    let mut nsfile = None;
    for _ in 0..100 {
        let f = netns::open(&path).unwrap();
        if netns::same(f.as_fd(), ns.file.as_fd()).unwrap() {
            nsfile = Some(f);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let nsfile = nsfile.expect("the child entered the namespace");
    let mut nsl = Netlink::open_in(nsfile.as_fd()).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // The socket stays in the namespace whichever thread uses it.
    let names = std::thread::spawn(move || {
        nsl.links()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(names, ["lo"]);
    assert!(
        !netns::same(netns::current().unwrap().as_fd(), ns.file.as_fd()).unwrap(),
        "the caller never moved"
    );
    let e = netns::open(Path::new("/run/netns/does-not-exist")).unwrap_err();
    assert!(e.to_string().contains("/run/netns/does-not-exist"), "{e}");
}

#[test]
#[ignore = "needs the guest kernel: run by tests/guest"]
fn dumps_stay_whole_while_links_come_and_go() {
    // Enough links that one dump spans several answers, so concurrent
    // changes can interrupt it (NLM_F_DUMP_INTR) and force retries.
    let ns = Ns::new();
    let mut nl = ns.nl();
    let stable: Vec<String> = (0..120).map(|_| uniq("s")).collect();
    for name in &stable {
        nl.create_dummy(name).unwrap();
    }
    // Pace the changes after how long a quiet dump takes here (emulated
    // guests are slow): a table that never stops changing can never be
    // dumped consistently, one that changes every few dumps must be.
    let t0 = std::time::Instant::now();
    assert!(nl.links().unwrap().len() > stable.len());
    let pause = (t0.elapsed() * 4).max(std::time::Duration::from_millis(10));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rounds = std::sync::Arc::new(AtomicU32::new(0));
    let churn = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        let mut nl = ns.nl();
        let name = uniq("c");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                nl.create_dummy(&name).unwrap();
                let l = nl.link(&name).unwrap().unwrap();
                nl.delete_link(l.index).unwrap();
                rounds.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(pause);
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut dumps = 0;
    while dumps < 30
        || (rounds.load(Ordering::Relaxed) < 10 && std::time::Instant::now() < deadline)
    {
        let links = nl.links().unwrap();
        let mut indexes: Vec<u32> = links.iter().map(|l| l.index).collect();
        indexes.sort();
        indexes.dedup();
        assert_eq!(indexes.len(), links.len(), "no link listed twice");
        for name in &stable {
            assert!(
                links.iter().any(|l| &l.name == name),
                "{name} missing from a dump"
            );
        }
        dumps += 1;
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    println!(
        "{} create/delete rounds (every {pause:?}) ran during {dumps} dumps; {} dumps were retried after NLM_F_DUMP_INTR",
        rounds.load(Ordering::Relaxed),
        nl.dump_retries()
    );
}

// ---------------------------------------------------------------------------
// A kernel without the modules (the host this is built on)
// ---------------------------------------------------------------------------

/// Runs in the ordinary (not ignored) suite: on a kernel that lacks dummy
/// (the build host), the error must name the missing module. Where the
/// check is impossible it says why instead of passing silently.
#[test]
fn missing_kernel_module_is_named() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIPPED missing_kernel_module_is_named: needs root to create links");
        return;
    }
    let name = uniq("probe");
    let mut nl = match Netlink::open() {
        Ok(nl) => nl,
        Err(e) => {
            println!("SKIPPED missing_kernel_module_is_named: no netlink socket: {e}");
            return;
        }
    };
    match nl.create_dummy(&name) {
        Ok(()) => {
            let l = nl.link(&name).unwrap().unwrap();
            nl.delete_link(l.index).unwrap();
            println!("SKIPPED missing_kernel_module_is_named: this kernel has dummy support, the message cannot be checked here");
        }
        Err(e) => {
            println!("dummy on this kernel: {e}");
            assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
            assert!(
                e.to_string().contains(&format!("create dummy link {name}")),
                "{e}"
            );
            assert!(
                e.to_string().contains(
                    "the kernel has no dummy support (module dummy not loaded/available)"
                ),
                "{e}"
            );
            // ipvlan and vlan are checked the same way; the kind is looked
            // up before the parent, so lo serves as parent.
            let lo = nl.link("lo").unwrap().unwrap();
            let iname = uniq("probe");
            match nl.create_ipvlan(&req(&iname, &lo, IpvlanMode::L2, IpvlanFlag::Bridge)) {
                Ok(()) => panic!("ipvlan on lo cannot succeed"),
                Err(e) if e.to_string().contains("cannot carry ipvlan") => {
                    println!("this kernel has ipvlan: {e}")
                }
                Err(e) => {
                    println!("ipvlan on this kernel: {e}");
                    assert!(
                        e.to_string()
                            .contains("no ipvlan support (module ipvlan not loaded/available)"),
                        "{e}"
                    );
                }
            }
            match nl.create_vlan(&uniq("probe"), lo.index, 5) {
                Ok(()) => panic!("vlan on lo cannot succeed"),
                Err(e) => {
                    println!("vlan on this kernel: {e}");
                    if e.to_string().contains("module") {
                        assert!(
                            e.to_string().contains("module 8021q not loaded/available"),
                            "{e}"
                        );
                    }
                }
            }
        }
    }
}
