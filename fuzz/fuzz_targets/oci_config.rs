//! A bundle's config.json, through `oci::parse_config` (oci-spec's `Spec`
//! first, then the lenient fallback that reads just annotations and the
//! network namespace path).
//!
//! Checks: no panic; whatever is accepted is consistent with the JSON: every
//! annotation returned is a string member of "annotations", and a namespace
//! path returned is non-empty.
#![no_main]

use ipvnet::oci::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = parse_config(data) else { return };
    // Whatever was accepted holds those annotations. serde skips ignored
    // members without checking their UTF-8 or the range of their numbers
    // (as Go's encoding/json, which runtimes use, accepts them too), so
    // compare with the lossy text, when serde_json's Value can hold it.
    let text = String::from_utf8_lossy(data);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    for (k, val) in &cfg.annotations {
        let got = v.get("annotations").and_then(|a| a.get(k)).and_then(|x| x.as_str());
        assert_eq!(got, Some(val.as_str()), "annotation {k:?} not as in the JSON");
    }
    if let Some(p) = &cfg.netns_path {
        assert!(!p.as_os_str().is_empty(), "empty netns path returned");
    }
});
