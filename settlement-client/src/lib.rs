//! The settlement gateway client: what a terminal needs to talk to the
//! provincial gateway.
//!
//! [`gateway::Gateway`] builds the request envelope ([`envelope`]), allocates
//! msgids ([`msgid`]), signs ([`auth`]), addresses ([`transport`]), posts
//! ([`http`]) and classifies every answer into exactly one
//! [`outcome::Outcome`]; [`decode`] reads e-voucher decode answers;
//! [`reversal`] reads 2601 answers and holds the platform's wording;
//! [`catalogue`] is the transaction table as data; [`money`] keeps amounts
//! exact; [`redact`] masks personal data for logs.
//!
//! The gateway's simulator is the separate crate `settlement-sim`, built on
//! these types so the two cannot drift; a daemon built without it (no
//! `demo` feature) carries no server. The few server-side readings of the
//! same rules stay here, beside the client's: [`auth::Signer::verify`],
//! [`catalogue::by_path`] and [`decode::error_body`].

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
pub mod transport;
pub mod wording;

pub use gateway::{Gateway, GatewaySettings, LinkState};
pub use money::Money;
pub use msgid::MsgId;
pub use outcome::Outcome;
