//! How every gateway call ends: the base of the money engine.
//!
//! Exactly one of four outcomes, so callers can decide mechanically:
//! `Ok` (done), `Rejected` (a definitive no), `NotSent` (nothing left this
//! machine: safe to retry with the same msgid) or `Unknown` (it may have been
//! committed: reverse it, never resend it under a new msgid).

/// The end of one gateway call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// The gateway said yes.
    Ok(T),
    /// The gateway said no, definitively.
    Rejected {
        /// `infcode` (or decode `code`, or `-HTTP status` for 4xx).
        infcode: i64,
        /// The gateway's message.
        err_msg: String,
    },
    /// The request never left: connect refused, DNS, TLS, timeout while connecting.
    NotSent {
        /// What failed.
        reason: String,
    },
    /// The request left, but what happened is not known: timeout, reset, 5xx,
    /// unparsable, truncated or over-long body.
    Unknown {
        /// What went wrong.
        reason: String,
    },
}

impl<T> Outcome<T> {
    /// Maps the success value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Ok(t) => Outcome::Ok(f(t)),
            Outcome::Rejected { infcode, err_msg } => Outcome::Rejected { infcode, err_msg },
            Outcome::NotSent { reason } => Outcome::NotSent { reason },
            Outcome::Unknown { reason } => Outcome::Unknown { reason },
        }
    }

    /// Chains a fallible step on the success value.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Outcome<U>) -> Outcome<U> {
        match self {
            Outcome::Ok(t) => f(t),
            Outcome::Rejected { infcode, err_msg } => Outcome::Rejected { infcode, err_msg },
            Outcome::NotSent { reason } => Outcome::NotSent { reason },
            Outcome::Unknown { reason } => Outcome::Unknown { reason },
        }
    }

    /// Ok or Rejected: the gateway's answer is known.
    pub fn is_definitive(&self) -> bool {
        matches!(self, Outcome::Ok(_) | Outcome::Rejected { .. })
    }

    /// A short class name for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Rejected { .. } => "rejected",
            Outcome::NotSent { .. } => "not_sent",
            Outcome::Unknown { .. } => "unknown",
        }
    }

    /// The gateway rejected our `sign_no` (expired or unknown): sign in again.
    pub fn is_sign_in_rejection(&self) -> bool {
        match self {
            Outcome::Rejected { err_msg, .. } => {
                err_msg.contains("签到") || err_msg.to_ascii_lowercase().contains("sign_no")
            }
            _ => false,
        }
    }
}
