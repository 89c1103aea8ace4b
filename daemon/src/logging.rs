//! Logs: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//! systemd's journal collects stderr; colours only on a terminal.

use std::io::IsTerminal;

/// Libraries that would log message payloads, capped below that level.
pub const PAYLOAD_LOGGERS: &[&str] = &["tungstenite=debug", "tokio_tungstenite=debug"];

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // tungstenite logs every WebSocket frame's payload at trace level, and
    // payloads carry identities and codes: capped whatever RUST_LOG says.
    for d in PAYLOAD_LOGGERS {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
