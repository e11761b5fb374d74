//! Network definitions: what `ipvnet network create` accepts (Docker's
//! `docker network create -d ipvlan` flags) and what is stored for each network.
//!
//! Everything here is pure: turning a request into a validated [`Network`]
//! needs no root and no kernel. The kernel side (the parent link) is done by
//! `commands::network`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::netlink::{check_ifname, IpvlanFlag, IpvlanMode};

/// The longest network name we accept; names become file names.
pub const MAX_NAME_LEN: usize = 64;

/// Docker's default address pools for networks created without `--subnet`.
const DEFAULT_POOL_FIRST: u8 = 18;
const DEFAULT_POOL_LAST: u8 = 31;

/// One subnet of a network, with its gateway and the range addresses are
/// handed out from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<IpNetwork>,
}

/// Links that ipvnet created for a network and so deletes on `network rm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnedParent {
    /// An 802.1q sub-interface `NAME.VID` created on demand.
    Vlan,
    /// A dummy link that isolates a network with no parent.
    Dummy,
}

/// A network as stored in `STATE/networks/NAME.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub parent: String,
    /// Set when ipvnet created the parent link; `network rm` then deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_parent: Option<OwnedParent>,
    pub mode: IpvlanMode,
    pub flag: IpvlanFlag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub internal: bool,
    pub subnets: Vec<Subnet>,
    /// Kubernetes namespaces whose pods may join (`-o k8s_namespaces=a,b` or `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_namespaces: Option<Vec<String>>,
    /// The `-o` options as given, for `inspect`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub created: String,
}

impl Network {
    /// The gateway of a family, when the network should route through one.
    pub fn gateway(&self, v6: bool) -> Option<IpAddr> {
        self.subnets
            .iter()
            .filter(|s| s.subnet.is_ipv6() == v6)
            .find_map(|s| s.gateway)
    }

    pub fn has_family(&self, v6: bool) -> bool {
        self.subnets.iter().any(|s| s.subnet.is_ipv6() == v6)
    }

    /// Whether a pod of Kubernetes namespace `ns` may join this network.
    pub fn allows_k8s_namespace(&self, ns: &str) -> bool {
        match &self.k8s_namespaces {
            None => false,
            Some(list) => list.iter().any(|n| n == "*" || n == ns),
        }
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// What the user asked for, as parsed from the command line.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ip_ranges: Vec<String>,
    pub internal: bool,
    /// `--ipv4=false` gives an IPv6-only network; by default a network without
    /// an IPv4 subnet gets one from the default pool, as Docker did.
    pub ipv4: bool,
    pub options: Vec<String>,
}

/// Check a network name: it becomes a file name, so no path tricks.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    if !ok || name.len() > MAX_NAME_LEN {
        return Err(Error::new(format!(
            "invalid network name {name:?}: use letters, digits, '_', '.' and '-', \
             starting with a letter or digit, at most {MAX_NAME_LEN} characters"
        )));
    }
    Ok(())
}

/// `NAME.VID` → (`NAME`, VID), when the name has that form; the VID is
/// checked to be 1-4094.
pub fn split_vlan(parent: &str) -> Result<Option<(&str, u16)>> {
    let Some((base, vid)) = parent.rsplit_once('.') else { return Ok(None) };
    if base.is_empty() || vid.is_empty() || !vid.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match vid.parse::<u32>() {
        Ok(v) if (1..=4094).contains(&v) => Ok(Some((base, v as u16))),
        _ => Err(Error::new(format!(
            "invalid VLAN id {vid} in parent {parent:?}: it must be 1 to 4094"
        ))),
    }
}

fn parse_cidr(flag: &str, s: &str) -> Result<IpNetwork> {
    let net: IpNetwork = s
        .parse()
        .map_err(|_| Error::new(format!("invalid {flag} {s:?}: not an address/prefix (CIDR)")))?;
    if !s.contains('/') {
        return Err(Error::new(format!("invalid {flag} {s:?}: a prefix length is required (like 192.168.1.0/24)")));
    }
    if net.ip() != net.network() {
        return Err(Error::new(format!(
            "invalid {flag} {s:?}: host bits are set, did you mean {}/{}?",
            net.network(),
            net.prefix()
        )));
    }
    Ok(net)
}

