use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

#[test]
fn happy_and_sad_paths() {
    let r = Resolution::Reverse;
    let s = apply(State::Pending, r, None, &Event::Sending).unwrap();
    assert_eq!(s, State::Sent);
    assert_eq!(
        apply(s, r, None, &Event::Answered(Answer::Ok)),
        Ok(State::Succeeded)
    );
    assert_eq!(
        apply(s, r, None, &Event::Answered(Answer::Rejected("x".into()))),
        Ok(State::Failed)
    );
    assert_eq!(
        apply(s, r, None, &Event::Answered(Answer::Unknown)),
        Ok(State::Unknown)
    );
    assert_eq!(next(State::Unknown, r, None), Action::Resolve);
    assert_eq!(
        apply(State::Unknown, r, None, &Event::Resolving),
        Ok(State::Reversing)
    );
    assert_eq!(
        apply(State::Reversing, r, None, &Event::Resolved(Verdict::Undone)),
        Ok(State::Reversed)
    );
    // "Nothing to reverse" is believed only after the grace period.
    assert_eq!(
        apply(
            State::Reversing,
            r,
            None,
            &Event::Resolved(Verdict::NotFound {
                grace_passed: false
            })
        ),
        Ok(State::Reversing)
    );
    assert_eq!(
        apply(
            State::Reversing,
            r,
            None,
            &Event::Resolved(Verdict::NotFound { grace_passed: true })
        ),
        Ok(State::Reversed)
    );
    assert_eq!(
        apply(
            State::Reversing,
            r,
            None,
            &Event::Resolved(Verdict::Refused)
        ),
        Ok(State::ReversalFailed)
    );
    assert_eq!(
        apply(State::Reversing, r, None, &Event::Resolved(Verdict::Retry)),
        Ok(State::Reversing)
    );
}

#[test]
fn recovery() {
    let r = Resolution::Reverse;
    assert_eq!(
        apply(State::Pending, r, None, &Event::Recovered),
        Ok(State::Failed)
    );
    assert_eq!(
        apply(State::Sent, r, None, &Event::Recovered),
        Ok(State::Unknown)
    );
    assert_eq!(
        apply(State::Succeeded, r, None, &Event::Recovered),
        Ok(State::Succeeded)
    );
}

#[test]
fn only_never_executed_failures_are_retried() {
    let r = Resolution::Reverse;
    assert_eq!(
        apply(State::Failed, r, Some(FailKind::NotSent), &Event::Retried),
        Ok(State::Pending)
    );
    assert!(apply(State::Failed, r, Some(FailKind::Rejected), &Event::Retried).is_err());
    assert!(apply(State::Succeeded, r, None, &Event::Retried).is_err());
}

#[test]
fn a_settlement_is_never_renewed() {
    // Renewing (a new msgid) is only for side-effect-free transactions.
    assert!(apply(State::Unknown, Resolution::Reverse, None, &Event::Renewed).is_err());
    assert_eq!(
        apply(State::Unknown, Resolution::Resend, None, &Event::Renewed),
        Ok(State::Pending)
    );
    assert_eq!(
        next(State::Unknown, Resolution::Surface, None),
        Action::Stop
    );
}

#[test]
fn resolutions_follow_the_catalogue() {
    use settlement_client::catalogue::spec;
    for infno in ["2102", "2103", "2207", "2208", "2304", "2305", "2401"] {
        assert_eq!(
            resolution(spec(infno).unwrap()),
            Resolution::Reverse,
            "{infno}"
        );
    }
    // A lost fee upload is found by the fee query, never undone batch-wide.
    assert_eq!(resolution(spec("2204").unwrap()), Resolution::Query("5204"));
    assert_eq!(resolution(spec("2206").unwrap()), Resolution::Resend);
    assert_eq!(resolution(spec("2201").unwrap()), Resolution::Query("5201"));
}

#[test]
fn a_lost_registration_is_found_or_proven_absent() {
    let r = Resolution::Query("5201");
    assert_eq!(next(State::Unknown, r, None), Action::Resolve);
    assert_eq!(
        apply(State::Unknown, r, None, &Event::Resolving),
        Ok(State::Unknown)
    );
    assert_eq!(
        apply(State::Unknown, r, None, &Event::Resolved(Verdict::Found)),
        Ok(State::Succeeded)
    );
    assert_eq!(
        apply(
            State::Unknown,
            r,
            None,
            &Event::Resolved(Verdict::NotFound {
                grace_passed: false
            })
        ),
        Ok(State::Unknown)
    );
    assert_eq!(
        apply(
            State::Unknown,
            r,
            None,
            &Event::Resolved(Verdict::NotFound { grace_passed: true })
        ),
        Ok(State::Failed)
    );
}

/// What the model gateway can answer, chosen by the test.
#[derive(Debug, Clone, Copy)]
enum Choice {
    Ok,
    Rejected,
    NotSent,
    UnknownCommitted,
    UnknownNotCommitted,
    /// The original is still in flight: it commits a few steps later,
    /// possibly after a reversal found nothing (it overtakes).
    UnknownSlow(u8),
    Crash,
    Resubmit,
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        3 => Just(Choice::Ok),
        1 => Just(Choice::Rejected),
        2 => Just(Choice::NotSent),
        3 => Just(Choice::UnknownCommitted),
        3 => Just(Choice::UnknownNotCommitted),
        3 => (1u8..=3).prop_map(Choice::UnknownSlow),
        2 => Just(Choice::Crash),
        1 => Just(Choice::Resubmit),
    ]
}

