//! The transaction state machine (local-api.md records; gateway.md §5). Sans-IO.
//!
//! ```text
//! pending ──sending──► sent ──ok──────────► succeeded
//!    │                  ├──rejected───────► failed (a settlement: unconfirmed ──probe──► failed | reversal_failed)
//!    │                  ├──not sent───────► failed (retryable: resubmit resends, same msgid)
//!    │                  └──unknown────────► unknown ──resolving──► reversing ──► reversed
//!    └─(restart)─► failed (not sent)          │                        └──────► reversal_failed
//!                                             ├─(query: 2201, 2204, 2301)──► succeeded | failed
//!                                             ├─(side-effect free)─► pending (new msgid)
//!                                             └─(no way to resolve)─► reversal_failed
//! reversal_failed, unknown, reversing … ──a person (txn.resolve)──► succeeded | failed | reversed
//! ```
//!
//! The runtime (`engine::runtime`) asks [`next`] what to do, does it, and
//! feeds what happened back through [`apply`], journaling every new state
//! before acting on it. Nothing here does I/O, so the property test can drive
//! every sequence of outcomes and crashes through the same code.

use settlement_client::catalogue::TxnSpec;

/// A record's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Journaled, not yet sent.
    Pending,
    /// Sent (or about to be): the gateway may have it.
    Sent,
    /// The gateway said yes.
    Succeeded,
    /// The gateway said no, or it was never sent.
    Failed,
    /// Nobody knows whether the gateway committed it.
    Unknown,
    /// Being undone (2601 or the transaction's own cancel).
    Reversing,
    /// Undone (or proven never to have arrived).
    Reversed,
    /// The undo was refused: needs a person.
    ReversalFailed,
}

impl State {
    /// All states, for listing and parsing.
    pub const ALL: [State; 8] = [
        State::Pending,
        State::Sent,
        State::Succeeded,
        State::Failed,
        State::Unknown,
        State::Reversing,
        State::Reversed,
        State::ReversalFailed,
    ];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sent => "sent",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Unknown => "unknown",
            State::Reversing => "reversing",
            State::Reversed => "reversed",
            State::ReversalFailed => "reversal_failed",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No further transition will happen by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed | State::Reversed | State::ReversalFailed
        )
    }
}

/// How an unknown outcome is resolved for a transaction type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Reverse with 2601 by msgid (gateway.md §5 rule 2).
    Reverse,
    /// Undo with the transaction's own cancel, built from its input (rule 5).
    Undo(&'static str),
    /// Ask the platform whether it took effect (2201: 5201 by `ipt_otp_no`).
    Query(&'static str),
    /// No side effect: ask again under a new msgid until the answer is known.
    Resend,
    /// Nothing the daemon can do: surface it for a person.
    Surface,
}

/// The resolution for a catalogue row.
pub fn resolution(spec: &TxnSpec) -> Resolution {
    if spec.reversible {
        return Resolution::Reverse;
    }
    match spec.infno {
        // Undone by its own cancel, which needs only fields of the input.
        "2402" => Resolution::Undo("2405"),
        // A fee upload's own cancel (2205 by batch, 2302 by stay) would take
        // other uploads' lines with it: the fee query finds whether its own
        // lines landed instead (gateway.md §5 rule 5).
        "2204" | "2301" => Resolution::Query("5204"),
        // Queries and pre-settlements change nothing.
        "1101" | "2101" | "2206" | "2303" | "5201" | "5203" | "5204" | "2203" => Resolution::Resend,
        // Cancels are safe to repeat: a second one fails harmlessly.
        "2202" | "2205" | "2302" | "2404" | "2405" => Resolution::Resend,
        // 2201: undoing needs the mdtrt_id the lost answer held; the visit
        // query finds it by the hospital's own ipt_otp_no.
        "2201" => Resolution::Query("5201"),
        _ => Resolution::Surface,
    }
}

/// A gateway answer, reduced to what the machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Yes.
    Ok,
    /// A definitive no, with the platform's message.
    Rejected(String),
    /// Never left this machine.
    NotSent,
    /// May or may not have been committed.
    Unknown,
}

/// What one resolution attempt (2601, an undo, a query) established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The original is undone now, or was already.
    Undone,
    /// The platform has no trace of the original. Final only once the grace
    /// period since the original was sent has passed: a slow original may
    /// still arrive after the reversal (it can overtake it).
    NotFound {
        /// The grace period has passed.
        grace_passed: bool,
    },
    /// (Queries) the original took effect.
    Found,
    /// A definitive refusal: needs a person.
    Refused,
    /// Not known (not sent, unknown, sign-in trouble): try again later.
    Retry,
    /// An answer whose meaning is not known (a refusal text not in the
    /// table, a query answer without its list): tried again up to a limit.
    Unclear,
}

/// What the runtime does next for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Journal `Sent`, then post the request.
    Send,
    /// Journal a resolution attempt, then post the 2601 / undo.
    Resolve,
    /// Allocate a new msgid (journaled), back to `Pending`.
    Renew,
    /// A settlement refused with `infcode -1`: confirm with a 2601 that it
    /// is not in effect before its sale is sold again.
    Probe,
    /// Nothing until a person or a client acts.
    Stop,
}

