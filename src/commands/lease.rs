//! `ipvnet lease add | rm | ls`: addresses taken without a container, for
//! operators (reserve an address for a host outside ipvnet) and for tests
//! and benchmarks of the store.

use std::net::IpAddr;

use crate::error::Result;
use crate::store::{Owner, OwnerKind, Store, Want};

/// Lease one address per address family of `network` to `owner`.
pub fn add(store: &Store, network: &str, owner: &str, statics: &[IpAddr]) -> Result<Vec<IpAddr>> {
    let net = store.find_network(network)?;
    let lock = store.lock()?;
    let record = Owner::new(owner, OwnerKind::Lease);
    let want = Want { network: &net, interface: String::new(), statics: statics.to_vec() };
    let owner = lock.reserve(record, &[want])?;
    Ok(owner.endpoints.iter().flat_map(|e| e.addresses.iter().map(|a| a.ip())).collect())
}

/// Release everything `owner` holds; an unknown owner is not an error.
pub fn remove(store: &Store, owner: &str) -> Result<bool> {
    Ok(store.lock()?.release(owner)?.is_some())
}

/// `NETWORK ADDRESS OWNER` lines.
pub fn list(store: &Store, network: Option<&str>) -> Result<String> {
    let nets = match network {
        Some(n) => vec![store.find_network(n)?],
        None => store.networks()?,
    };
    let mut out = String::new();
    for n in nets {
        for (ip, owner) in store.leases(&n.name)? {
            out.push_str(&format!("{} {ip} {owner}\n", n.name));
        }
    }
    Ok(out)
}
