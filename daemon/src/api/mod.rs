//! The local API (spec `local-api.md`), version 1: the edge where JSON-RPC
//! meets the domain.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 framing; [`error`]: codes and kinds, and
//!   the mapping of every domain error to them;
//! - [`params`] and [`methods`]: requests parsed into typed
//!   [`crate::service::Call`]s;
//! - [`render`]: domain answers and events → the wire JSON;
//! - [`openrpc`]: the API's contract as an OpenRPC document
//!   (`docs/openrpc.json`, served by `rpc.discover`);
//! - [`dispatch`]: what every transport does with a message (parse,
//!   execute for a [`crate::service::Caller`], render, answer, count);
//! - [`unix`]: the Unix-socket transport; [`http`]: the loopback HTTP +
//!   WebSocket transport, with [`guard`] (Host/Origin/token checks) and
//!   [`token`] (the token file); [`live`]: the `[api]` settings a reload
//!   replaces under running transports, and connection caps.

pub mod dispatch;
pub mod error;
pub mod guard;
pub mod http;
pub mod jsonrpc;
pub mod live;
pub mod methods;
pub mod openrpc;
pub mod params;
pub mod render;
pub mod token;
pub mod unix;
