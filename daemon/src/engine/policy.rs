//! The engine's decisions, without I/O: what a gateway answer means for a
//! record, which attempts of a sale block another, which request resolves
//! an unknown outcome, what its answer establishes, and when to ask again.
//!
//! The runtime (`engine::runtime`, `engine::resolver`) sends, journals and
//! sleeps; every choice it makes about money is a function here, taking the
//! record, the [`Outcome`] and the (monotonic) time as values, so each is
//! unit-tested with values. The platform's request bodies come from
//! `settlement_client::reversal`, its wording from
//! `settlement_client::wording`.

use std::time::Duration;

use chrono::{DateTime, Local};
use serde_json::{Value, json};
use settlement_client::Outcome;
use settlement_client::catalogue;
use settlement_client::envelope::Response;
use settlement_client::reversal::{self, ReversalAnswer};
use settlement_client::wording::{self, Meaning};

use super::machine::{self, Answer, Event, FailKind, Invalid, Resolution, State, Verdict};
use crate::journal::{Closure, Problem, Record};

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

/// Cancels resent under a new msgid when their answer is lost (their own
/// second attempt is refused "already cancelled" when the first took effect).
const RESENT_CANCELS: &[&str] = &["2202", "2205", "2302", "2404", "2405"];

/// Whether `infno` is a settlement (a sale: 2102, 2207, 2304).
fn is_settlement(infno: &str) -> bool {
    catalogue::spec(infno).is_some_and(|s| s.settlement)
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

/// Why another attempt of a sale blocks a send (gateway.md §5 rule 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    /// A settlement of the sale is in effect (succeeded, not cancelled).
    InEffect,
    /// An attempt may be in effect: in flight, unknown, being reversed,
    /// refused but not yet confirmed, or handed to a person.
    InDoubt,
}

/// The sale rule: whether `other`, an attempt of the same sale, blocks
/// sending another one. `cancelled`: a succeeded cancel names its `setl_id`.
/// Only attempts proven void (failed and confirmed, never sent, reversed)
/// and cancelled settlements leave a sale free.
pub fn blocks(other: &Record, cancelled: bool) -> Option<Blocker> {
    match other.state {
        State::Sent | State::Unknown | State::Reversing | State::ReversalFailed => {
            Some(Blocker::InDoubt)
        }
        State::Failed if other.fail_kind == Some(FailKind::Unconfirmed) => Some(Blocker::InDoubt),
        State::Succeeded if is_settlement(&other.infno) && !cancelled => Some(Blocker::InEffect),
        State::Pending | State::Succeeded | State::Failed | State::Reversed => None,
    }
}

/// How a gateway answer to a record's own request is read.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    /// It took effect; the output.
    Ok(Option<Value>),
    /// The gateway said no; what kind of failure that is.
    Rejected {
        infcode: i64,
        err_msg: String,
        kind: FailKind,
    },
    /// It never left.
    NotSent(String),
    /// It may or may not have taken effect.
    Unknown(String),
}

