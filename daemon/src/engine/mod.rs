//! The money engine: journaled, idempotent, self-reversing transactions.
//!
//! - [`machine`]: the state machine (sans-IO), shared with the property test.
//! - [`policy`]: every decision about an answer, without I/O — what it
//!   means for the record, which request resolves an unknown outcome, what
//!   that request's answer establishes, when to ask again.
//! - [`request`]: a submission before it is sent — [`Submit`], checks,
//!   session filling, the idempotency hash and the sale key.
//! - [`runtime`]: the [`Engine`] — submits and recovers at start-up;
//!   `resolver` (private): works unknown outcomes until final. Both send
//!   and journal; [`policy`] decides.
//! - [`report`]: `txn.get`, `txn.list`, `report.usage`.
//! - [`crash`]: test-only crash points.
//!
//! The engine answers with journal [`Record`](crate::journal::Record)s and
//! [`TxnError`]s; the API renders them.

pub mod crash;
mod error;
pub mod machine;
pub mod policy;
pub mod report;
pub mod request;
mod resolver;
pub mod runtime;

pub use error::{TxnError, TxnKey};
pub use report::{DayUsage, Usage};
pub use request::Submit;
pub use resolver::STALE_AFTER;
pub use runtime::{Engine, EngineSettings};
