//! `ybposd`, the 医保码 terminal daemon, and the `ybpos` CLI.
//!
//! - [`run`]: wiring and phased shutdown ([`run::Daemon`]).
//! - [`classify`]: payment code or 医保码 candidate (sans-IO).
//! - [`scanhub`]: scanner status, de-duplication, waits, `scan` events.
//! - [`identity`] and [`sessions`]: decode + 1101 into identity sessions.
//! - [`engine`] and [`journal`]: journaled, idempotent, self-reversing transactions.
//! - [`service`]: executes API calls against the parts above.
//! - [`api`]: JSON-RPC 2.0 types, method parsing, the Unix-socket and
//!   HTTP/WebSocket transports.
//! - [`metrics`]: counters and gauges for `GET /metrics`.
//! - [`events`]: the event bus behind `events.subscribe`.
//! - `demo` (cargo feature `demo`, on by default): `ybposd --demo`;
//!   [`cli`]: the `ybpos` command line.
//! - [`logging`], [`time`]: small shared helpers.

pub mod api;
pub mod classify;
pub mod cli;
#[cfg(feature = "demo")]
pub mod demo;
pub mod engine;
pub mod events;
pub mod identity;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod run;
pub mod scanhub;
pub mod service;
pub mod sessions;
pub mod time;
