//! One transaction as journaled: [`Record`], its undo ([`Reversal`]) and
//! what went wrong with it ([`Problem`]).

use chrono::{DateTime, Local};
use serde_json::{Value, json};

use crate::engine::machine::{FailKind, State};

/// What went wrong with a record, or what is unknown about it.
///
/// Stored in the journal as JSON (`{"kind": …, …}`); [`Problem::to_json`]
/// and [`Problem::from_json`] keep that form stable across versions.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The gateway said no.
    GatewayRejected {
        /// The platform's `infcode`.
        infcode: i64,
        /// The platform's message.
        err_msg: String,
    },
    /// The request never left this machine (safe to send again).
    GatewayUnreachable {
        /// Why.
        reason: String,
    },
    /// The daemon stopped before sending it (safe to send again).
    NotSent {
        /// Why.
        reason: String,
    },
    /// Nobody knows whether the gateway committed it.
    OutcomeUnknown {
        /// Why.
        reason: String,
    },
    /// The undo was refused: needs a person.
    ReversalRefused {
        /// The platform's `infcode`.
        infcode: i64,
        /// The platform's message.
        err_msg: String,
    },
    /// No definitive answer could be had (answers not understood, part of
    /// an upload found): needs a person.
    NeedsPerson {
        /// What the machine saw.
        reason: String,
    },
    /// A form this version does not know (written by another version): kept as stored.
    Other(Value),
}

impl Problem {
    /// The kind's name (`gateway_rejected`, `gateway_unreachable`, …).
    pub fn kind(&self) -> &str {
        match self {
            Problem::GatewayRejected { .. } => "gateway_rejected",
            Problem::GatewayUnreachable { .. } => "gateway_unreachable",
            Problem::NotSent { .. } => "not_sent",
            Problem::OutcomeUnknown { .. } => "outcome_unknown",
            Problem::ReversalRefused { .. } => "reversal_refused",
            Problem::NeedsPerson { .. } => "needs_person",
            Problem::Other(v) => v["kind"].as_str().unwrap_or(""),
        }
    }

    /// The stored form.
    pub fn to_json(&self) -> Value {
        match self {
            Problem::GatewayRejected { infcode, err_msg }
            | Problem::ReversalRefused { infcode, err_msg } => {
                json!({"kind": self.kind(), "infcode": infcode, "err_msg": err_msg})
            }
            Problem::GatewayUnreachable { reason }
            | Problem::NotSent { reason }
            | Problem::OutcomeUnknown { reason }
            | Problem::NeedsPerson { reason } => json!({"kind": self.kind(), "reason": reason}),
            Problem::Other(v) => v.clone(),
        }
    }

    /// Reads the stored form; anything unexpected is kept as [`Problem::Other`].
    pub fn from_json(v: Value) -> Problem {
        let Some(m) = v.as_object() else {
            return Problem::Other(v);
        };
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        let parsed = match (text("kind").as_deref(), keys.as_slice()) {
            (Some(kind), ["kind", "infcode", "err_msg"]) => {
                match (m["infcode"].as_i64(), text("err_msg")) {
                    (Some(infcode), Some(err_msg)) if kind == "gateway_rejected" => {
                        Some(Problem::GatewayRejected { infcode, err_msg })
                    }
                    (Some(infcode), Some(err_msg)) if kind == "reversal_refused" => {
                        Some(Problem::ReversalRefused { infcode, err_msg })
                    }
                    _ => None,
                }
            }
            (Some(kind), ["kind", "reason"]) => text("reason").and_then(|reason| match kind {
                "gateway_unreachable" => Some(Problem::GatewayUnreachable { reason }),
                "not_sent" => Some(Problem::NotSent { reason }),
                "outcome_unknown" => Some(Problem::OutcomeUnknown { reason }),
                "needs_person" => Some(Problem::NeedsPerson { reason }),
                _ => None,
            }),
            _ => None,
        };
        parsed.unwrap_or(Problem::Other(v))
    }
}

