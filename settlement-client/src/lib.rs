//! The settlement gateway, both sides of it.
//!
//! Client side: [`gateway::Gateway`] builds the request envelope
//! ([`envelope`]), allocates msgids ([`msgid`]), signs ([`auth`]), addresses
//! ([`transport`]), posts ([`http`]) and classifies every answer into exactly
//! one [`outcome::Outcome`]; [`decode`] reads e-voucher decode answers;
//! [`catalogue`] is the transaction table as data; [`money`] keeps amounts
//! exact. Server side: [`sim`] is the gateway simulator on the same types.
//! [`redact`] masks personal data for logs.

pub mod auth;
pub mod catalogue;
pub mod decode;
pub mod envelope;
pub mod gateway;
pub mod http;
pub mod money;
pub mod msgid;
pub mod outcome;
pub mod redact;
pub mod reversal;
pub mod sim;
pub mod transport;

pub use gateway::{Gateway, GatewaySettings, LinkState};
pub use money::Money;
pub use msgid::MsgId;
pub use outcome::Outcome;
