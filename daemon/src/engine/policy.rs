//! The engine's decisions, without I/O: what a gateway answer means for a
//! record, which request resolves an unknown outcome, what its answer
//! establishes, and when to ask again.
//!
//! The runtime (`engine::runtime`) sends, journals and sleeps; every choice
//! it makes about money is a function here, taking the record, the
//! [`Outcome`] and the time as values, so each is unit-tested with values.
//! The platform's request bodies and wording come from
//! `settlement_client::reversal`.

use std::time::Duration;

use chrono::{DateTime, Local};
use serde_json::{Value, json};
use settlement_client::Outcome;
use settlement_client::catalogue;
use settlement_client::envelope::Response;
use settlement_client::reversal::{self, ReversalAnswer};

use super::machine::{self, Answer, Event, FailKind, Invalid, Resolution, State, Verdict};
use crate::journal::{Problem, Record};

/// Back-off between resolution attempts: doubles from 1 s up to this.
pub const RESOLVE_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Margin after the grace period before asking again, so the next attempt
/// is surely past it.
const GRACE_MARGIN: Duration = Duration::from_millis(20);

/// Why a record recovered as `failed` was never sent.
const STOPPED_BEFORE_SENDING: &str = "the daemon stopped before sending; resubmit to send it";

/// How an unknown outcome of `infno` is resolved (unknown infnos: by a person).
pub fn resolution_of(infno: &str) -> Resolution {
    catalogue::spec(infno)
        .map(machine::resolution)
        .unwrap_or(Resolution::Surface)
}

/// A gateway answer reduced to what the state machine needs.
pub fn to_answer<T>(o: &Outcome<T>) -> Answer {
    match o {
        Outcome::Ok(_) => Answer::Ok,
        Outcome::Rejected { err_msg, .. } => Answer::Rejected(err_msg.clone()),
        Outcome::NotSent { .. } => Answer::NotSent,
        Outcome::Unknown { .. } => Answer::Unknown,
    }
}