/// The undo of a record whose outcome was unknown (2601 or its own cancel).
#[derive(Debug, Clone, PartialEq)]
pub struct Reversal {
    /// msgid of the latest attempt.
    pub msgid: String,
    /// `2601` or the cancel's infno.
    pub infno: String,
    /// `sent`, `succeeded`, `refused`, `unknown`, `not_sent`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// One transaction as journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Daemon-assigned id.
    pub txn_id: String,
    /// The caller's idempotency key.
    pub client_ref: String,
    /// Transaction number.
    pub infno: String,
    /// Hash of what the caller sent (infno, input, session), for idempotency.
    pub request_hash: String,
    /// The identity session used, if any.
    pub session_id: Option<String>,
    /// The platform `input` as sent (session fields filled in).
    pub input: Value,
    /// Envelope `insuplc_admdvs`.
    pub insuplc_admdvs: String,
    /// The person, when known.
    pub psn_no: String,
    /// The credential type used (`01` 医保码, `02`, `03`), for `report.usage`.
    pub mdtrt_cert_type: String,
    /// Identifies "the same sale" across client_refs (rule 3), for settlements.
    pub sale_key: Option<String>,
    /// msgid of the request.
    pub msgid: String,
    /// The envelope as posted (journaled before it leaves).
    pub request: Option<String>,
    /// State.
    pub state: State,
    /// What kind of failure, when `Failed`.
    pub fail_kind: Option<FailKind>,
    /// The gateway's `output` on success.
    pub output: Option<Value>,
    /// Why it failed, or what is unknown about it.
    pub error: Option<Problem>,
    /// The undo, once started.
    pub reversal: Option<Reversal>,
    /// Requests posted for this record.
    pub attempts: u32,
    /// `setl_id` from the output of a settlement or cancel.
    pub setl_id: Option<String>,
    /// For cancels: the `setl_id` they cancel.
    pub cancels_setl_id: Option<String>,
    /// When the request was last posted (wall clock, for people).
    pub sent_at: Option<DateTime<Local>>,
    /// Milliseconds since the last post as this daemon measured them on a
    /// monotonic clock (time while it was down not counted): the reversal
    /// grace period counts on this, never on the wall clock.
    pub sent_elapsed_ms: u64,
    /// Sent again under a new msgid after its first answer was lost (a
    /// cancel refused as already done then took effect).
    pub resent_after_unknown: bool,
    /// Answers of unclear meaning so far (see `journal.max_unclear_answers`).
    pub unclear_answers: u32,
    /// How a person closed it (`txn.resolve`).
    pub closed: Option<Closure>,
    /// Created.
    pub created_at: DateTime<Local>,
    /// Last change.
    pub updated_at: DateTime<Local>,
}

#[cfg(test)]
impl Record {
    /// A record for tests: `client_ref` `c`, txn_id `t-c`, person `P1`,
    /// everything else empty; override fields with `..Record::sample(…)`.
    pub fn sample(client_ref: &str, infno: &str, state: State) -> Record {
        let now = Local::now();
        Record {
            txn_id: format!("t-{client_ref}"),
            client_ref: client_ref.into(),
            infno: infno.into(),
            request_hash: "h".into(),
            session_id: None,
            input: json!({}),
            insuplc_admdvs: "421381".into(),
            psn_no: "P1".into(),
            mdtrt_cert_type: "01".into(),
            sale_key: None,
            msgid: "P42130200001202611231000000001".into(),
            request: None,
            state,
            fail_kind: None,
            output: None,
            error: None,
            reversal: None,
            attempts: 1,
            setl_id: None,
            cancels_setl_id: None,
            sent_at: Some(now),
            sent_elapsed_ms: 0,
            resent_after_unknown: false,
            unclear_answers: 0,
            closed: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A person's closing of a record the machine could not finish.
#[derive(Debug, Clone, PartialEq)]
pub struct Closure {
    /// The state they set: `succeeded`, `failed` or `reversed`.
    pub outcome: State,
    /// Who.
    pub operator: String,
    /// Why (what they checked).
    pub note: String,
    /// When.
    pub at: DateTime<Local>,
}

impl Closure {
    /// The stored form (also the record's `resolution` on the wire).
    pub fn to_json(&self) -> Value {
        json!({
            "outcome": self.outcome.as_str(),
            "operator": self.operator,
            "note": self.note,
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        })
    }

    /// Reads the stored form.
    pub fn from_json(v: &Value) -> Option<Closure> {
        Some(Closure {
            outcome: State::parse(v["outcome"].as_str()?)?,
            operator: v["operator"].as_str()?.to_string(),
            note: v["note"].as_str()?.to_string(),
            at: DateTime::parse_from_rfc3339(v["at"].as_str()?)
                .ok()?
                .with_timezone(&Local),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_their_stored_form() {
        for p in [
            Problem::GatewayRejected {
                infcode: -1,
                err_msg: "FSI-x".into(),
            },
            Problem::ReversalRefused {
                infcode: 7,
                err_msg: "y".into(),
            },
            Problem::GatewayUnreachable { reason: "r".into() },
            Problem::NotSent { reason: "r".into() },
            Problem::OutcomeUnknown { reason: "r".into() },
            Problem::NeedsPerson { reason: "r".into() },
        ] {
            let stored = p.to_json();
            assert_eq!(stored["kind"], p.kind());
            assert_eq!(Problem::from_json(stored.clone()), p);
            assert_eq!(Problem::from_json(stored.clone()).to_json(), stored);
        }
        // Forms of other versions survive unchanged.
        for v in [
            json!({"kind": "gateway_rejected", "infcode": "x", "err_msg": "m"}),
            json!({"kind": "outcome_unknown", "reason": "r", "extra": 1}),
            json!({"kind": "new_kind", "reason": "r"}),
            json!("text"),
        ] {
            let p = Problem::from_json(v.clone());
            assert!(matches!(p, Problem::Other(_)), "{v}");
            assert_eq!(p.to_json(), v);
        }
    }
}
