//! Logs: `tracing` to stderr, filtered by `[log] filter` in the config, else
//! `RUST_LOG` (default `info`). systemd's journal collects stderr; colours
//! only on a terminal. The filter can be replaced while running
//! ([`set_filter`], on reload).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// Libraries that would log message payloads, capped below that level.
pub const PAYLOAD_LOGGERS: &[&str] = &["tungstenite=debug", "tokio_tungstenite=debug"];

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// The filter for `spec` with the payload caps added; an error names the
/// bad directive.
fn build(spec: &str) -> Result<EnvFilter, String> {
    let mut filter = EnvFilter::builder()
        .parse(spec)
        .map_err(|e| format!("{spec:?}: {e}"))?;
    // tungstenite logs every WebSocket frame's payload at trace level, and
    // payloads carry identities and codes: capped whatever the filter says.
    for d in PAYLOAD_LOGGERS {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    Ok(filter)
}

/// Checks a `[log] filter` value the way [`set_filter`] will read it.
pub fn check_filter(spec: &str) -> Result<(), String> {
    build(spec).map(|_| ())
}

/// The filter used when the config names none: `RUST_LOG`, else `info`.
pub fn default_filter() -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|s| build(s).is_ok())
        .unwrap_or_else(|| "info".into())
}

/// Installs the global subscriber with [`default_filter`]; a second call is a no-op.
pub fn init() {
    let filter = build(&default_filter()).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if tracing_subscriber::registry()
        .with(layer)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = HANDLE.set(handle);
    }
}

/// Replaces the running filter (`None`: back to [`default_filter`]).
pub fn set_filter(spec: Option<&str>) -> Result<(), String> {
    let spec = spec.map(str::to_string).unwrap_or_else(default_filter);
    let filter = build(&spec)?;
    match HANDLE.get() {
        Some(h) => h.reload(filter).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}