/// Number of addresses in a subnet, as u128 (a /0 IPv6 saturates).
pub fn subnet_len(net: &IpNetwork) -> u128 {
    let bits = if net.is_ipv4() { 32 } else { 128 } - net.prefix() as u32;
    if bits >= 128 { u128::MAX } else { 1u128 << bits }
}

pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn u128_to_ip(v: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(v.into()) } else { IpAddr::V4((v as u32).into()) }
}

/// Whether two subnets share any address.
pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.is_ipv4() == b.is_ipv4() && (a.contains(b.network()) || b.contains(a.network()))
}

/// The first usable address of a subnet (Docker's default gateway).
fn first_usable(net: &IpNetwork) -> IpAddr {
    let base = ip_to_u128(net.network());
    let off = if subnet_len(net) > 2 { 1 } else { 0 };
    u128_to_ip(base + off, net.is_ipv6())
}

/// Whether `ip` is the network or (IPv4) broadcast address of `net`.
pub fn is_network_or_broadcast(net: &IpNetwork, ip: IpAddr) -> bool {
    if subnet_len(net) <= 2 {
        return false; // /31, /32, /127, /128: every address is a host
    }
    ip == net.network() || (net.is_ipv4() && ip == net.broadcast())
}

/// Parse `-o key=value` options into a map, refusing unknown keys.
fn parse_options(opts: &[String]) -> Result<BTreeMap<String, String>> {
    const KNOWN: &[&str] = &["parent", "ipvlan_mode", "ipvlan_flag", "mtu", "k8s_namespaces"];
    let mut map = BTreeMap::new();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| Error::new(format!("invalid option {o:?}: expected KEY=VALUE")))?;
        // Docker's generic spelling of the MTU option.
        let k = if k == "com.docker.network.driver.mtu" { "mtu" } else { k };
        if !KNOWN.contains(&k) {
            return Err(Error::new(format!(
                "unknown option {k:?} (known: {})",
                KNOWN.join(", ")
            )));
        }
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::new(format!("option {k:?} given twice")));
        }
    }
    Ok(map)
}

/// Pick the first default /16 (172.18.0.0/16 .. 172.31.0.0/16) that overlaps
/// no subnet of an existing network.
pub fn default_subnet(existing: &[Network]) -> Result<IpNetwork> {
    for second in DEFAULT_POOL_FIRST..=DEFAULT_POOL_LAST {
        let cand = IpNetwork::new(IpAddr::V4(Ipv4Addr::new(172, second, 0, 0)), 16).expect("valid /16");
        let taken = existing.iter().flat_map(|n| &n.subnets).any(|s| overlaps(&s.subnet, &cand));
        if !taken {
            return Ok(cand);
        }
    }
    Err(Error::new("no free default subnet left: 172.18.0.0/16 to 172.31.0.0/16 are all in use; give --subnet"))
}