/// Reads an answer with what the record is: an HTTP refusal after a
/// reversible request left proves nothing; a settlement without `setl_id`
/// is nothing the HIS can print or cancel; a resent cancel refused as
/// already done took effect; a refused settlement stays unconfirmed.
fn read(rec: &Record, out: &Outcome<Response>) -> Read {
    let spec = catalogue::spec(&rec.infno);
    let settlement = spec.is_some_and(|s| s.settlement);
    let reversible = spec.is_some_and(|s| s.reversible);
    match out {
        Outcome::Ok(resp) => {
            let setl_id = resp
                .output
                .as_ref()
                .and_then(|o| o.pointer("/setlinfo/setl_id"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            if settlement && setl_id.is_none() {
                return Read::Unknown(
                    "the gateway answered success without setlinfo.setl_id".into(),
                );
            }
            Read::Ok(resp.output.clone())
        }
        Outcome::Rejected { infcode, err_msg } => {
            if reversible && (-499..=-400).contains(infcode) {
                // A 4xx after sending may come from a proxy in front of a
                // gateway that has the request: as unknown as a 5xx.
                return Read::Unknown(format!("{err_msg} (after sending)"));
            }
            let meaning = wording::meaning(err_msg);
            let cancel_resend = rec.resent_after_unknown
                && RESENT_CANCELS.contains(&rec.infno.as_str())
                && matches!(
                    meaning,
                    Some(Meaning::AlreadyCancelled | Meaning::NothingFound)
                );
            if cancel_resend {
                // The lost first attempt did it (gateway.md §5 rule 5).
                return Read::Ok(Some(json!({})));
            }
            let kind = if out.is_sign_in_rejection() {
                FailKind::SignInRejected
            } else if meaning == Some(Meaning::DuplicateMsgid) {
                FailKind::DuplicateMsgid
            } else if settlement {
                FailKind::Unconfirmed
            } else {
                FailKind::Rejected
            };
            Read::Rejected {
                infcode: *infcode,
                err_msg: err_msg.clone(),
                kind,
            }
        }
        Outcome::NotSent { reason } => Read::NotSent(reason.clone()),
        Outcome::Unknown { reason } => Read::Unknown(reason.clone()),
    }
}

/// Records the answer to the record's own request: its state, and its
/// output, failure kind and problem. Returns whether the gateway refused
/// our sign-in (then the request is sent again after a new sign-in).
pub fn answered(rec: &mut Record, out: &Outcome<Response>) -> bool {
    let r = resolution_of(&rec.infno);
    let read = read(rec, out);
    let answer = match &read {
        Read::Ok(_) => Answer::Ok,
        Read::Rejected { err_msg, .. } => Answer::Rejected(err_msg.clone()),
        Read::NotSent(_) => Answer::NotSent,
        Read::Unknown(_) => Answer::Unknown,
    };
    rec.state =
        machine::apply(rec.state, r, None, &Event::Answered(answer)).unwrap_or(State::Unknown);
    rec.fail_kind = None;
    rec.error = None;
    match read {
        Read::Ok(output) => {
            rec.setl_id = output
                .as_ref()
                .and_then(|o| o.pointer("/setlinfo/setl_id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            rec.output = output;
            false
        }
        Read::Rejected {
            infcode,
            err_msg,
            kind,
        } => {
            rec.fail_kind = Some(kind);
            rec.error = Some(Problem::GatewayRejected { infcode, err_msg });
            kind == FailKind::SignInRejected
        }
        Read::NotSent(reason) => {
            rec.fail_kind = Some(FailKind::NotSent);
            rec.error = Some(Problem::GatewayUnreachable { reason });
            false
        }
        Read::Unknown(reason) => {
            rec.error = Some(Problem::OutcomeUnknown { reason });
            false
        }
    }
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

/// Whether a resolution may only be tried once the grace period has passed
/// (an undo of something still in flight would be overtaken by it).
pub fn waits_for_grace(r: Resolution) -> bool {
    matches!(r, Resolution::Reverse | Resolution::Undo(_))
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

/// What a 2601 answer establishes.
fn reversal_verdict(out: &Outcome<Response>, not_found: Verdict) -> Verdict {
    match ReversalAnswer::of(out) {
        // The original is not in effect: undone now or before, or a
        // settlement that was cancelled (gateway.md §5 rule 4).
        ReversalAnswer::Reversed
        | ReversalAnswer::AlreadyReversed
        | ReversalAnswer::RefusedCancelled { .. } => Verdict::Undone,
        ReversalAnswer::NothingToReverse => not_found,
        ReversalAnswer::Refused { .. } => Verdict::Unclear,
        ReversalAnswer::Retry { .. } => Verdict::Retry,
    }
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
        Resolution::Reverse => reversal_verdict(out, not_found),
        Resolution::Undo(_) => match out {
            Outcome::Ok(_) => Verdict::Undone,
            Outcome::Rejected { err_msg, .. } => match wording::meaning(err_msg) {
                Some(Meaning::AlreadyCancelled) => Verdict::Undone,
                Some(Meaning::NothingFound | Meaning::OriginalNotFound) => not_found,
                _ => Verdict::Unclear,
            },
            _ => Verdict::Retry,
        },
        Resolution::Query(q) => match out {
            Outcome::Ok(resp) => {
                let o = resp.output.clone().unwrap_or(Value::Null);
                if q == "5201" {
                    if o["mdtrtinfo"].as_array().is_none() {
                        return Verdict::Unclear;
                    }
                    if found_visit(rec, &o).is_some() {
                        Verdict::Found
                    } else {
                        not_found
                    }
                } else {
                    if o["feedetail"].as_array().is_none() {
                        return Verdict::Unclear;
                    }
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
            Outcome::Rejected { .. } => Verdict::Unclear,
            _ => Verdict::Retry,
        },
        Resolution::Resend | Resolution::Surface => Verdict::Retry,
    }
}

/// What the 2601 probe of a refused settlement establishes. The refusal
/// was the platform's own answer, so nothing of it is still in flight:
/// "nothing to reverse" is believed at once.
pub fn probe_verdict(out: &Outcome<Response>) -> Verdict {
    if out.is_sign_in_rejection() {
        return Verdict::Retry;
    }
    reversal_verdict(out, Verdict::NotFound { grace_passed: true })
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
        Verdict::Unclear => "unclear",
        Verdict::Retry => out.class(),
    }
}

/// Counts an unclear answer; past `limit` of them it stops being retried
/// and becomes a refusal a person looks at.
fn counted(rec: &mut Record, verdict: Verdict, limit: u32) -> Verdict {
    if verdict != Verdict::Unclear {
        return verdict;
    }
    rec.unclear_answers += 1;
    if rec.unclear_answers >= limit {
        Verdict::Refused
    } else {
        Verdict::Unclear
    }
}

/// Records what a resolution attempt established: the record's state, its
/// undo's state, the found output, and the refusal a person must see.
/// After `limit` unclear answers the record is handed to a person.
pub fn resolved(
    rec: &mut Record,
    verdict: Verdict,
    out: &Outcome<Response>,
    limit: u32,
) -> Result<Verdict, Invalid> {
    let r = resolution_of(&rec.infno);
    let verdict = counted(rec, verdict, limit);
    rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Resolved(verdict))?;
    settle_attempt(rec, verdict, out);
    if verdict == Verdict::Found {
        rec.output = found_output(r, out, rec);
        rec.error = None;
    }
    Ok(verdict)
}

/// Records what the 2601 probe of a refused settlement established: void
/// (confirmed; the sale is free), or after `limit` unclear answers a person.
pub fn probed(
    rec: &mut Record,
    verdict: Verdict,
    out: &Outcome<Response>,
    limit: u32,
) -> Result<Verdict, Invalid> {
    let r = resolution_of(&rec.infno);
    let verdict = counted(rec, verdict, limit);
    rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Probed(verdict))?;
    if matches!(verdict, Verdict::Undone | Verdict::NotFound { .. }) {
        rec.fail_kind = Some(FailKind::Rejected);
    }
    settle_attempt(rec, verdict, out);
    Ok(verdict)
}

/// The undo's state, and what a person must see when it is theirs: the
/// platform's refusal, or why no answer was definitive.
fn settle_attempt(rec: &mut Record, verdict: Verdict, out: &Outcome<Response>) {
    if let Some(rv) = rec.reversal.as_mut() {
        rv.state = attempt_state(verdict, out).into();
    }
    if rec.state != State::ReversalFailed {
        return;
    }
    rec.error = Some(match out {
        Outcome::Rejected { infcode, err_msg } => Problem::ReversalRefused {
            infcode: *infcode,
            err_msg: err_msg.clone(),
        },
        _ if rec.unclear_answers > 0 => Problem::NeedsPerson {
            reason: format!(
                "{} answers of the platform were not understood (the last: {})",
                rec.unclear_answers,
                out.class()
            ),
        },
        _ => Problem::NeedsPerson {
            reason: "the platform holds only part of what the request sent".into(),
        },
    });
}

/// A person closes a record the machine could not finish (`txn.resolve`):
/// only records not final, handed to a person, or refused and unconfirmed.
pub fn close(rec: &mut Record, closure: Closure) -> Result<(), Invalid> {
    let r = resolution_of(&rec.infno);
    rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Closed(closure.outcome))?;
    if rec.state == State::Failed {
        rec.fail_kind = Some(FailKind::Rejected);
    }
    rec.updated_at = closure.at;
    rec.closed = Some(closure);
    Ok(())
}

/// Whether "nothing to undo" can be believed: the grace period since the
/// original was sent, measured on a monotonic clock (`age`), has passed (a
/// slow original can arrive after its reversal).
pub fn grace_passed(age: Duration, grace: Duration) -> bool {
    age >= grace
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

/// How long until an undo of a record sent `age` ago may be tried.
pub fn grace_left(age: Duration, grace: Duration) -> Option<Duration> {
    (age < grace).then(|| grace - age + GRACE_MARGIN)
}

/// The back-off after `previous` (the first is 1 s).
pub fn next_backoff(previous: Option<Duration>) -> Duration {
    previous
        .map(|w| (w * 2).min(RESOLVE_BACKOFF_MAX))
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod sale_model;
#[cfg(test)]
mod tests;
