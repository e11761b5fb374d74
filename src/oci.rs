//! OCI hook input: the container state a runtime writes on a hook's stdin,
//! completed from the bundle's config.json when the state lacks something.
//!
//! runc 1.1 sends `{"ociVersion":"1.0.2-dev","status":"creating",...}`, crun
//! 1.8 `{"ociVersion":"1.0","status":"created","root":...}`; poststop comes
//! without a pid. Unknown fields are ignored, so later runtimes keep working.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::annotations;
use crate::error::{Context, Error, Result};

/// What a hook needs to know about its container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookInput {
    pub id: String,
    /// The container's init process; absent at poststop.
    pub pid: Option<i32>,
    /// Absolute bundle directory.
    pub bundle: Option<PathBuf>,
    pub annotations: BTreeMap<String, String>,
    /// The network namespace the container joins (config.json's `network`
    /// namespace path). Filled whenever config.json was read; when it was
    /// not (the state had a pid and our annotations), /proc/PID/ns/net is
    /// the same namespace anyway.
    pub netns_path: Option<PathBuf>,
}

/// The subset of the state we use; serde skips every other field.
#[derive(Deserialize)]
struct RawState {
    #[serde(default)]
    id: String,
    #[serde(default)]
    pid: Option<i32>,
    #[serde(default)]
    bundle: Option<PathBuf>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// Parse the state JSON from a hook's stdin and complete it from
/// BUNDLE/config.json when needed: when the state carries none of the
/// `ipvnet.*` annotations, or has no pid (then the namespace path is the
/// only way to find the container's network namespace).
pub fn read_hook_input(mut stdin: impl Read) -> Result<HookInput> {
    let mut buf = Vec::new();
    stdin
        .read_to_end(&mut buf)
        .context("read the container state from stdin")?;
    let raw: RawState =
        serde_json::from_slice(&buf).context("parse the container state on stdin")?;
    if raw.id.is_empty() {
        return Err(Error::new("the container state on stdin has no \"id\""));
    }

    // runc and crun chdir to the bundle, and crun may report it relatively.
    let bundle = match raw.bundle {
        Some(b) if b.as_os_str().is_empty() => None,
        Some(b) if b.is_relative() => Some(
            std::env::current_dir()
                .context("resolve the relative bundle path")?
                .join(b),
        ),
        other => other,
    };
    let pid = raw.pid.filter(|&p| p > 0);
    let mut input = HookInput {
        id: raw.id,
        pid,
        bundle,
        annotations: raw.annotations.unwrap_or_default(),
        netns_path: None,
    };

    let need_config = !annotations::mentions_ipvnet(&input.annotations) || input.pid.is_none();
    if let (true, Some(bundle)) = (need_config, &input.bundle) {
        if let Some(cfg) = read_bundle_config(bundle)? {
            // The state's annotations come from config.json anyway; where both
            // have a key, the state (the runtime's view) wins.
            let mut merged = cfg.annotations;
            merged.append(&mut input.annotations);
            input.annotations = merged;
            input.netns_path = cfg.netns_path;
        }
    }
    Ok(input)
}

/// The container's network namespace: the configured path, else
/// /proc/PID/ns/net.
pub fn netns_of(input: &HookInput) -> Result<PathBuf> {
    if let Some(p) = &input.netns_path {
        return Ok(p.clone());
    }
    if let Some(pid) = input.pid {
        return Ok(PathBuf::from(format!("/proc/{pid}/ns/net")));
    }
    Err(Error::new(format!(
        "container {}: network namespace unknown: the state has no pid and config.json \
         names no network namespace path",
        input.id
    )))
}

/// What we take from a bundle's config.json.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleConfig {
    pub annotations: BTreeMap<String, String>,
    pub netns_path: Option<PathBuf>,
}

