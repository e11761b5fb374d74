//! Attach a container (or pod) to ipvnet networks, and detach it: the work
//! behind the OCI hook and the NRI plugin.
//!
//! Attach: addresses are reserved (and the endpoint recorded) under the
//! store's lock, then the lock is dropped and the links are built: each
//! ipvlan link is created directly inside the target namespace under a
//! temporary name, renamed to ethN there, given its MTU, addresses (IPv6
//! without DAD), brought up and routed. Any failure undoes everything done
//! for this owner (links, leases, record) before the error is returned.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::netlink::{IpvlanMode, IpvlanRequest, Netlink};
use crate::network::Network;
use crate::store::{now_rfc3339, Owner, OwnerKind, Store, Want};

/// Who attaches, where, and to what.
#[derive(Debug, Clone)]
pub struct AttachRequest<'a> {
    pub owner_id: &'a str,
    pub kind: OwnerKind,
    /// The name other endpoints on the network resolve it by.
    pub hostname: Option<String>,
    pub netns: &'a Path,
    pub networks: &'a [String],
    /// Static addresses, each for the network whose subnet holds it.
    pub statics: &'a [IpAddr],
    /// Facts kept in the record for gc.
    pub labels: BTreeMap<String, String>,
}

/// How long to retry an address the kernel still sees on a dying namespace's
/// ipvlan link (a container just removed with the same static address).
const ADDR_IN_USE_RETRY: Duration = Duration::from_secs(5);

/// Numbers the temporary link names of one process.
static TMP_SEQ: AtomicU32 = AtomicU32::new(0);

pub fn attach(store: &Store, req: &AttachRequest) -> Result<Owner> {
    let networks = req
        .networks
        .iter()
        .map(|n| store.network(n))
        .collect::<Result<Vec<Network>>>()?;
    // Each static address goes to the one requested network that holds it.
    let mut statics: Vec<Vec<IpAddr>> = vec![Vec::new(); networks.len()];
    for ip in req.statics {
        let i = networks
            .iter()
            .position(|n| n.subnets.iter().any(|s| s.subnet.contains(*ip)))
            .ok_or_else(|| {
                Error::new(format!("address {ip} is in no subnet of network {}", req.networks.join(", ")))
            })?;
        statics[i].push(*ip);
    }

    crate::timing::mark("networks");
    let ns = crate::netns::open(req.netns)?;
    let mut ns_nl = Netlink::open_in(ns.as_fd()).context("open netlink in the container's namespace")?;
    let names = interface_names(&mut ns_nl, networks.len())?;

    let wants: Vec<Want> = networks
        .iter()
        .zip(&names)
        .zip(statics)
        .map(|((network, interface), statics)| Want { network, interface: interface.clone(), statics })
        .collect();
    let owner = Owner {
        id: req.owner_id.to_string(),
        kind: req.kind,
        hostname: req.hostname.clone(),
        netns: Some(req.netns.to_path_buf()),
        labels: req.labels.clone(),
        endpoints: Vec::new(),
        created: now_rfc3339(),
    };
    crate::timing::mark("netns");
    let owner = store.lock()?.reserve(owner, &wants)?;
    crate::timing::mark("reserve");

    let mut made: Vec<u32> = Vec::new();
    let built = build_links(&mut ns_nl, &ns, &networks, &owner, &mut made);
    if let Err(e) = built {
        // Undo in reverse: links in the namespace, then leases and record.
        let mut errors = vec![e];
        for index in made.iter().rev() {
            if let Err(e) = ns_nl.delete_link(*index) {
                errors.push(e.context("roll back: delete link"));
            }
        }
        if let Err(e) = store.lock().and_then(|l| l.release(&owner.id)) {
            errors.push(e.context("roll back: release addresses"));
        }
        return Err(Error::join(errors).expect("at least one error"));
    }
    Ok(owner)
}

/// The first free ethN names in the namespace, one per network.
fn interface_names(nl: &mut Netlink, count: usize) -> Result<Vec<String>> {
    let taken: Vec<String> = nl.links()?.into_iter().map(|l| l.name).collect();
    Ok((0..)
        .map(|i| format!("eth{i}"))
        .filter(|n| !taken.contains(n))
        .take(count)
        .collect())
}

