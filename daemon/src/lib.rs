//! `ybposd`, the 医保码 terminal daemon, and the `ybpos` CLI.
//!
//! - [`args`]: `ybposd`'s command line.
//! - [`run`]: wiring and phased shutdown ([`run::Daemon`]).
//! - [`classify`]: payment code or 医保码 candidate (sans-IO).
//! - [`scanhub`]: scanner status, de-duplication, waits, `scan` events.
//! - [`identity`] and [`sessions`]: decode + 1101 into identity sessions.
//! - [`engine`] and [`journal`]: journaled, idempotent, self-reversing transactions.
//! - [`service`]: executes calls against the parts above; answers with
//!   domain values.
//! - [`api`]: the edge — JSON-RPC 2.0, method parsing, rendering of domain
//!   values and errors, the Unix-socket and HTTP/WebSocket transports.
//! - [`metrics`]: counters and gauges for `GET /metrics`.
//! - [`events`]: the event bus behind `events.subscribe`.
//! - `demo` (cargo feature `demo`, on by default): `ybposd --demo`;
//!   [`cli`]: the `ybpos` command line.
//! - [`logging`]: the `tracing` subscriber (filter replaceable on reload).
//! - [`health`]: the core's health checks, systemd's watchdog and `STATUS=`.
//! - [`reload`]: SIGHUP — the config checked again and applied live.
//!
//! Layers point one way: `api` → `service` → domain (`engine`, `identity`,
//! `scanhub`, `journal`) → clients and drivers. Nothing below `api`
//! imports it.

pub mod api;
pub mod args;
pub mod classify;
pub mod cli;
#[cfg(feature = "demo")]
pub mod demo;
pub mod engine;
pub mod events;
pub mod health;
pub mod identity;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod reload;
pub mod run;
pub mod scanhub;
pub mod service;
pub mod sessions;
