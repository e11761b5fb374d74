//! The container state a runtime writes on an OCI hook's stdin, through
//! `oci::read_hook_input` (and `oci::netns_of`).
//!
//! Checks: no panic; an accepted state has an id, a positive pid if any,
//! and an absolute bundle path if any. A state naming a bundle makes the
//! hook read BUNDLE/config.json: the fuzzer may name real directories, which
//! only ever get read.
#![no_main]

use ipvnet::oci::{netns_of, read_hook_input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = read_hook_input(data) else { return };
    assert!(!input.id.is_empty(), "accepted a state without an id");
    if let Some(pid) = input.pid {
        assert!(pid > 0, "accepted pid {pid}");
    }
    if let Some(b) = &input.bundle {
        assert!(b.is_absolute(), "bundle {b:?} left relative");
    }
    if let Ok(p) = netns_of(&input) {
        assert!(!p.as_os_str().is_empty());
    }
});
