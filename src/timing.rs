//! Phase timings for benchmarks: with `IPVNET_HOOK_TIMINGS=1` in the
//! environment, `mark` prints `ipvnet-timing PHASE MICROSECONDS` to stderr,
//! the time since `start` (called first thing in main). Off (one relaxed
//! load per mark) otherwise.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

/// Start the clock if `IPVNET_HOOK_TIMINGS` is set (non-empty).
pub fn start() {
    START.get_or_init(|| std::env::var_os("IPVNET_HOOK_TIMINGS").filter(|v| !v.is_empty()).map(|_| Instant::now()));
}

/// Print the time since `start` for PHASE (cumulative), if enabled.
pub fn mark(phase: &str) {
    if let Some(Some(t0)) = START.get() {
        eprintln!("ipvnet-timing {phase} {}", t0.elapsed().as_micros());
    }
}
