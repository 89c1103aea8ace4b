//! The local API (spec `local-api.md`), version 1.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 framing; [`error`]: codes and kinds;
//! - [`params`] and [`methods`]: requests parsed into typed [`methods::Call`]s;
//! - [`conn`]: per-connection state; [`unix`]: the Unix-socket transport.

pub mod conn;
pub mod error;
pub mod jsonrpc;
pub mod methods;
pub mod params;
pub mod unix;