/// Read BUNDLE/config.json. `Ok(None)` when the file does not exist (a
/// poststop hook may run after the bundle was cleaned up).
pub fn read_bundle_config(bundle: &Path) -> Result<Option<BundleConfig>> {
    let path = bundle.join("config.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::from(e).context(format!("read {}", path.display()))),
    };
    parse_config(&bytes)
        .with_context(|| format!("parse {}", path.display()))
        .map(Some)
}

/// Parse config.json contents with oci-spec's `Spec`; if it refuses a file
/// that runtimes accept (a field it types more strictly, a namespace type it
/// does not know), fall back to reading just the two things we need.
pub fn parse_config(bytes: &[u8]) -> Result<BundleConfig> {
    use oci_spec::runtime::{LinuxNamespaceType, Spec};

    if let Ok(spec) = serde_json::from_slice::<Spec>(bytes) {
        let annotations = spec
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let netns_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .and_then(|nss| {
                nss.iter()
                    .find(|ns| ns.typ() == LinuxNamespaceType::Network)
            })
            .and_then(|ns| ns.path().clone())
            .filter(|p| !p.as_os_str().is_empty());
        return Ok(BundleConfig {
            annotations,
            netns_path,
        });
    }

    let v: serde_json::Value = serde_json::from_slice(bytes)?;
    let mut annotations = BTreeMap::new();
    match v.get("annotations") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(m)) => {
            for (k, val) in m {
                let s = val.as_str().ok_or_else(|| {
                    Error::new(format!("annotation {k}: value {val} is not a string"))
                })?;
                annotations.insert(k.clone(), s.to_string());
            }
        }
        Some(other) => {
            return Err(Error::new(format!(
                "\"annotations\" is not an object: {other}"
            )))
        }
    }
    let netns_path = v
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
        .and_then(|nss| {
            nss.iter().find(|ns| {
                matches!(
                    ns.get("type").and_then(|t| t.as_str()),
                    Some("network" | "net")
                )
            })
        })
        .and_then(|ns| ns.get("path"))
        .and_then(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    Ok(BundleConfig {
        annotations,
        netns_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipvnet-oci-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    const CONFIG_NETNS: &str = r#"{
        "ociVersion": "1.0.2-dev",
        "process": {"args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "annotations": {"ipvnet.network": "db_net", "from": "config"},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1"}]}
    }"#;

    #[test]
    fn runc_createruntime_state_with_annotations() {
        // Shape of runc 1.1's state; config.json is not read (bundle absent).
        let s = r#"{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,
                    "bundle":"/nonexistent/bundle","annotations":{"ipvnet.network":"db_net"}}"#;
        let i = read_hook_input(s.as_bytes()).unwrap();
        assert_eq!(i.id, "c1");
        assert_eq!(i.pid, Some(4242));
        assert_eq!(i.bundle.as_deref(), Some(Path::new("/nonexistent/bundle")));
        assert_eq!(
            i.annotations.get("ipvnet.network").map(String::as_str),
            Some("db_net")
        );
        assert_eq!(i.netns_path, None);
        assert_eq!(netns_of(&i).unwrap(), PathBuf::from("/proc/4242/ns/net"));
    }

    #[test]
    fn crun_state_extra_fields_ignored() {
        let s = r#"{"ociVersion":"1.0","id":"c2","status":"created","pid":7,"root":"/run/crun/c2",
                    "bundle":"/nonexistent","annotations":{"ipvnet.network":"n"},"future":{"x":[1]}}"#;
        let i = read_hook_input(s.as_bytes()).unwrap();
        assert_eq!((i.id.as_str(), i.pid), ("c2", Some(7)));
    }

    #[test]
    fn annotations_from_config_when_state_lacks_them() {
        let d = tmpdir("fromcfg");
        fs::write(d.join("config.json"), CONFIG_NETNS).unwrap();
        let s = format!(
            r#"{{"ociVersion":"1.0.2-dev","id":"c3","status":"creating","pid":9,"bundle":{:?},
                 "annotations":{{"from":"state"}}}}"#,
            d.to_str().unwrap()
        );
        let i = read_hook_input(s.as_bytes()).unwrap();
        assert_eq!(
            i.annotations.get("ipvnet.network").map(String::as_str),
            Some("db_net")
        );
        assert_eq!(i.annotations.get("from").map(String::as_str), Some("state"));
        assert_eq!(
            i.netns_path.as_deref(),
            Some(Path::new("/var/run/netns/cni-1"))
        );
        assert_eq!(netns_of(&i).unwrap(), PathBuf::from("/var/run/netns/cni-1"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn poststop_without_pid_reads_config() {
        let d = tmpdir("poststop");
        fs::write(d.join("config.json"), CONFIG_NETNS).unwrap();
        let s = format!(
            r#"{{"ociVersion":"1.0.2-dev","id":"c4","status":"stopped","bundle":{:?},
                 "annotations":{{"ipvnet.network":"db_net"}}}}"#,
            d.to_str().unwrap()
        );
        let i = read_hook_input(s.as_bytes()).unwrap();
        assert_eq!(i.pid, None);
        assert_eq!(netns_of(&i).unwrap(), PathBuf::from("/var/run/netns/cni-1"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn poststop_without_pid_or_path_is_an_error() {
        let s = r#"{"id":"c5","status":"stopped","bundle":"/nonexistent","annotations":{"ipvnet.network":"n"}}"#;
        let i = read_hook_input(s.as_bytes()).unwrap();
        let e = netns_of(&i).unwrap_err().to_string();
        assert!(e.contains("container c5: network namespace unknown"), "{e}");
    }

    #[test]
    fn relative_bundle_resolved_against_cwd() {
        let s = r#"{"id":"c6","pid":1,"bundle":"some/dir","annotations":{"ipvnet.network":"n"}}"#;
        let i = read_hook_input(s.as_bytes()).unwrap();
        assert_eq!(
            i.bundle.unwrap(),
            std::env::current_dir().unwrap().join("some/dir")
        );
    }

    #[test]
    fn bad_state_is_refused() {
        let e = read_hook_input(&b"not json"[..]).unwrap_err().to_string();
        assert!(e.starts_with("parse the container state on stdin: "), "{e}");
        let e = read_hook_input(&br#"{"pid":1}"#[..])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "the container state on stdin has no \"id\"");
    }

    #[test]
    fn config_oci_spec_rejects_falls_back() {
        // A namespace type oci-spec does not know, and a "user" ns joined by path.
        let cfg = br#"{"ociVersion":"1.2.0","annotations":{"ipvnet.network":"x"},
            "linux":{"namespaces":[{"type":"brand-new"},{"type":"network","path":"/proc/1/ns/net"}]}}"#;
        let c = parse_config(cfg).unwrap();
        assert_eq!(
            c.annotations.get("ipvnet.network").map(String::as_str),
            Some("x")
        );
        assert_eq!(c.netns_path.as_deref(), Some(Path::new("/proc/1/ns/net")));

        let e = parse_config(br#"{"annotations":{"a":1}, "linux": 5}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "annotation a: value 1 is not a string");
    }

    #[test]
    fn config_without_netns_path() {
        let c =
            parse_config(br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"network"}]}}"#)
                .unwrap();
        assert_eq!(c, BundleConfig::default());
    }

    #[test]
    fn missing_config_is_tolerated_bad_config_is_not() {
        assert_eq!(
            read_bundle_config(Path::new("/nonexistent-bundle")).unwrap(),
            None
        );
        let d = tmpdir("badcfg");
        fs::write(d.join("config.json"), "{").unwrap();
        let s = format!(
            r#"{{"id":"c7","pid":3,"bundle":{:?}}}"#,
            d.to_str().unwrap()
        );
        let e = read_hook_input(s.as_bytes()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("parse {}/config.json: ", d.display())),
            "{e}"
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
