//! `ipvnet gc`: release what containers that no longer exist still hold
//! (a runtime that crashed before poststop, a node that rebooted).
//!
//! How it decides, for each endpoint record of a container:
//! - it was made in another boot (its `boot_id` differs from
//!   /proc/sys/kernel/random/boot_id): the container is gone;
//! - else its init process (`pid`) is gone, or the process now holding that
//!   pid started at another time (`pid_start`, field 22 of /proc/PID/stat)
//!   than the one recorded: the container is gone;
//! - otherwise, or when the record lacks these facts, it is kept.
//!
//! Pods (the NRI plugin's) and `ipvnet lease` reservations are never
//! touched here: pods are reconciled against containerd.

use crate::error::{Error, Result};
use crate::store::{Owner, OwnerKind, Store};

#[derive(Debug, Default)]
pub struct Report {
    pub released: Vec<String>,
    pub kept: usize,
    pub orphan_leases: usize,
}

pub fn run(store: &Store) -> Result<Report> {
    let mut report = Report::default();
    let lock = store.lock()?;
    let mut errors = Vec::new();
    for owner in store.owners()? {
        if owner.kind == OwnerKind::Container && is_gone(&owner) {
            match lock.release(&owner.id) {
                Ok(_) => report.released.push(owner.id),
                Err(e) => errors.push(e),
            }
        } else {
            report.kept += 1;
        }
    }
    match lock.remove_orphan_leases() {
        Ok(n) => report.orphan_leases = n,
        Err(e) => errors.push(e),
    }
    Error::join(errors).map_or(Ok(report), Err)
}

/// Whether a container's record is provably stale (see the module doc).
pub fn is_gone(owner: &Owner) -> bool {
    let (Some(boot), Some(pid)) = (owner.labels.get("boot_id"), owner.labels.get("pid")) else {
        return false;
    };
    if Some(boot.as_str()) != boot_id().as_deref() {
        return true;
    }
    let Ok(pid) = pid.parse::<i32>() else { return false };
    match process_start_time(pid) {
        None => true,
        Some(now) => owner.labels.get("pid_start").is_some_and(|s| s != &now.to_string()),
    }
}

/// Start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat); `None` when there is no such process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_dead_pid_is_gone() {
        let me = std::process::id() as i32;
        let mut owner = Owner {
            id: "c1".into(),
            kind: OwnerKind::Container,
            hostname: None,
            netns: None,
            labels: crate::commands::hook::liveness_labels(Some(me)),
            endpoints: vec![],
            created: String::new(),
        };
        assert!(!is_gone(&owner));
        // Same pid, another start time: the pid was reused.
        owner.labels.insert("pid_start".into(), "1".into());
        assert!(is_gone(&owner));
        // Another boot.
        owner.labels = crate::commands::hook::liveness_labels(Some(me));
        owner.labels.insert("boot_id".into(), "another-boot".into());
        assert!(is_gone(&owner));
        // Unknown facts: kept.
        owner.labels.clear();
        assert!(!is_gone(&owner));
    }

    #[test]
    fn exited_child_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let labels = crate::commands::hook::liveness_labels(Some(pid));
        child.wait().unwrap();
        let owner = Owner {
            id: "c2".into(),
            kind: OwnerKind::Container,
            hostname: None,
            netns: None,
            labels,
            endpoints: vec![],
            created: String::new(),
        };
        assert!(is_gone(&owner));
    }
}