/// Records the answer to the record's own request: its state, and its
/// output, failure kind and problem. Returns whether the gateway refused
/// our sign-in (then the request is sent again after a new sign-in).
pub fn answered(rec: &mut Record, out: &Outcome<Response>) -> bool {
    let r = resolution_of(&rec.infno);
    let sign_in_refused = out.is_sign_in_rejection();
    rec.state = machine::apply(rec.state, r, None, &Event::Answered(to_answer(out)))
        .unwrap_or(State::Unknown);
    rec.fail_kind = None;
    rec.error = None;
    match out {
        Outcome::Ok(resp) => {
            rec.output = resp.output.clone();
            rec.setl_id = rec
                .output
                .as_ref()
                .and_then(|o| o.pointer("/setlinfo/setl_id"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Outcome::Rejected { infcode, err_msg } => {
            rec.fail_kind = Some(if sign_in_refused {
                FailKind::SignInRejected
            } else {
                FailKind::Rejected
            });
            rec.error = Some(Problem::GatewayRejected {
                infcode: *infcode,
                err_msg: err_msg.clone(),
            });
        }
        Outcome::NotSent { reason } => {
            rec.fail_kind = Some(FailKind::NotSent);
            rec.error = Some(Problem::GatewayUnreachable {
                reason: reason.clone(),
            });
        }
        Outcome::Unknown { reason } => {
            rec.error = Some(Problem::OutcomeUnknown {
                reason: reason.clone(),
            });
        }
    }
    sign_in_refused
}

/// The state a record interrupted by a stop or crash recovers to (a
/// `pending` record was never sent: `failed`, retryable); `None` when it
/// keeps its state.
pub fn recovered(rec: &mut Record, now: DateTime<Local>) -> Option<State> {
    let before = rec.state;
    let after = machine::apply(
        before,
        resolution_of(&rec.infno),
        rec.fail_kind,
        &Event::Recovered,
    )
    .unwrap_or(before);
    if after == before {
        return None;
    }
    rec.state = after;
    if after == State::Failed {
        rec.fail_kind = Some(FailKind::NotSent);
        rec.error = Some(Problem::NotSent {
            reason: STOPPED_BEFORE_SENDING.into(),
        });
    }
    rec.updated_at = now;
    Some(before)
}

/// A field of the first object of `node` (an object or a list) of the input.
fn first_field(rec: &Record, node: &str, k: &str) -> String {
    let v = match rec.input.get(node) {
        Some(Value::Array(a)) => a.first().and_then(|x| x.get(k)),
        Some(o) => o.get(k),
        None => None,
    };
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The request that resolves `rec`: 2601 by msgid, its own cancel, or a query.
pub fn resolution_request(rec: &Record, r: Resolution) -> Option<(&'static str, Value)> {
    let f = |node: &str, k: &str| first_field(rec, node, k);
    let psn = rec.psn_no.as_str();
    match r {
        Resolution::Reverse => Some((
            "2601",
            reversal::reversal_input(psn, &rec.msgid, &rec.infno),
        )),
        Resolution::Undo("2205") => Some((
            "2205",
            reversal::fee_cancel_input(
                psn,
                &f("feedetail", "mdtrt_id"),
                &f("feedetail", "chrg_bchno"),
            ),
        )),
        Resolution::Undo("2405") => Some((
            "2405",
            reversal::discharge_cancel_input(psn, &f("dscginfo", "mdtrt_id")),
        )),
        Resolution::Query("5201") => Some((
            "5201",
            reversal::visit_query_input(psn, &f("data", "begntime"), &f("data", "med_type")),
        )),
        Resolution::Query("5204") => Some((
            "5204",
            reversal::fee_query_input(psn, &f("feedetail", "mdtrt_id")),
        )),
        _ => None,
    }
}

/// The `feedetl_sn`s a fee upload carried.
fn uploaded_lines(rec: &Record) -> Vec<String> {
    rec.input
        .get("feedetail")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.get("feedetl_sn"))
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The visit a 5201 answer lists for the record's `ipt_otp_no`.
fn found_visit<'a>(rec: &Record, output: &'a Value) -> Option<&'a Value> {
    let otp = first_field(rec, "data", "ipt_otp_no");
    reversal::visits(output)
        .iter()
        .find(|v| v["ipt_otp_no"].as_str() == Some(otp.as_str()))
}

/// What a resolution answer establishes about the original. A refused
/// sign-in establishes nothing (the runtime signs in again).
pub fn verdict(
    r: Resolution,
    out: &Outcome<Response>,
    rec: &Record,
    grace_passed: bool,
) -> Verdict {
    if out.is_sign_in_rejection() {
        return Verdict::Retry;
    }
    let not_found = Verdict::NotFound { grace_passed };
    match r {
        Resolution::Reverse => match ReversalAnswer::of(out) {
            ReversalAnswer::Reversed | ReversalAnswer::AlreadyReversed => Verdict::Undone,
            ReversalAnswer::NothingToReverse => not_found,
            ReversalAnswer::RefusedCancelled { .. } | ReversalAnswer::Refused { .. } => {
                Verdict::Refused
            }
            ReversalAnswer::Retry { .. } => Verdict::Retry,
        },
        Resolution::Undo(_) => match out {
            Outcome::Ok(_) => Verdict::Undone,
            Outcome::Rejected { err_msg, .. } if reversal::finds_nothing(err_msg) => not_found,
            Outcome::Rejected { .. } => Verdict::Refused,
            _ => Verdict::Retry,
        },
        Resolution::Query(q) => match out {
            Outcome::Ok(resp) => {
                let o = resp.output.clone().unwrap_or(Value::Null);
                if q == "5201" {
                    if found_visit(rec, &o).is_some() {
                        Verdict::Found
                    } else {
                        not_found
                    }
                } else {
                    let want = uploaded_lines(rec);
                    let have: Vec<&str> = reversal::fee_lines(&o)
                        .iter()
                        .filter_map(|l| l["feedetl_sn"].as_str())
                        .collect();
                    let present = want.iter().filter(|w| have.contains(&w.as_str())).count();
                    match present {
                        0 => not_found,
                        n if n == want.len() => Verdict::Found,
                        // Part of one upload: something else touched the lines.
                        _ => Verdict::Refused,
                    }
                }
            }
            Outcome::Rejected { err_msg, .. } if reversal::finds_nothing(err_msg) => not_found,
            _ => Verdict::Retry,
        },
        Resolution::Resend | Resolution::Surface => Verdict::Retry,
    }
}

/// The output a found original is recorded with.
pub fn found_output(r: Resolution, out: &Outcome<Response>, rec: &Record) -> Option<Value> {
    let Outcome::Ok(resp) = out else { return None };
    let o = resp.output.clone().unwrap_or(Value::Null);
    match r {
        Resolution::Query("5201") => {
            let v = found_visit(rec, &o)?;
            Some(
                json!({"data": {"mdtrt_id": v["mdtrt_id"], "psn_no": v["psn_no"], "ipt_otp_no": v["ipt_otp_no"]}, "found_by": "5201"}),
            )
        }
        Resolution::Query(_) => {
            let want = uploaded_lines(rec);
            o["feedetail"].as_array()?;
            let lines: Vec<Value> = reversal::fee_lines(&o)
                .iter()
                .filter(|l| {
                    l["feedetl_sn"]
                        .as_str()
                        .is_some_and(|sn| want.iter().any(|w| w == sn))
                })
                .cloned()
                .collect();
            Some(json!({"result": lines, "found_by": "5204"}))
        }
        _ => None,
    }
}

/// How the latest resolution attempt ended, as its record shows it.
pub fn attempt_state(verdict: Verdict, out: &Outcome<Response>) -> &'static str {
    match verdict {
        Verdict::Undone => "succeeded",
        Verdict::NotFound { .. } => "not_found",
        Verdict::Found => "found",
        Verdict::Refused => "refused",
        Verdict::Retry => out.class(),
    }
}

/// Records what a resolution attempt established: the record's state, its
/// undo's state, the found output, and the refusal a person must see.
pub fn resolved(
    rec: &mut Record,
    verdict: Verdict,
    out: &Outcome<Response>,
) -> Result<(), Invalid> {
    let r = resolution_of(&rec.infno);
    rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Resolved(verdict))?;
    if let Some(rv) = rec.reversal.as_mut() {
        rv.state = attempt_state(verdict, out).into();
    }
    if verdict == Verdict::Found {
        rec.output = found_output(r, out, rec);
        rec.error = None;
    }
    if let (Outcome::Rejected { infcode, err_msg }, State::ReversalFailed) = (out, rec.state) {
        rec.error = Some(Problem::ReversalRefused {
            infcode: *infcode,
            err_msg: err_msg.clone(),
        });
    }
    Ok(())
}