/// What to do with a record in `state` (failure kind `fail_kind`) whose
/// type resolves by `r`.
pub fn next(state: State, r: Resolution, fail_kind: Option<FailKind>) -> Action {
    match state {
        State::Pending => Action::Send,
        State::Unknown => match r {
            Resolution::Reverse | Resolution::Undo(_) | Resolution::Query(_) => Action::Resolve,
            Resolution::Resend => Action::Renew,
            Resolution::Surface => Action::Stop,
        },
        State::Reversing => Action::Resolve,
        State::Failed if fail_kind == Some(FailKind::Unconfirmed) => Action::Probe,
        State::Sent
        | State::Succeeded
        | State::Failed
        | State::Reversed
        | State::ReversalFailed => Action::Stop,
    }
}

/// Something that happened to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// About to post the request (journaled first).
    Sending,
    /// The request's answer.
    Answered(Answer),
    /// About to post a resolution (2601, undo or query).
    Resolving,
    /// What the resolution established.
    Resolved(Verdict),
    /// A new msgid was allocated for a side-effect-free resend.
    Renewed,
    /// The daemon restarted with the record in this state.
    Recovered,
    /// The client resubmitted a never-sent request (same client_ref, same body).
    Retried,
    /// What the 2601 probe of a refused settlement established.
    Probed(Verdict),
    /// A person closed the record with this outcome (`txn.resolve`).
    Closed(State),
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no transition from {from:?} on {event:?}")]
pub struct Invalid {
    /// The state.
    pub from: State,
    /// The event.
    pub event: Event,
}

/// What kind of failure a `Failed` record holds: only requests the gateway
/// certainly did not execute may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The gateway said no (business refusal): final.
    Rejected,
    /// It never left: a resubmission resends it under the same msgid.
    NotSent,
    /// The gateway refused our `sign_no` before executing anything: sent
    /// again after a fresh sign-in, under a new msgid.
    SignInRejected,
    /// The gateway refused the msgid as used before (another terminal's):
    /// nothing was executed; sent again under a new msgid, and the refused
    /// msgid is never reversed (it is not ours).
    DuplicateMsgid,
    /// A settlement refused with `infcode -1`, not yet confirmed void: its
    /// sale stays blocked until a 2601 probe says it is not in effect.
    Unconfirmed,
}

impl FailKind {
    /// May the request be sent again?
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailKind::NotSent | FailKind::SignInRejected | FailKind::DuplicateMsgid
        )
    }

    /// Is it sent again under a new msgid (the old one was refused unexecuted)?
    pub fn needs_new_msgid(self) -> bool {
        matches!(self, FailKind::SignInRejected | FailKind::DuplicateMsgid)
    }
}

/// The state after `event`; `fail_kind` says what kind of failure a `Failed`
/// record holds (needed for `Retried`).
pub fn apply(
    state: State,
    r: Resolution,
    fail_kind: Option<FailKind>,
    event: &Event,
) -> Result<State, Invalid> {
    use State::*;
    let bad = || Invalid {
        from: state,
        event: event.clone(),
    };
    Ok(match (state, event) {
        (Pending, Event::Sending) => Sent,
        (Pending, Event::Recovered) => Failed,
        (Sent, Event::Answered(a)) => match a {
            Answer::Ok => Succeeded,
            Answer::Rejected(_) | Answer::NotSent => Failed,
            // Nothing the daemon can do about it: a person, at once.
            Answer::Unknown if r == Resolution::Surface => ReversalFailed,
            Answer::Unknown => Unknown,
        },
        (Sent | Unknown, Event::Recovered) if r == Resolution::Surface => ReversalFailed,
        (Sent, Event::Recovered) => Unknown,
        (Unknown, Event::Resolving) if matches!(r, Resolution::Reverse | Resolution::Undo(_)) => {
            Reversing
        }
        (Unknown, Event::Resolving) if matches!(r, Resolution::Query(_)) => Unknown,
        (Unknown, Event::Resolved(v)) if matches!(r, Resolution::Query(_)) => match v {
            Verdict::Found => Succeeded,
            Verdict::NotFound { grace_passed: true } => Failed,
            // Part of an upload landed: something else touched it.
            Verdict::Refused => ReversalFailed,
            _ => Unknown,
        },
        (Unknown, Event::Renewed) if r == Resolution::Resend => Pending,
        (Unknown, Event::Recovered) => Unknown,
        (Reversing, Event::Resolving) => Reversing,
        (Reversing, Event::Resolved(v)) => match v {
            Verdict::Undone | Verdict::NotFound { grace_passed: true } => Reversed,
            Verdict::Refused => ReversalFailed,
            Verdict::NotFound {
                grace_passed: false,
            }
            | Verdict::Retry
            | Verdict::Unclear
            | Verdict::Found => Reversing,
        },
        (Reversing, Event::Recovered) => Reversing,
        (Failed, Event::Retried) if fail_kind.is_some_and(FailKind::retryable) => Pending,
        (Failed, Event::Probed(v)) if fail_kind == Some(FailKind::Unconfirmed) => match v {
            Verdict::Refused => ReversalFailed,
            _ => Failed,
        },
        (s, Event::Closed(to))
            if matches!(to, Succeeded | Failed | Reversed)
                && (!s.is_final()
                    || s == ReversalFailed
                    || (s == Failed && fail_kind == Some(FailKind::Unconfirmed))) =>
        {
            *to
        }
        (s, Event::Recovered) if s.is_final() => s,
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests;