fn build_links(ns_nl: &mut Netlink, ns: &std::fs::File, networks: &[Network], owner: &Owner, made: &mut Vec<u32>) -> Result<()> {
    let mut host_nl = Netlink::open()?;
    let mut has_default = [ns_nl.has_default_route(false)?, ns_nl.has_default_route(true)?];
    for (net, ep) in networks.iter().zip(&owner.endpoints) {
        let what = format!("attach {} to network {}", ep.interface, net.name);
        let parent = host_nl
            .link(&net.parent)?
            .ok_or_else(|| Error::new(format!("parent interface {} of network {} does not exist", net.parent, net.name)))
            .context(&what)?;
        // Unique in the host namespace, where the kernel checks the name
        // first, even with attaches running in parallel in one process.
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("ipvt{:x}x{:x}", std::process::id(), seq & 0xfff);
        host_nl
            .create_ipvlan(&IpvlanRequest {
                name: &tmp,
                parent: parent.index,
                mode: net.mode,
                flag: net.flag,
                mtu: net.mtu,
                netns: Some(ns.as_fd()),
            })
            .context(&what)?;
        let link = ns_nl
            .link(&tmp)?
            .ok_or_else(|| Error::new(format!("link {tmp} not found in the container's namespace after creation")))
            .context(&what)?;
        made.push(link.index);
        ns_nl.rename_link(link.index, &ep.interface).context(&what)?;
        for addr in &ep.addresses {
            add_address_retrying(ns_nl, link.index, *addr).context(&what)?;
        }
        ns_nl.set_up(link.index).context(&what)?;
        for v6 in [false, true] {
            if !ep.addresses.iter().any(|a| a.is_ipv6() == v6) {
                continue;
            }
            if net.internal || has_default[v6 as usize] {
                // No default route through this link; an L3 endpoint still
                // reaches its network's other subnets, which share the parent.
                if net.mode != IpvlanMode::L2 {
                    add_other_subnet_routes(ns_nl, net, &ep.addresses, v6, link.index).context(&what)?;
                }
                continue;
            }
            let gateway = match net.mode {
                IpvlanMode::L2 => match gateway_for(net, &ep.addresses, v6) {
                    Some(g) => Some(g),
                    None => continue,
                },
                // ARP is filtered in L3/L3S: the route names the device only.
                IpvlanMode::L3 | IpvlanMode::L3s => None,
            };
            match ns_nl.add_default_route(v6, gateway, link.index) {
                Ok(()) => {}
                // A router advertisement may have installed one already.
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e.context(what)),
            }
            has_default[v6 as usize] = true;
        }
    }
    Ok(())
}

/// Device routes to the subnets of `net` (of one family) that hold none of
/// the endpoint's addresses.
fn add_other_subnet_routes(nl: &mut Netlink, net: &Network, addresses: &[ipnetwork::IpNetwork], v6: bool, oif: u32) -> Result<()> {
    for sub in net.subnets.iter().filter(|s| s.subnet.is_ipv6() == v6) {
        if !addresses.iter().any(|a| sub.subnet.contains(a.ip())) {
            nl.add_device_route(sub.subnet, oif)?;
        }
    }
    Ok(())
}

/// The gateway of the subnet that holds the endpoint's address of a family:
/// on a multi-subnet network, the first subnet's gateway is not on-link for
/// an address of the second subnet (the kernel refuses such a route).
fn gateway_for(net: &Network, addresses: &[ipnetwork::IpNetwork], v6: bool) -> Option<IpAddr> {
    addresses
        .iter()
        .filter(|a| a.is_ipv6() == v6)
        .find_map(|a| net.subnets.iter().find(|s| s.subnet.contains(a.ip()))?.gateway)
}

/// The kernel frees the addresses of a removed container's ipvlan link only
/// when its namespace is cleaned up, asynchronously: a new container taking
/// the same static address at once sees EADDRINUSE for a moment. Retry
/// briefly (this is the "Address already in use" Docker's guide records).
fn add_address_retrying(nl: &mut Netlink, index: u32, addr: ipnetwork::IpNetwork) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match nl.add_address(index, addr) {
            Err(e) if e.errno() == Some(libc::EADDRINUSE) && start.elapsed() < ADDR_IN_USE_RETRY => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Release everything an owner holds. Its links die with its namespace; if
/// the namespace is still there (a pod being stopped), they are deleted.
/// Idempotent: an unknown owner is not an error.
pub fn detach(store: &Store, owner_id: &str) -> Result<Option<Owner>> {
    let owner = store.lock()?.release(owner_id)?;
    Ok(owner)
}

/// Delete an owner's interfaces from its namespace if it still exists
/// (best effort: the namespace may be gone, or the link with it).
pub fn delete_interfaces(owner: &Owner) -> Result<()> {
    let Some(path) = &owner.netns else { return Ok(()) };
    let Ok(ns) = crate::netns::open(path) else { return Ok(()) };
    let mut nl = Netlink::open_in(ns.as_fd())?;
    let mut errors = Vec::new();
    for ep in owner.endpoints.iter().filter(|e| !e.interface.is_empty()) {
        if let Some(link) = nl.link(&ep.interface)? {
            if link.kind.as_deref() == Some("ipvlan") {
                if let Err(e) = nl.delete_link(link.index) {
                    errors.push(e.context(format!("delete {} of {}", ep.interface, owner.id)));
                }
            }
        }
    }
    Error::join(errors).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_one_of_the_address_subnet() {
        let net: Network = serde_json::from_value(serde_json::json!({
            "name": "ms", "id": "ab", "driver": "ipvlan", "parent": "eth0",
            "mode": "l2", "flag": "bridge", "internal": false, "created": "now",
            "subnets": [
                {"subnet": "192.168.114.0/24", "gateway": "192.168.114.254"},
                {"subnet": "192.168.116.0/24", "gateway": "192.168.116.254"},
                {"subnet": "2001:db8::/64"},
            ],
        }))
        .unwrap();
        let addrs = |v: &[&str]| v.iter().map(|a| a.parse().unwrap()).collect::<Vec<ipnetwork::IpNetwork>>();
        assert_eq!(gateway_for(&net, &addrs(&["192.168.116.10/24"]), false), Some("192.168.116.254".parse().unwrap()));
        assert_eq!(gateway_for(&net, &addrs(&["192.168.114.3/24"]), false), Some("192.168.114.254".parse().unwrap()));
        // A family whose subnet has no gateway gets no gateway route.
        assert_eq!(gateway_for(&net, &addrs(&["192.168.114.3/24", "2001:db8::5/64"]), true), None);
        assert_eq!(gateway_for(&net, &addrs(&[]), false), None);
    }
}
