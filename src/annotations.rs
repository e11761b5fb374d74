//! The annotation schema that asks for ipvlan networking, shared by the OCI
//! hook, the `ipvnet-runc` wrapper and the NRI plugin:
//!
//! | key               | value                                   |
//! |-------------------|-----------------------------------------|
//! | `ipvnet.network`  | `NAME[,NAME...]` networks to attach to  |
//! | `ipvnet.ip`       | `ADDR[,ADDR...]` static IPv4 addresses  |
//! | `ipvnet.ip6`      | `ADDR[,ADDR...]` static IPv6 addresses  |
//! | `ipvnet.hostname` | RFC 1123 host name for the container    |
//!
//! Any other key under `ipvnet.` is refused, so that a typo such as
//! `ipvnet.netwrok` fails loudly instead of silently giving no network.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

pub const PREFIX: &str = "ipvnet.";
pub const NETWORK: &str = "ipvnet.network";
pub const IP: &str = "ipvnet.ip";
pub const IP6: &str = "ipvnet.ip6";
pub const HOSTNAME: &str = "ipvnet.hostname";

/// Every key of the schema.
pub const KNOWN: &[&str] = &[NETWORK, IP, IP6, HOSTNAME];

/// Longest network name accepted (same bound as `ipvnet network create`).
pub const MAX_NETWORK_NAME: usize = 64;

/// What a container's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Networks in the order given; at least one, no duplicates.
    pub networks: Vec<String>,
    pub ips: Vec<Ipv4Addr>,
    pub ip6s: Vec<Ipv6Addr>,
    pub hostname: Option<String>,
}

/// True when any annotation lies in the `ipvnet.` namespace: cheap test for
/// callers that only need to know whether to look closer.
pub fn mentions_ipvnet(annotations: &BTreeMap<String, String>) -> bool {
    annotations.keys().any(|k| k.starts_with(PREFIX))
}

/// Whether this is a Kubernetes app container rather than the pod sandbox
/// (annotations set by containerd's CRI and by CRI-O). App containers join
/// the sandbox's network namespace, which was set up for the sandbox; since
/// CRI passes a pod's annotations to every container of the pod, callers
/// skip these instead of attaching the pod again.
pub fn is_pod_app_container(annotations: &BTreeMap<String, String>) -> bool {
    [
        "io.kubernetes.cri.container-type",
        "io.kubernetes.cri-o.ContainerType",
    ]
    .iter()
    .any(|k| annotations.get(*k).map(String::as_str) == Some("container"))
}

/// Read the request out of a container's annotations. `Ok(None)` when the
/// container asks for nothing (no `ipvnet.*` key at all).
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Option<Request>> {
    if let Some(key) = annotations
        .keys()
        .find(|k| k.starts_with(PREFIX) && !KNOWN.contains(&k.as_str()))
    {
        return Err(Error::new(format!(
            "annotation {key}: unknown key (known: {})",
            KNOWN.join(", ")
        )));
    }
    let Some(net_value) = annotations.get(NETWORK) else {
        for key in [IP, IP6, HOSTNAME] {
            if let Some(v) = annotations.get(key) {
                return Err(Error::new(format!(
                    "annotation {key}: {v:?} given without {NETWORK}"
                )));
            }
        }
        return Ok(None);
    };

    let networks = parse_networks(net_value)?;
    let ips = match annotations.get(IP) {
        Some(v) => parse_list(IP, v, parse_ipv4)?,
        None => Vec::new(),
    };
    let ip6s = match annotations.get(IP6) {
        Some(v) => parse_list(IP6, v, parse_ipv6)?,
        None => Vec::new(),
    };
    let hostname = match annotations.get(HOSTNAME) {
        Some(v) => Some(parse_hostname(v)?),
        None => None,
    };
    Ok(Some(Request {
        networks,
        ips,
        ip6s,
        hostname,
    }))
}