/// Validate a create request against the existing networks and build the
/// network definition. Pure: the parent link is checked by the caller.
/// Returns the network and the warnings to show the user.
pub fn plan(req: &CreateRequest, existing: &[Network], id: String, created: String) -> Result<(Network, Vec<String>)> {
    let mut warnings = Vec::new();
    check_name(&req.name)?;
    if req.driver != "ipvlan" {
        return Err(Error::new(format!("unsupported driver {:?}: ipvnet only provides \"ipvlan\"", req.driver)));
    }
    if existing.iter().any(|n| n.name == req.name) {
        return Err(Error::new(format!("network {:?} already exists", req.name)));
    }
    let options = parse_options(&req.options)?;
    let mode: IpvlanMode = match options.get("ipvlan_mode") {
        Some(m) => m.parse().map_err(|e: Error| e.context("option ipvlan_mode"))?,
        None => IpvlanMode::L2,
    };
    let flag: IpvlanFlag = match options.get("ipvlan_flag") {
        Some(f) => f.parse().map_err(|e: Error| e.context("option ipvlan_flag"))?,
        None => IpvlanFlag::Bridge,
    };
    let mtu = match options.get("mtu") {
        Some(m) => match m.parse::<u32>() {
            Ok(v) if (68..=65535).contains(&v) => Some(v),
            _ => return Err(Error::new(format!("invalid option mtu={m:?}: it must be a number from 68 to 65535"))),
        },
        None => None,
    };
    let k8s_namespaces = match options.get("k8s_namespaces") {
        Some(list) => {
            let names: Vec<String> = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            for n in &names {
                let ok = n == "*"
                    || (n.len() <= 63
                        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !n.starts_with('-')
                        && !n.ends_with('-'));
                if !ok {
                    return Err(Error::new(format!("invalid option k8s_namespaces: {n:?} is not a Kubernetes namespace name")));
                }
            }
            Some(names)
        }
        None => None,
    };

    // Parent: given and non-empty, or a dummy (isolated network).
    let parent = options.get("parent").filter(|p| !p.is_empty()).cloned();
    if let Some(p) = &parent {
        check_ifname(p).map_err(|e| e.context("option parent"))?;
        if p == "lo" {
            return Err(Error::new("invalid option parent=lo: the loopback device cannot be an ipvlan parent"));
        }
    }
    // As in Docker, only --internal makes a network internal (no default
    // route); a parent-less network is isolated by its dummy parent alone.
    let internal = req.internal;

    // Subnets, then gateways and ranges matched to the subnet holding them.
    let mut subnets: Vec<Subnet> = Vec::new();
    for s in &req.subnets {
        let net = parse_cidr("--subnet", s)?;
        if let Some(other) = subnets.iter().find(|o| overlaps(&o.subnet, &net)) {
            return Err(Error::new(format!("--subnet {s} overlaps --subnet {}", other.subnet)));
        }
        subnets.push(Subnet { subnet: net, gateway: None, ip_range: None });
    }
    if !req.ipv4 && subnets.iter().any(|s| s.subnet.is_ipv4()) {
        return Err(Error::new("--ipv4=false contradicts an IPv4 --subnet"));
    }
    if req.ipv4 && !subnets.iter().any(|s| s.subnet.is_ipv4()) {
        // Docker gives every network an IPv4 subnet unless told otherwise.
        let net = default_subnet(existing)?;
        subnets.insert(0, Subnet { subnet: net, gateway: None, ip_range: None });
    }
    if subnets.is_empty() {
        return Err(Error::new("an IPv6-only network (--ipv4=false) needs an IPv6 --subnet"));
    }
    for s in &subnets {
        if let Some(n) = existing.iter().find(|n| n.subnets.iter().any(|o| overlaps(&o.subnet, &s.subnet))) {
            return Err(Error::new(format!("subnet {} overlaps a subnet of network {:?}", s.subnet, n.name)));
        }
    }
    for g in &req.gateways {
        let ip: IpAddr = g
            .parse()
            .map_err(|_| Error::new(format!("invalid --gateway {g:?}: not an IP address")))?;
        let Some(sub) = subnets.iter_mut().find(|s| s.subnet.contains(ip)) else {
            return Err(Error::new(format!("--gateway {g} is outside every subnet of the network")));
        };
        if sub.gateway.is_some() {
            return Err(Error::new(format!("--gateway {g}: subnet {} already has a gateway", sub.subnet)));
        }
        if is_network_or_broadcast(&sub.subnet, ip) {
            return Err(Error::new(format!("--gateway {g} is the network or broadcast address of {}", sub.subnet)));
        }
        sub.gateway = Some(ip);
    }
    for r in &req.ip_ranges {
        let range = parse_cidr("--ip-range", r)?;
        let Some(sub) = subnets
            .iter_mut()
            .find(|s| s.subnet.is_ipv4() == range.is_ipv4() && s.subnet.contains(range.network()) && s.subnet.prefix() <= range.prefix())
        else {
            return Err(Error::new(format!("--ip-range {r} is outside every subnet of the network")));
        };
        if sub.ip_range.is_some() {
            return Err(Error::new(format!("--ip-range {r}: subnet {} already has a range", sub.subnet)));
        }
        sub.ip_range = Some(range);
    }
    for s in &mut subnets {
        if s.subnet.is_ipv4() && s.subnet.prefix() > 30 {
            return Err(Error::new(format!("subnet {} is too small: use a /30 or larger", s.subnet)));
        }
        if s.subnet.is_ipv6() && s.subnet.prefix() > 126 {
            return Err(Error::new(format!("subnet {} is too small: use a /126 or larger", s.subnet)));
        }
        match mode {
            IpvlanMode::L2 => {
                if s.gateway.is_none() {
                    s.gateway = Some(first_usable(&s.subnet));
                }
            }
            // ARP is filtered in L3/L3S: routes are device-only, a gateway means nothing.
            IpvlanMode::L3 | IpvlanMode::L3s => {
                if let Some(g) = s.gateway.take() {
                    warnings.push(format!("--gateway {g} ignored: ipvlan_mode={mode} routes by device, not by gateway"));
                }
            }
        }
    }

    // The kernel keeps one mode and one flag per parent.
    if let Some(p) = &parent {
        if let Some(n) = existing.iter().find(|n| &n.parent == p && (n.mode != mode || n.flag != flag)) {
            return Err(Error::new(format!(
                "parent {p} is already used by network {:?} in ipvlan_mode={} ipvlan_flag={}; \
                 the kernel keeps one mode and flag per parent, so this network cannot use {mode}/{flag}",
                n.name, n.mode, n.flag
            )));
        }
    }

    let parent_name = match &parent {
        Some(p) => p.clone(),
        None => dummy_name(&id),
    };
    let owned_parent = if parent.is_none() { Some(OwnedParent::Dummy) } else { None };
    let network = Network {
        name: req.name.clone(),
        id,
        driver: "ipvlan".into(),
        parent: parent_name,
        owned_parent,
        mode,
        flag,
        mtu,
        internal,
        subnets,
        k8s_namespaces,
        options,
        created,
    };
    Ok((network, warnings))
}

