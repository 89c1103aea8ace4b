//! Test-only crash points: `YBPOS_CRASH_AT=name[:n]` kills the process with
//! SIGKILL the n-th time `name` is reached (feature `crash-points`, enabled
//! only by the end-to-end tests' own daemon binary; a release build has
//! none — CI checks it with `strings`).

/// Dies here if this is the configured crash point.
#[cfg(feature = "crash-points")]
pub fn point(name: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static CFG: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let cfg = CFG.get_or_init(|| {
        let v = std::env::var("YBPOS_CRASH_AT").ok()?;
        let (n, k) = v.split_once(':').unwrap_or((&v, "1"));
        Some((n.to_string(), k.parse().unwrap_or(1)))
    });
    if let Some((n, k)) = cfg
        && n == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *k
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Crash points are compiled out.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_name: &str) {}
