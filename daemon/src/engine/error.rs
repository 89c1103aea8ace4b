//! What can go wrong with a transaction call, in the engine's own terms
//! (the API maps each to its code: `api::error`).

use super::machine::{Invalid, State};
use crate::journal::JournalError;

/// How a record is named by a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnKey {
    /// The daemon's `txn_id`.
    TxnId(String),
    /// The caller's `client_ref`.
    ClientRef(String),
}

/// Why `txn.submit`, `txn.get`, `txn.list` or `report.usage` gave no record.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TxnError {
    /// 9001, 9002, 1162 and 2601 are the daemon's own.
    #[error("transaction {0} is run by the daemon itself")]
    InternalInfno(String),
    /// Not in the catalogue.
    #[error("unknown transaction {0:?}")]
    UnknownInfno(String),
    /// A field the platform requires is missing (named `input.node.field`).
    #[error("{0} is required for this transaction")]
    MissingField(String),
    /// The input names a person, but nothing says where they are insured.
    #[error("no insuplc_admdvs: give session_id or insuplc_admdvs")]
    NoInsuranceArea,
    /// The input's person node (named `input.node`) is neither an object nor a list.
    #[error("{0} must be an object or a list")]
    BadNode(String),
    /// The identity session is unknown or has expired.
    #[error("session {0} has expired")]
    SessionExpired(String),
    /// The `client_ref` was used for a different request.
    #[error("client_ref {0:?} was used for a different request")]
    DuplicateClientRef(String),
    /// An earlier attempt of the same sale is still being resolved.
    #[error("an earlier attempt of this sale ({txn_id}) is still being resolved")]
    SaleUnresolved {
        /// The earlier attempt.
        txn_id: String,
    },
    /// The sale has a settlement in effect: cancel it before selling again.
    #[error("this sale is settled ({txn_id}); cancel that settlement first")]
    AlreadySettled {
        /// The settlement in effect.
        txn_id: String,
    },
    /// `txn.resolve` of a record that does not need a person.
    #[error("transaction {txn_id} is {} and does not need a person", .state.as_str())]
    NotClosable {
        /// The record.
        txn_id: String,
        /// Its state.
        state: State,
    },
    /// Nothing was sent: the gateway (or its sign-in) could not be reached.
    #[error("the gateway could not be reached: {0}")]
    GatewayUnreachable(String),
    /// The request could not be built.
    #[error("cannot build the request: {0}")]
    Prepare(String),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A record read a moment ago is gone.
    #[error("record vanished")]
    Vanished,
    /// The state machine refused a transition (a bug).
    #[error(transparent)]
    Transition(#[from] Invalid),
    /// No such record.
    #[error("no such transaction")]
    NotFound(TxnKey),
}