/// The gateway's truth: which msgids it committed and which it reversed,
/// and originals still in flight (msgid, steps until they commit).
#[derive(Default)]
struct Model {
    committed: HashMap<u32, bool>,
    in_flight: Vec<(u32, u8)>,
}

/// Steps after which no original is in flight any more (the grace period
/// covers the slowest original: slow delays are at most 3 steps).
const GRACE_STEPS: u32 = 4;

impl Model {
    fn in_effect(&self) -> usize {
        self.committed
            .values()
            .filter(|reversed| !**reversed)
            .count()
    }
}

/// Drives one record of a settlement (or a resend-type query) through a
/// sequence of gateway behaviours and crashes, then lets it settle with
/// definitive answers, and checks what the gateway ends up holding.
fn run(r: Resolution, choices: &[Choice]) -> (State, usize) {
    let mut model = Model::default();
    let mut state = State::Pending;
    let mut msgid = 0u32;
    let mut fail_kind = None;
    let mut script = choices.iter().copied();
    let mut steps = 0u32;
    let mut sent_at = 0u32;
    loop {
        steps += 1;
        assert!(steps < 10_000, "no progress");
        // Time passes: slow originals land.
        for (m, d) in model.in_flight.iter_mut() {
            *d = d.saturating_sub(1);
            if *d == 0 {
                model.committed.entry(*m).or_insert(false);
            }
        }
        model.in_flight.retain(|(_, d)| *d > 0);
        let grace_passed = steps.saturating_sub(sent_at) >= GRACE_STEPS;
        // After the script, the gateway answers definitively and nobody crashes.
        let c = script.next().unwrap_or(Choice::Ok);
        if let Choice::Crash = c {
            state = apply(state, r, fail_kind, &Event::Recovered).unwrap();
            if state == State::Failed && fail_kind.is_none() {
                fail_kind = Some(FailKind::NotSent);
            }
            continue;
        }
        match next(state, r, fail_kind) {
            Action::Send => {
                state = apply(state, r, fail_kind, &Event::Sending).unwrap();
                sent_at = steps;
                let answer = match c {
                    Choice::Ok => {
                        model.committed.insert(msgid, false);
                        Answer::Ok
                    }
                    Choice::Rejected => Answer::Rejected("FSI-余额不足".into()),
                    Choice::NotSent | Choice::Resubmit => Answer::NotSent,
                    Choice::UnknownCommitted => {
                        model.committed.insert(msgid, false);
                        Answer::Unknown
                    }
                    Choice::UnknownSlow(d) => {
                        model.in_flight.push((msgid, d));
                        Answer::Unknown
                    }
                    Choice::UnknownNotCommitted | Choice::Crash => Answer::Unknown,
                };
                fail_kind = match &answer {
                    Answer::Rejected(_) => Some(FailKind::Rejected),
                    Answer::NotSent => Some(FailKind::NotSent),
                    _ => None,
                };
                state = apply(state, r, fail_kind, &Event::Answered(answer)).unwrap();
            }
            Action::Resolve => {
                state = apply(state, r, fail_kind, &Event::Resolving).unwrap();
                let committed = model.committed.get(&msgid).copied();
                let verdict = match (c, committed) {
                    (Choice::NotSent, _) | (Choice::UnknownNotCommitted, _) => Verdict::Retry,
                    (Choice::UnknownCommitted, Some(false)) => {
                        model.committed.insert(msgid, true);
                        Verdict::Retry
                    }
                    (_, Some(false)) => {
                        model.committed.insert(msgid, true);
                        Verdict::Undone
                    }
                    (_, Some(true)) => Verdict::Undone,
                    (_, None) => Verdict::NotFound { grace_passed },
                };
                state = apply(state, r, fail_kind, &Event::Resolved(verdict)).unwrap();
            }
            Action::Renew => {
                msgid += 1;
                state = apply(state, r, fail_kind, &Event::Renewed).unwrap();
            }
            Action::Probe => unreachable!("refusals here are confirmed"),
            Action::Stop => {
                if state == State::Failed
                    && fail_kind.is_some_and(FailKind::retryable)
                    && matches!(c, Choice::Resubmit)
                {
                    state = apply(state, r, fail_kind, &Event::Retried).unwrap();
                    fail_kind = None;
                    continue;
                }
                if script.len() == 0 && model.in_flight.is_empty() {
                    return (state, model.in_effect());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No sequence of outcomes, crashes and resubmissions leads to two
    /// settlements in effect for one client_ref, and the final state always
    /// tells the truth about what the gateway holds.
    #[test]
    fn never_two_settlements_for_one_client_ref(choices in proptest::collection::vec(choice(), 0..40)) {
        let (state, in_effect) = run(Resolution::Reverse, &choices);
        prop_assert!(in_effect <= 1, "double charge: {in_effect} in effect");
        prop_assert!(state.is_final(), "ended in {state:?}");
        match state {
            State::Succeeded => prop_assert_eq!(in_effect, 1),
            State::Failed | State::Reversed => prop_assert_eq!(in_effect, 0),
            other => prop_assert!(false, "unexpected final state {:?}", other),
        }
    }

    /// Side-effect-free transactions are resent under new msgids and always end.
    #[test]
    fn resend_type_always_finishes(choices in proptest::collection::vec(choice(), 0..40)) {
        let (state, _) = run(Resolution::Resend, &choices);
        prop_assert!(matches!(state, State::Succeeded | State::Failed), "ended in {state:?}");
    }
}
