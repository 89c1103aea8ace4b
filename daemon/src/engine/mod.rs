//! The money engine: journaled, idempotent, self-reversing transactions.
//!
//! - [`machine`]: the state machine (sans-IO), shared with the property test.
//! - [`runtime`]: submits, resolves unknown outcomes, recovers at start-up.

pub mod machine;
pub mod runtime;

pub use runtime::Engine;
