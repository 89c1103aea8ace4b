//! The local API (spec `local-api.md`), version 1.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 framing; [`error`]: codes and kinds;
//! - [`params`] and [`methods`]: requests parsed into typed [`methods::Call`]s;
//! - [`conn`]: per-connection state; [`dispatch`]: what every transport
//!   does with a message;
//! - [`unix`]: the Unix-socket transport; [`http`]: the loopback HTTP +
//!   WebSocket transport, with [`guard`] (Host/Origin/token checks) and
//!   [`token`] (the token file).

pub mod conn;
pub mod dispatch;
pub mod error;
pub mod guard;
pub mod http;
pub mod jsonrpc;
pub mod methods;
pub mod params;
pub mod token;
pub mod unix;
