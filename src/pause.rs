//! gate's waits between retries, in one place. Test builds (debug) scale them by
//! `GATE_TEST_PAUSE_SCALE` (for example `0.01`) so fault campaigns run in seconds; release
//! builds always wait the full time.

use std::time::Duration;

/// Sleeps for `d` (scaled in test builds).
pub fn sleep(d: Duration) {
    std::thread::sleep(scaled(d));
}

#[cfg(debug_assertions)]
fn scaled(d: Duration) -> Duration {
    match std::env::var("GATE_TEST_PAUSE_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        Some(f) if f.is_finite() && (0.0..=1.0).contains(&f) => d.mul_f64(f),
        _ => d,
    }
}

#[cfg(not(debug_assertions))]
fn scaled(d: Duration) -> Duration {
    d
}
