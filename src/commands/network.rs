//! `ipvnet network create | ls | inspect | rm`: Docker's ipvlan network
//! definitions, with the parent link (802.1q sub-interface or dummy) made
//! and removed on demand.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{Context, Error, Result};
use crate::netlink::{Link, Netlink};
use crate::network::{plan, split_vlan, CreateRequest, Network, OwnedParent};
use crate::store::{now_rfc3339, random_id, Store};

/// Create a network. Validation happens before anything is created; the
/// definition is written before the parent link so a crash never leaves an
/// unrecorded link, and a failed link creation removes the definition.
pub fn create(store: &Store, req: &CreateRequest) -> Result<Network> {
    let lock = store.lock()?;
    let existing = store.networks()?;
    let (mut net, warnings) = plan(req, &existing, random_id()?, now_rfc3339())?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let mut nl = Netlink::open()?;
    let mut make: Option<(OwnedParent, Option<(u32, u16)>)> = None;
    match nl.link(&net.parent)? {
        Some(link) => {
            if net.owned_parent.is_some() {
                return Err(Error::new(format!("link {} already exists; cannot use it as the dummy parent of {}", net.parent, net.name)));
            }
            check_parent(&mut nl, &net, &link)?;
        }
        None if net.owned_parent == Some(OwnedParent::Dummy) => make = Some((OwnedParent::Dummy, None)),
        None => match split_vlan(&net.parent)? {
            Some((base, vid)) => {
                let Some(base_link) = nl.link(base)? else {
                    return Err(Error::new(format!(
                        "parent {} does not exist, and neither does {base} to create it on as VLAN {vid}",
                        net.parent
                    )));
                };
                if base_link.kind.as_deref() == Some("ipvlan") {
                    return Err(Error::new(format!("parent {base} is an ipvlan link: a VLAN cannot be created on it")));
                }
                if let Some(mtu) = net.mtu.filter(|m| *m > base_link.mtu) {
                    return Err(Error::new(format!("option mtu={mtu} is larger than the MTU {} of {base}", base_link.mtu)));
                }
                make = Some((OwnedParent::Vlan, Some((base_link.index, vid))));
            }
            None => return Err(Error::new(format!("parent interface {} does not exist", net.parent))),
        },
    }
    if let Some((kind, _)) = make {
        net.owned_parent = Some(kind);
    }
    lock.save_network(&net)?;
    lock.init_hosts(&net.name)?;
    if let Some((_, vlan)) = make {
        let made = match vlan {
            Some((base, vid)) => nl.create_vlan(&net.parent, base, vid),
            None => nl.create_dummy(&net.parent),
        };
        let up = made.and_then(|()| {
            let link = nl.link(&net.parent)?.ok_or_else(|| Error::new(format!("link {} vanished after creation", net.parent)))?;
            nl.set_up(link.index).map_err(|e| {
                let _ = nl.delete_link(link.index);
                e
            })
        });
        if let Err(e) = up {
            let _ = lock.remove_network(&net.name);
            return Err(e.context(format!("create parent {} of network {}", net.parent, net.name)));
        }
    }
    Ok(net)
}