/// Whether `name` is an acceptable network name: `[A-Za-z0-9][A-Za-z0-9_.-]*`,
/// at most [`MAX_NETWORK_NAME`] characters.
pub fn valid_network_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() <= MAX_NETWORK_NAME
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` is a valid RFC 1123 host name: dot-separated labels of
/// 1-63 letters, digits and hyphens, no label starting or ending with a
/// hyphen, 253 characters at most.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_networks(value: &str) -> Result<Vec<String>> {
    parse_list(NETWORK, value, |item| {
        if valid_network_name(item) {
            Ok(item.to_string())
        } else if item.len() > MAX_NETWORK_NAME {
            Err(format!("is longer than {MAX_NETWORK_NAME} characters"))
        } else {
            Err(
                "is not a valid network name (letters, digits, '_', '.', '-'; \
                 starting with a letter or digit)"
                    .to_string(),
            )
        }
    })
}

/// Split a comma-separated value, trim each item, and parse it. Empty items
/// and duplicates are refused; the message always names key and value.
fn parse_list<T: PartialEq + std::hash::Hash + Eq + Clone>(
    key: &str,
    value: &str,
    item: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    if value.trim().is_empty() {
        return Err(Error::new(format!("annotation {key}: {value:?} is empty")));
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for raw in value.split(',') {
        let s = raw.trim();
        if s.is_empty() {
            return Err(Error::new(format!(
                "annotation {key}: {value:?} has an empty item"
            )));
        }
        let v = item(s).map_err(|why| Error::new(format!("annotation {key}: {s:?} {why}")))?;
        if !seen.insert(v.clone()) {
            return Err(Error::new(format!(
                "annotation {key}: {s:?} is given twice in {value:?}"
            )));
        }
        out.push(v);
    }
    Ok(out)
}

fn parse_ipv4(s: &str) -> std::result::Result<Ipv4Addr, String> {
    let addr: Ipv4Addr = match s.parse() {
        Ok(a) => a,
        Err(_) if s.contains('/') && s.split('/').next().unwrap().parse::<Ipv4Addr>().is_ok() => {
            return Err("is not an IPv4 address (give the address without a prefix length)".into())
        }
        Err(_) if s.parse::<Ipv6Addr>().is_ok() => {
            return Err(format!(
                "is not an IPv4 address (IPv6 addresses go in {IP6})"
            ))
        }
        Err(_) => return Err("is not an IPv4 address".into()),
    };
    let why = if addr.is_unspecified() {
        "is the unspecified address"
    } else if addr.is_loopback() {
        "is a loopback address"
    } else if addr.is_multicast() {
        "is a multicast address"
    } else if addr.is_broadcast() {
        "is the broadcast address"
    } else {
        return Ok(addr);
    };
    Err(format!("{why}, not one a container can hold"))
}

fn parse_ipv6(s: &str) -> std::result::Result<Ipv6Addr, String> {
    let addr: Ipv6Addr = match s.parse() {
        Ok(a) => a,
        Err(_) if s.contains('/') && s.split('/').next().unwrap().parse::<Ipv6Addr>().is_ok() => {
            return Err("is not an IPv6 address (give the address without a prefix length)".into())
        }
        Err(_) if s.parse::<Ipv4Addr>().is_ok() => {
            return Err(format!(
                "is not an IPv6 address (IPv4 addresses go in {IP})"
            ))
        }
        Err(_) => return Err("is not an IPv6 address".into()),
    };
    let why = if addr.is_unspecified() {
        "is the unspecified address"
    } else if addr.is_loopback() {
        "is the loopback address"
    } else if addr.is_multicast() {
        "is a multicast address"
    } else if addr.to_ipv4_mapped().is_some() {
        "is an IPv4-mapped address"
    } else {
        return Ok(addr);
    };
    Err(format!("{why}, not one a container can hold"))
}

fn parse_hostname(value: &str) -> Result<String> {
    if valid_hostname(value) {
        Ok(value.to_string())
    } else {
        Err(Error::new(format!(
            "annotation {HOSTNAME}: {value:?} is not a valid host name (RFC 1123: \
             dot-separated labels of 1-63 letters, digits and '-', not starting or \
             ending with '-', 253 characters at most)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        parse(&map(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn absent_network_means_no_request() {
        assert_eq!(parse(&map(&[])).unwrap(), None);
        assert_eq!(
            parse(&map(&[("io.kubernetes.cri.container-type", "sandbox")])).unwrap(),
            None
        );
    }

    #[test]
    fn full_request() {
        let r = parse(&map(&[
            (NETWORK, " db_net , front.v2-x ,n3"),
            (IP, "192.168.1.10, 10.0.0.5"),
            (IP6, "2001:db8::10 ,fe80::1"),
            (HOSTNAME, "db-1.example"),
            ("other.key", "whatever"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.networks, vec!["db_net", "front.v2-x", "n3"]);
        assert_eq!(
            r.ips,
            vec![Ipv4Addr::new(192, 168, 1, 10), Ipv4Addr::new(10, 0, 0, 5)]
        );
        assert_eq!(
            r.ip6s,
            vec![
                "2001:db8::10".parse::<Ipv6Addr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
        assert_eq!(r.hostname.as_deref(), Some("db-1.example"));
    }

    #[test]
    fn network_only() {
        let r = parse(&map(&[(NETWORK, "a")])).unwrap().unwrap();
        assert_eq!(
            r,
            Request {
                networks: vec!["a".into()],
                ..Default::default()
            }
        );
    }

    #[test]
    fn bad_network_names() {
        assert_eq!(
            err(&[(NETWORK, "")]),
            r#"annotation ipvnet.network: "" is empty"#
        );
        assert_eq!(
            err(&[(NETWORK, "  ")]),
            r#"annotation ipvnet.network: "  " is empty"#
        );
        assert_eq!(
            err(&[(NETWORK, "a,,b")]),
            r#"annotation ipvnet.network: "a,,b" has an empty item"#
        );
        assert_eq!(
            err(&[(NETWORK, "a,")]),
            r#"annotation ipvnet.network: "a," has an empty item"#
        );
        for bad in ["_a", "-a", ".a", "a b", "a/b", "ä", "a;b", "a:b"] {
            let e = err(&[(NETWORK, bad)]);
            assert!(
                e.starts_with(&format!(
                    "annotation ipvnet.network: {bad:?} is not a valid network name"
                )),
                "{bad}: {e}"
            );
        }
        let long = "n".repeat(65);
        assert!(parse(&map(&[(NETWORK, &"n".repeat(64))]))
            .unwrap()
            .is_some());
        assert_eq!(
            err(&[(NETWORK, &long)]),
            format!("annotation ipvnet.network: {long:?} is longer than 64 characters")
        );
        assert_eq!(
            err(&[(NETWORK, "a, b ,a")]),
            r#"annotation ipvnet.network: "a" is given twice in "a, b ,a""#
        );
    }

    #[test]
    fn bad_ipv4() {
        assert_eq!(
            err(&[(NETWORK, "n"), (IP, "10.0.0.300")]),
            r#"annotation ipvnet.ip: "10.0.0.300" is not an IPv4 address"#
        );
        assert_eq!(
            err(&[(NETWORK, "n"), (IP, "10.0.0.1,x")]),
            r#"annotation ipvnet.ip: "x" is not an IPv4 address"#
        );
        assert_eq!(
            err(&[(NETWORK, "n"), (IP, "2001:db8::1")]),
            r#"annotation ipvnet.ip: "2001:db8::1" is not an IPv4 address (IPv6 addresses go in ipvnet.ip6)"#
        );
        assert_eq!(
            err(&[(NETWORK, "n"), (IP, "10.0.0.5/24")]),
            r#"annotation ipvnet.ip: "10.0.0.5/24" is not an IPv4 address (give the address without a prefix length)"#
        );
        // Leading zeros are ambiguous (octal in some parsers): refused.
        assert!(err(&[(NETWORK, "n"), (IP, "010.0.0.1")]).contains("is not an IPv4 address"));
        for (bad, why) in [
            ("0.0.0.0", "is the unspecified address"),
            ("127.0.0.2", "is a loopback address"),
            ("224.0.0.1", "is a multicast address"),
            ("255.255.255.255", "is the broadcast address"),
        ] {
            assert_eq!(
                err(&[(NETWORK, "n"), (IP, bad)]),
                format!("annotation ipvnet.ip: {bad:?} {why}, not one a container can hold")
            );
        }
        assert_eq!(
            err(&[(NETWORK, "n"), (IP, "10.0.0.1, 10.0.0.1")]),
            r#"annotation ipvnet.ip: "10.0.0.1" is given twice in "10.0.0.1, 10.0.0.1""#
        );
        assert_eq!(
            err(&[(NETWORK, "n"), (IP, "")]),
            r#"annotation ipvnet.ip: "" is empty"#
        );
    }

    #[test]
    fn bad_ipv6() {
        assert_eq!(
            err(&[(NETWORK, "n"), (IP6, "2001:db8::g")]),
            r#"annotation ipvnet.ip6: "2001:db8::g" is not an IPv6 address"#
        );
        assert_eq!(
            err(&[(NETWORK, "n"), (IP6, "10.0.0.1")]),
            r#"annotation ipvnet.ip6: "10.0.0.1" is not an IPv6 address (IPv4 addresses go in ipvnet.ip)"#
        );
        assert!(err(&[(NETWORK, "n"), (IP6, "2001:db8::1/64")]).contains("without a prefix length"));
        assert!(err(&[(NETWORK, "n"), (IP6, "[2001:db8::1]")]).contains("is not an IPv6 address"));
        assert!(err(&[(NETWORK, "n"), (IP6, "fe80::1%eth0")]).contains("is not an IPv6 address"));
        for (bad, why) in [
            ("::", "is the unspecified address"),
            ("::1", "is the loopback address"),
            ("ff02::1", "is a multicast address"),
            ("::ffff:10.0.0.1", "is an IPv4-mapped address"),
        ] {
            assert_eq!(
                err(&[(NETWORK, "n"), (IP6, bad)]),
                format!("annotation ipvnet.ip6: {bad:?} {why}, not one a container can hold")
            );
        }
        // The same address spelled two ways is still a duplicate.
        assert!(
            err(&[(NETWORK, "n"), (IP6, "2001:db8::1,2001:DB8:0::1")]).contains("is given twice")
        );
    }

    #[test]
    fn hostnames() {
        for good in ["a", "db", "db-1", "x.example.com", "1abc", &"a".repeat(63)] {
            let r = parse(&map(&[(NETWORK, "n"), (HOSTNAME, good)]))
                .unwrap()
                .unwrap();
            assert_eq!(r.hostname.as_deref(), Some(good));
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a_b",
            "a..b",
            ".a",
            "a.",
            "a b",
            &"a".repeat(64),
        ] {
            let e = err(&[(NETWORK, "n"), (HOSTNAME, bad)]);
            assert!(
                e.starts_with(&format!(
                    "annotation ipvnet.hostname: {bad:?} is not a valid host name"
                )),
                "{bad}: {e}"
            );
        }
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(err(&[(NETWORK, "n"), (HOSTNAME, &long)]).contains("is not a valid host name"));
    }

    #[test]
    fn addresses_without_network_refused() {
        assert_eq!(
            err(&[(IP, "10.0.0.1")]),
            r#"annotation ipvnet.ip: "10.0.0.1" given without ipvnet.network"#
        );
        assert_eq!(
            err(&[(IP6, "2001:db8::1")]),
            r#"annotation ipvnet.ip6: "2001:db8::1" given without ipvnet.network"#
        );
        assert_eq!(
            err(&[(HOSTNAME, "h")]),
            r#"annotation ipvnet.hostname: "h" given without ipvnet.network"#
        );
    }

    #[test]
    fn unknown_ipvnet_key_refused() {
        assert_eq!(
            err(&[("ipvnet.netwrok", "db")]),
            "annotation ipvnet.netwrok: unknown key (known: ipvnet.network, ipvnet.ip, ipvnet.ip6, ipvnet.hostname)"
        );
        assert!(err(&[(NETWORK, "db"), ("ipvnet.ips", "10.0.0.1")])
            .starts_with("annotation ipvnet.ips: unknown key"));
        // Keys that merely resemble the prefix are not ours.
        assert_eq!(
            parse(&map(&[("ipvnetx", "1"), ("io.ipvnet.network", "x")])).unwrap(),
            None
        );
    }

    #[test]
    fn pod_app_containers() {
        assert!(is_pod_app_container(&map(&[(
            "io.kubernetes.cri.container-type",
            "container"
        )])));
        assert!(is_pod_app_container(&map(&[(
            "io.kubernetes.cri-o.ContainerType",
            "container"
        )])));
        assert!(!is_pod_app_container(&map(&[(
            "io.kubernetes.cri.container-type",
            "sandbox"
        )])));
        assert!(!is_pod_app_container(&map(&[(NETWORK, "n")])));
    }

    #[test]
    fn mentions() {
        assert!(!mentions_ipvnet(&map(&[("a", "b")])));
        assert!(mentions_ipvnet(&map(&[("ipvnet.ip", "b")])));
    }
}
