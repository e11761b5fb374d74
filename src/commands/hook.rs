//! `ipvnet hook createRuntime | poststop`: the OCI runtime hook.
//!
//! createRuntime reads the container state on stdin, and attaches the
//! container to the networks its annotations name; a container without
//! `ipvnet.network` is left alone. poststop releases by container id
//! everything the container held; it is idempotent.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::annotations;
use crate::attach::{attach, detach, AttachRequest};
use crate::error::{Context, Error, Result};
use crate::oci;
use crate::store::{OwnerKind, Store};

pub fn run(state_dir: &Path, stage: &str, mut stdin: impl Read) -> Result<()> {
    let mut state = Vec::new();
    stdin.read_to_end(&mut state).context("read the container state from stdin")?;
    match stage {
        // prestart is the deprecated stage at the same point, still used by
        // some hooks.d setups.
        "createRuntime" | "prestart" => create_runtime(state_dir, &state),
        "poststop" => post_stop(state_dir, &state),
        other => Err(Error::new(format!("unknown hook stage {other:?}: use createRuntime or poststop"))),
    }
}

fn create_runtime(state_dir: &Path, state: &[u8]) -> Result<()> {
    use crate::timing::mark;
    mark("main");
    let input = oci::read_hook_input(state)?;
    let Some(req) = annotations::parse(&input.annotations)? else { return Ok(()) };
    let netns = oci::netns_of(&input)?;
    mark("parse");
    let mut statics: Vec<std::net::IpAddr> = req.ips.iter().map(|a| (*a).into()).collect();
    statics.extend(req.ip6s.iter().map(|a| std::net::IpAddr::from(*a)));
    let store = Store::open(state_dir)?;
    let request = AttachRequest {
        owner_id: &input.id,
        kind: OwnerKind::Container,
        hostname: Some(req.hostname.clone().unwrap_or_else(|| input.id.clone())),
        netns: &netns,
        networks: &req.networks,
        statics: &statics,
        labels: liveness_labels(input.pid),
    };
    mark("labels");
    attach(&store, &request).with_context(|| format!("container {}", input.id))?;
    mark("done");
    Ok(())
}

fn post_stop(state_dir: &Path, state: &[u8]) -> Result<()> {
    // Only the id matters: the bundle may already be gone.
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    crate::timing::mark("main");
    let Id { id } = serde_json::from_slice(state).context("parse the container state on stdin")?;
    if !state_dir.join("endpoints").is_dir() {
        return Ok(()); // ipvnet never ran here
    }
    let store = Store::open(state_dir)?;
    detach(&store, &id).with_context(|| format!("container {id}"))?;
    crate::timing::mark("done");
    Ok(())
}

/// What gc needs to tell, later, whether this container still runs: its
/// init pid, that process's start time, and the boot it started in.
pub fn liveness_labels(pid: Option<i32>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some(pid) = pid {
        labels.insert("pid".into(), pid.to_string());
        if let Some(start) = crate::commands::gc::process_start_time(pid) {
            labels.insert("pid_start".into(), start.to_string());
        }
    }
    if let Some(boot) = crate::commands::gc::boot_id() {
        labels.insert("boot_id".into(), boot);
    }
    labels
}