/// An existing parent must be able to carry ipvlan links of this network.
fn check_parent(nl: &mut Netlink, net: &Network, link: &Link) -> Result<()> {
    if link.name == "lo" || link.kind.as_deref() == Some("ipvlan") {
        return Err(Error::new(format!("parent {} cannot carry ipvlan links (it is {})", link.name, link.kind.as_deref().unwrap_or("loopback"))));
    }
    if let Some(mtu) = net.mtu.filter(|m| *m > link.mtu) {
        return Err(Error::new(format!("option mtu={mtu} is larger than the MTU {} of parent {}", link.mtu, link.name)));
    }
    // ipvlan links made by others on this parent fix the mode for everyone.
    for other in nl.links()? {
        if other.parent == Some(link.index) {
            if let Some((mode, flag)) = other.ipvlan {
                if (mode, flag) != (net.mode, net.flag) {
                    return Err(Error::new(format!(
                        "parent {} already carries ipvlan link {} in {mode}/{flag}; the kernel keeps one mode and flag per parent, so this network cannot use {}/{}",
                        link.name, other.name, net.mode, net.flag
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Remove networks; each must have no endpoints. Keeps going over the
/// names and reports every failure.
pub fn remove(store: &Store, names: &[String]) -> Result<()> {
    let lock = store.lock()?;
    let mut errors = Vec::new();
    for name in names {
        let res = (|| -> Result<()> {
            let net = store.find_network(name)?;
            if lock.has_leases(&net.name)? {
                let owners: Vec<String> = store.leases(&net.name)?.into_iter().map(|(_, o)| o).collect();
                return Err(Error::new(format!(
                    "network {} still has endpoints ({}); stop them first",
                    net.name,
                    dedup(owners).join(", ")
                )));
            }
            if let Some(kind) = net.owned_parent {
                // Another network on the same parent inherits it.
                let heir = store.networks()?.into_iter().find(|n| n.name != net.name && n.parent == net.parent);
                match heir {
                    Some(mut heir) => {
                        heir.owned_parent = Some(kind);
                        lock.save_network(&heir)?;
                    }
                    None => delete_parent(&net, kind)?,
                }
            }
            lock.remove_network(&net.name)
        })();
        if let Err(e) = res {
            errors.push(e);
        }
    }
    Error::join(errors).map_or(Ok(()), Err)
}

fn delete_parent(net: &Network, kind: OwnedParent) -> Result<()> {
    let mut nl = Netlink::open()?;
    let Some(link) = nl.link(&net.parent)? else { return Ok(()) };
    let expected = match kind {
        OwnedParent::Vlan => "vlan",
        OwnedParent::Dummy => "dummy",
    };
    if link.kind.as_deref() != Some(expected) {
        // Someone replaced it with a link of their own: leave it alone.
        eprintln!("warning: {} is no longer the {expected} link ipvnet created; not deleting it", net.parent);
        return Ok(());
    }
    nl.delete_link(link.index).with_context(|| format!("delete parent {} of network {}", net.parent, net.name))
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// `network ls`: one line per network.
pub fn list(store: &Store, quiet: bool) -> Result<String> {
    let nets = store.networks()?;
    let mut out = String::new();
    if quiet {
        for n in nets {
            out.push_str(n.short_id());
            out.push('\n');
        }
        return Ok(out);
    }
    let rows: Vec<[String; 6]> = nets
        .iter()
        .map(|n| {
            [
                n.short_id().to_string(),
                n.name.clone(),
                n.driver.clone(),
                n.parent.clone(),
                n.mode.to_string(),
                n.subnets.iter().map(|s| s.subnet.to_string()).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    let header = ["NETWORK ID", "NAME", "DRIVER", "PARENT", "MODE", "SUBNETS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// `network inspect`: JSON in the spirit of `docker network inspect`.
pub fn inspect(store: &Store, names: &[String]) -> Result<Value> {
    let owners = store.owners()?;
    let mut out = Vec::new();
    for name in names {
        let n = store.find_network(name)?;
        let mut containers = BTreeMap::new();
        for o in &owners {
            for ep in o.endpoints.iter().filter(|e| e.network == n.name) {
                let v4: Vec<String> = ep.addresses.iter().filter(|a| a.is_ipv4()).map(|a| a.to_string()).collect();
                let v6: Vec<String> = ep.addresses.iter().filter(|a| a.is_ipv6()).map(|a| a.to_string()).collect();
                containers.insert(
                    o.id.clone(),
                    json!({
                        "Name": o.hostname.clone().unwrap_or_else(|| o.id.clone()),
                        "Kind": o.kind,
                        "Interface": ep.interface,
                        "IPv4Address": v4.join(","),
                        "IPv6Address": v6.join(","),
                    }),
                );
            }
        }
        let config: Vec<Value> = n
            .subnets
            .iter()
            .map(|s| {
                let mut c = json!({ "Subnet": s.subnet.to_string() });
                if let Some(g) = s.gateway {
                    c["Gateway"] = json!(g.to_string());
                }
                if let Some(r) = s.ip_range {
                    c["IPRange"] = json!(r.to_string());
                }
                c
            })
            .collect();
        let mut options = n.options.clone();
        options.insert("parent".into(), n.parent.clone());
        options.insert("ipvlan_mode".into(), n.mode.to_string());
        options.insert("ipvlan_flag".into(), n.flag.to_string());
        if let Some(mtu) = n.mtu {
            options.insert("mtu".into(), mtu.to_string());
        }
        out.push(json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": n.has_family(true),
            "IPAM": { "Driver": "default", "Config": config },
            "Internal": n.internal,
            "Containers": containers,
            "Options": options,
            "ParentCreatedByIpvnet": n.owned_parent,
        }));
    }
    Ok(Value::Array(out))
}
