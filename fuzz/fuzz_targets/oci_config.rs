//! A bundle's config.json, through `oci::parse_config` (oci-spec's `Spec`
//! first, then the lenient fallback that reads just annotations and the
//! network namespace path).
//!
//! Checks: no panic; whatever is accepted is JSON, consistent with it: every
//! annotation returned is a string member of "annotations", and a namespace
//! path returned is non-empty.
#![no_main]

use ipvnet::oci::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = parse_config(data) else { return };
    // Whatever was accepted was JSON with those annotations in it. (serde
    // skips ignored members without checking their UTF-8, as Go's
    // encoding/json replaces it, so compare with the lossy text.)
    let text = String::from_utf8_lossy(data);
    let v: serde_json::Value = serde_json::from_str(&text).expect("parse_config accepted invalid JSON");
    for (k, val) in &cfg.annotations {
        let got = v.get("annotations").and_then(|a| a.get(k)).and_then(|x| x.as_str());
        assert_eq!(got, Some(val.as_str()), "annotation {k:?} not as in the JSON");
    }
    if let Some(p) = &cfg.netns_path {
        assert!(!p.as_os_str().is_empty(), "empty netns path returned");
    }
});
