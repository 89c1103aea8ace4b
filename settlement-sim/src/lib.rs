//! The gateway simulator: a faithful stand-in for the provincial settlement
//! gateway (gateway.md §8), a sandbox for HIS vendors and for our own tests.
//!
//! Built on `settlement-client`'s message types (envelope, catalogue, money,
//! auth, reversal wording), so client and simulator cannot drift. Used by
//! the project's tests, by `ybposd --demo` (the daemon's `demo` feature), and
//! by HIS vendors through the `ybpos-gateway-sim` binary (SIMULATOR.md is
//! their guide). Never linked into a production daemon built without `demo`.
//!
//! - [`people`]: the built-in test people.
//! - [`state`]: the platform's state, envelope rules, sign-in, decode, 1101
//!   (sans-IO); `business` (private): every business transaction.
//! - [`ledger`]: the books (visits, fee lines, settlements, reversals), the
//!   split policy, and the [`ledger::Ledger`] view with its conservation check.
//! - [`faults`]: fault injection per infno and count.
//! - [`server`]: HTTP routes for the three transport profiles, auth checks,
//!   faults, TLS, and the control API (`/sim/...`).
//!
//! **Invariant:** a refused request changes nothing; every committed
//! reversible request is recorded by msgid so 2601 undoes exactly it.

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
