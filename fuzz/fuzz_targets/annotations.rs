//! Container annotations, as the hook, the runtime wrapper and the NRI
//! plugin receive them, through `annotations::parse`.
//!
//! Input: text, one `KEY=VALUE` per line (the value may contain '=';
//! a line without '=' is a key with an empty value). Checks: no panic; a
//! request holds only what the schema allows; every error names the
//! annotation it is about.
#![no_main]

use std::collections::{BTreeMap, HashSet};

use ipvnet::annotations::{self, parse, valid_hostname, valid_network_name, PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut map = BTreeMap::new();
    for line in text.split('\n') {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        map.insert(k.to_string(), v.to_string());
    }
    let asks = annotations::mentions_ipvnet(&map);
    let _ = annotations::is_pod_app_container(&map);
    match parse(&map) {
        Ok(None) => assert!(!asks, "Ok(None) although an {PREFIX}* key is present: {map:?}"),
        Ok(Some(req)) => {
            assert!(asks);
            assert!(!req.networks.is_empty(), "a request without a network: {map:?}");
            let uniq: HashSet<_> = req.networks.iter().collect();
            assert_eq!(uniq.len(), req.networks.len(), "duplicate networks: {req:?}");
            for n in &req.networks {
                assert!(valid_network_name(n), "invalid network name accepted: {n:?}");
                // Network names become file names: never a path.
                assert!(!n.contains('/') && n != "." && n != "..", "{n:?}");
            }
            for ip in &req.ips {
                assert!(!ip.is_unspecified() && !ip.is_loopback() && !ip.is_multicast() && !ip.is_broadcast(), "{ip}");
            }
            for ip in &req.ip6s {
                assert!(!ip.is_unspecified() && !ip.is_loopback() && !ip.is_multicast(), "{ip}");
            }
            if let Some(h) = &req.hostname {
                assert!(valid_hostname(h), "invalid host name accepted: {h:?}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(asks, "an error for annotations outside {PREFIX}*: {msg}");
            assert!(msg.starts_with("annotation ipvnet."), "an error that names no annotation: {msg}");
        }
    }
});
