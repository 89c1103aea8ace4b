//! A faithful simulator of the provincial settlement gateway (gateway.md §8).
//!
//! Built on the same message types as the client, so the two cannot drift.
//! Used by the project's tests, by `ybposd --demo`, and by HIS vendors as a
//! sandbox through the `ybpos-gateway-sim` binary.
//!
//! - [`people`]: the built-in test people.
//! - [`state`]: the platform's state, envelope rules, sign-in, decode, 1101
//!   (sans-IO); `business` (private): every business transaction.
//! - [`ledger`]: the books (visits, fee lines, settlements, reversals), the
//!   split policy, and the [`ledger::Ledger`] view with its conservation check.
//! - [`faults`]: fault injection per infno and count.
//! - [`server`]: HTTP routes for the three transport profiles, auth checks,
//!   faults, TLS, and the control API.

mod business;
pub mod faults;
pub mod ledger;
pub mod people;
pub mod server;
pub mod state;

pub use faults::{FaultKind, FaultRule, FiredFault};
pub use ledger::Ledger;
pub use server::{RunningSim, Simulator, TestCode, tls_config_from_pem};
pub use state::SimSettings;