/// How long ago the original was sent (zero when unknown or in the future).
pub fn age(sent_at: Option<DateTime<Local>>, now: DateTime<Local>) -> Duration {
    sent_at
        .map(|t| (now - t).to_std().unwrap_or_default())
        .unwrap_or_default()
}

/// Whether "nothing to undo" can be believed: the grace period since the
/// original was sent has passed (a slow original can arrive after its
/// reversal).
pub fn grace_passed(
    sent_at: Option<DateTime<Local>>,
    now: DateTime<Local>,
    grace: Duration,
) -> bool {
    sent_at.is_none_or(|t| (now - t).to_std().is_ok_and(|age| age >= grace))
}

/// When the resolver should look at a record again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// Never: it is final (or needs a person).
    No,
    /// After the next back-off step (1 s doubling up to 60 s).
    Backoff,
    /// After this long.
    After(Duration),
}

/// When to look again after a resolution attempt that left `state`.
pub fn again(state: State, verdict: Verdict, age: Duration, grace: Duration) -> Again {
    match verdict {
        _ if state.is_final() => Again::No,
        // Ask again as soon as a late original could have landed.
        Verdict::NotFound {
            grace_passed: false,
        } => Again::After(grace.saturating_sub(age) + GRACE_MARGIN),
        _ => Again::Backoff,
    }
}

/// The back-off after `previous` (the first is 1 s).
pub fn next_backoff(previous: Option<Duration>) -> Duration {
    previous
        .map(|w| (w * 2).min(RESOLVE_BACKOFF_MAX))
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests;