/// The name of the dummy parent of an isolated network: 15 characters at most.
pub fn dummy_name(id: &str) -> String {
    format!("ipv-{}", &id[..11.min(id.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, args: &[&str]) -> CreateRequest {
        let mut r = CreateRequest { name: name.into(), driver: "ipvlan".into(), ipv4: true, ..Default::default() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = it.next().unwrap().to_string();
            match *a {
                "--subnet" => r.subnets.push(v),
                "--gateway" => r.gateways.push(v),
                "--ip-range" => r.ip_ranges.push(v),
                "-o" => r.options.push(v),
                _ => panic!("{a}"),
            }
        }
        r
    }

    fn plan_ok(r: &CreateRequest, existing: &[Network]) -> Network {
        plan(r, existing, "0123456789abcdef0123".into(), "now".into()).unwrap().0
    }

    fn plan_err(r: &CreateRequest, existing: &[Network]) -> String {
        plan(r, existing, "0123456789abcdef0123".into(), "now".into()).unwrap_err().to_string()
    }

    #[test]
    fn guide_l2_network_with_defaults() {
        let n = plan_ok(&req("db_net", &["--subnet", "192.168.1.0/24", "-o", "parent=eth0"]), &[]);
        assert_eq!(n.mode, IpvlanMode::L2);
        assert_eq!(n.flag, IpvlanFlag::Bridge);
        assert_eq!(n.parent, "eth0");
        assert!(!n.internal);
        assert_eq!(n.gateway(false), Some("192.168.1.1".parse().unwrap()));
        assert_eq!(n.owned_parent, None);
    }

    #[test]
    fn no_parent_is_isolated_on_a_dummy() {
        let n = plan_ok(&req("isolated1", &["--subnet", "192.168.10.0/24"]), &[]);
        assert!(!n.internal, "only --internal sets Internal, as in Docker");
        assert_eq!(n.owned_parent, Some(OwnedParent::Dummy));
        assert_eq!(n.parent, "ipv-0123456789a");
        assert!(n.parent.len() <= 15);
        let mut r = req("isolated2", &["--subnet", "192.168.11.0/24"]);
        r.internal = true;
        let n = plan_ok(&r, &[]);
        assert!(n.internal);
        assert_eq!(n.owned_parent, Some(OwnedParent::Dummy));
    }

    #[test]
    fn default_pool_skips_used_subnets() {
        let a = plan_ok(&req("isolated3", &[]), &[]);
        assert_eq!(a.subnets[0].subnet.to_string(), "172.18.0.0/16");
        let b = plan_ok(&req("isolated4", &[]), &[a.clone()]);
        assert_eq!(b.subnets[0].subnet.to_string(), "172.19.0.0/16");
        // An explicit subnet inside the pool pushes the default further.
        let c = plan_ok(&req("c", &["--subnet", "172.20.5.0/24"]), &[a.clone(), b.clone()]);
        let d = plan_ok(&req("d", &[]), &[a, b, c]);
        assert_eq!(d.subnets[0].subnet.to_string(), "172.21.0.0/16");
    }

    #[test]
    fn default_pool_exhausted() {
        let mut nets = Vec::new();
        for i in 0..14 {
            nets.push(plan_ok(&req(&format!("n{i}"), &[]), &nets));
        }
        assert!(plan_err(&req("x", &[]), &nets).contains("no free default subnet"));
    }

    #[test]
    fn ipv6_network_gets_default_ipv4_like_docker_unless_disabled() {
        let n = plan_ok(&req("v6", &["--subnet", "2001:db8:abc2::/64", "--gateway", "2001:db8:abc2::22", "-o", "parent=eth0.139"]), &[]);
        assert_eq!(n.subnets.len(), 2);
        assert_eq!(n.gateway(true), Some("2001:db8:abc2::22".parse().unwrap()));
        let mut r = req("v6only", &["--subnet", "2001:db8:abc2::/64"]);
        r.ipv4 = false;
        let n = plan_ok(&r, &[]);
        assert_eq!(n.subnets.len(), 1);
        assert!(!n.has_family(false));
    }

    #[test]
    fn gateways_match_their_subnets() {
        let n = plan_ok(
            &req("ipvlan140", &[
                "--subnet", "192.168.140.0/24", "--subnet", "192.168.142.0/24",
                "--gateway", "192.168.142.1", "--gateway", "192.168.140.1",
                "--subnet", "2001:db8:abc9::/64", "--gateway", "2001:db8:abc9::22",
                "-o", "parent=eth0.140", "-o", "ipvlan_mode=l2",
            ]),
            &[],
        );
        assert_eq!(n.subnets[0].gateway, Some("192.168.140.1".parse().unwrap()));
        assert_eq!(n.subnets[1].gateway, Some("192.168.142.1".parse().unwrap()));
        assert_eq!(n.subnets[2].gateway, Some("2001:db8:abc9::22".parse().unwrap()));
    }

    #[test]
    fn l3_ignores_gateway_with_warning() {
        let (n, w) = plan(
            &req("l3", &["--subnet", "192.168.214.0/24", "--gateway", "192.168.214.1", "-o", "ipvlan_mode=l3"]),
            &[], "ab".repeat(32), "now".into(),
        ).unwrap();
        assert_eq!(n.mode, IpvlanMode::L3);
        assert_eq!(n.gateway(false), None);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("192.168.214.1"));
    }

    #[test]
    fn errors_name_the_value() {
        assert!(plan_err(&req("x", &["--subnet", "192.168.1.0/33"]), &[]).contains("192.168.1.0/33"));
        assert!(plan_err(&req("x", &["--subnet", "banana"]), &[]).contains("banana"));
        assert!(plan_err(&req("x", &["--subnet", "192.168.1.5/24"]), &[]).contains("192.168.1.0/24"));
        assert!(plan_err(&req("x", &["--subnet", "192.168.1.0/24", "--gateway", "10.0.0.1"]), &[]).contains("10.0.0.1"));
        assert!(plan_err(&req("x", &["-o", "parent=averyveryverylongname"]), &[]).contains("averyveryverylongname"));
        assert!(plan_err(&req("x", &["-o", "parent=lo"]), &[]).contains("lo"));
        assert!(plan_err(&req("x", &["-o", "ipvlan_mode=l4"]), &[]).contains("l4"));
        assert!(plan_err(&req("x", &["-o", "ipvlan_flag=foo"]), &[]).contains("foo"));
        assert!(plan_err(&req("x", &["-o", "mtu=9"]), &[]).contains("mtu"));
        assert!(plan_err(&req("x", &["-o", "colour=blue"]), &[]).contains("colour"));
        assert!(plan_err(&req("../x", &[]), &[]).contains("../x"));
        assert!(plan_err(&req("-x", &[]), &[]).contains("-x"));
        assert!(plan_err(&req("", &[]), &[]).contains("invalid network name"));
        let mut r = req("x", &[]);
        r.driver = "bridge".into();
        assert!(plan_err(&r, &[]).contains("bridge"));
    }

    #[test]
    fn duplicate_name_and_overlap_refused() {
        let a = plan_ok(&req("a", &["--subnet", "10.1.0.0/16", "-o", "parent=eth0"]), &[]);
        assert!(plan_err(&req("a", &["--subnet", "10.2.0.0/16"]), &[a.clone()]).contains("already exists"));
        assert!(plan_err(&req("b", &["--subnet", "10.1.2.0/24"]), &[a]).contains("overlaps"));
    }

    #[test]
    fn mode_conflict_on_shared_parent() {
        let a = plan_ok(&req("a", &["--subnet", "10.1.0.0/16", "-o", "parent=eth0"]), &[]);
        let e = plan_err(&req("b", &["--subnet", "10.2.0.0/16", "-o", "parent=eth0", "-o", "ipvlan_mode=l3"]), &[a.clone()]);
        assert!(e.contains("eth0") && e.contains("l3") && e.contains("\"a\""), "{e}");
        let e = plan_err(&req("b", &["--subnet", "10.2.0.0/16", "-o", "parent=eth0", "-o", "ipvlan_flag=private"]), &[a.clone()]);
        assert!(e.contains("private"), "{e}");
        plan_ok(&req("b", &["--subnet", "10.2.0.0/16", "-o", "parent=eth0"]), &[a]);
    }

    #[test]
    fn vlan_names() {
        assert_eq!(split_vlan("eth0.20").unwrap(), Some(("eth0", 20)));
        assert_eq!(split_vlan("eth0").unwrap(), None);
        assert_eq!(split_vlan("foo.bar").unwrap(), None);
        assert!(split_vlan("eth0.0").unwrap_err().to_string().contains("eth0.0"));
        assert!(split_vlan("eth0.4095").unwrap_err().to_string().contains("4095"));
    }

    #[test]
    fn ip_range_goes_to_its_subnet() {
        let n = plan_ok(&req("r", &["--subnet", "10.0.0.0/16", "--subnet", "10.1.0.0/16", "--ip-range", "10.1.4.0/24"]), &[]);
        assert_eq!(n.subnets[1].ip_range.unwrap().to_string(), "10.1.4.0/24");
        assert!(plan_err(&req("r", &["--subnet", "10.0.0.0/16", "--ip-range", "10.9.0.0/24"]), &[]).contains("10.9.0.0/24"));
    }

    #[test]
    fn k8s_namespaces() {
        let n = plan_ok(&req("k", &["-o", "k8s_namespaces=default,team-a"]), &[]);
        assert!(n.allows_k8s_namespace("team-a"));
        assert!(!n.allows_k8s_namespace("kube-system"));
        let n = plan_ok(&req("k", &["-o", "k8s_namespaces=*"]), &[]);
        assert!(n.allows_k8s_namespace("anything"));
        let n = plan_ok(&req("k", &[]), &[]);
        assert!(!n.allows_k8s_namespace("default"));
    }
}
