//! Time formatting for the local API: RFC 3339 with the local offset.

use std::time::SystemTime;

use chrono::{DateTime, Local, SecondsFormat};

/// `2026-11-23T10:00:00.123+08:00`.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Local>::from(t).to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// Now, RFC 3339.
pub fn now_rfc3339() -> String {
    Local::now().to_rfc3339_opts(SecondsFormat::Millis, false)
}
