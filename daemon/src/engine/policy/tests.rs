//! Every infno's resolution against every class of gateway answer, with
//! values: no gateway, no journal, no clock.

use chrono::Local;
use serde_json::json;
use settlement_client::catalogue::CATALOGUE;
use settlement_client::wording::REFUND_FLAG_SET_CAPTURE;

use super::*;
use crate::engine::machine::{Action, next};
use crate::journal::Closure;
use crate::journal::Reversal;

fn record(infno: &str, state: State) -> Record {
    Record {
        txn_id: "t1".into(),
        input: json!({
            "data": {"ipt_otp_no": "MZ-1", "begntime": "2026-11-23 09:00:00", "med_type": "11", "mdtrt_id": "V9", "setl_id": "S1"},
            "feedetail": [
                {"feedetl_sn": "L1", "mdtrt_id": "V9", "chrg_bchno": "B1"},
                {"feedetl_sn": "L2", "mdtrt_id": "V9", "chrg_bchno": "B1"}
            ],
            "dscginfo": {"mdtrt_id": "V9"},
        }),
        reversal: Some(Reversal {
            msgid: "P42130200001202611231000000002".into(),
            infno: "2601".into(),
            state: "sent".into(),
            attempts: 1,
        }),
        ..Record::sample("c1", infno, state)
    }
}

/// The classes of answer a resolution request can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `infcode 0` with an empty output.
    OkEmpty,
    /// `infcode 0` listing the record's visit and both its fee lines.
    OkListing,
    /// `infcode 0` listing one of its two fee lines and no visit.
    OkPartial,
    /// `infcode 0` listing someone else's visit and lines.
    OkOther,
    /// The real refusal to reverse a cancelled settlement.
    RefundFlag,
    /// "原交易不存在".
    OriginalMissing,
    /// "原交易已冲正".
    AlreadyReversed,
    /// "未找到".
    NothingFound,
    /// Any other refusal.
    OtherRefusal,
    /// Our sign-in was refused.
    SignIn,
    /// Never left.
    NotSent,
    /// Lost.
    Unknown,
}

const CLASSES: [Class; 12] = [
    Class::OkEmpty,
    Class::OkListing,
    Class::OkPartial,
    Class::OkOther,
    Class::RefundFlag,
    Class::OriginalMissing,
    Class::AlreadyReversed,
    Class::NothingFound,
    Class::OtherRefusal,
    Class::SignIn,
    Class::NotSent,
    Class::Unknown,
];

fn outcome(c: Class) -> Outcome<Response> {
    let ok = |v: Value| Outcome::Ok(Response::success(v));
    let rej = |m: &str| Outcome::Rejected {
        infcode: -1,
        err_msg: m.into(),
    };
    match c {
        Class::OkEmpty => ok(json!({})),
        Class::OkListing => ok(json!({
            "mdtrtinfo": [{"ipt_otp_no": "MZ-0", "mdtrt_id": "V0", "psn_no": "P1"}, {"ipt_otp_no": "MZ-1", "mdtrt_id": "V9", "psn_no": "P1"}],
            "feedetail": [{"feedetl_sn": "L2", "det_item_fee_sumamt": "1.00"}, {"feedetl_sn": "L1", "det_item_fee_sumamt": "2.00"}, {"feedetl_sn": "X"}],
        })),
        Class::OkPartial => ok(json!({"feedetail": [{"feedetl_sn": "L1"}]})),
        Class::OkOther => ok(json!({
            "mdtrtinfo": [{"ipt_otp_no": "MZ-7", "mdtrt_id": "V7"}],
            "feedetail": [{"feedetl_sn": "Z1"}],
        })),
        Class::RefundFlag => rej(REFUND_FLAG_SET_CAPTURE),
        Class::OriginalMissing => rej("FSI-冲正失败:原交易不存在"),
        Class::AlreadyReversed => rej("FSI-冲正失败:原交易已冲正，不能重复冲正"),
        Class::NothingFound => rej("FSI-就诊信息未找到"),
        Class::OtherRefusal => rej("FSI-系统繁忙，请稍后再试"),
        Class::SignIn => rej("FSI-签到信息已失效，请重新签到"),
        Class::NotSent => Outcome::NotSent {
            reason: "connection refused".into(),
        },
        Class::Unknown => Outcome::Unknown {
            reason: "timed out".into(),
        },
    }
}

/// The resolution each transaction of the catalogue gets (gateway.md §5).
fn expected_resolution(infno: &str) -> Resolution {
    match infno {
        "2102" | "2103" | "2207" | "2208" | "2304" | "2305" | "2401" => Resolution::Reverse,
        "2402" => Resolution::Undo("2405"),
        "2201" => Resolution::Query("5201"),
        "2204" | "2301" => Resolution::Query("5204"),
        "1101" | "2101" | "2206" | "2303" | "5201" | "5203" | "5204" | "2203" | "2202" | "2205"
        | "2302" | "2404" | "2405" => Resolution::Resend,
        _ => Resolution::Surface,
    }
}

/// What each class of answer establishes, per kind of resolution. Only
/// the platform's known answers are definitive; other refusals and answers
/// without their list are unclear.
fn expected_verdict(r: Resolution, c: Class, grace_passed: bool) -> Verdict {
    use Class::*;
    let nf = Verdict::NotFound { grace_passed };
    match r {
        Resolution::Reverse => match c {
            OkEmpty | OkListing | OkPartial | OkOther | AlreadyReversed | RefundFlag => {
                Verdict::Undone
            }
            OriginalMissing => nf,
            NothingFound | OtherRefusal => Verdict::Unclear,
            SignIn | NotSent | Unknown => Verdict::Retry,
        },
        Resolution::Undo(_) => match c {
            OkEmpty | OkListing | OkPartial | OkOther => Verdict::Undone,
            OriginalMissing | NothingFound => nf,
            RefundFlag | AlreadyReversed | OtherRefusal => Verdict::Unclear,
            SignIn | NotSent | Unknown => Verdict::Retry,
        },
        Resolution::Query("5201") => match c {
            OkListing => Verdict::Found,
            OkOther | OriginalMissing | NothingFound => nf,
            OkEmpty | OkPartial | RefundFlag | AlreadyReversed | OtherRefusal => Verdict::Unclear,
            SignIn | NotSent | Unknown => Verdict::Retry,
        },
        Resolution::Query(_) => match c {
            OkListing => Verdict::Found,
            OkPartial => Verdict::Refused,
            OkOther | OriginalMissing | NothingFound => nf,
            OkEmpty | RefundFlag | AlreadyReversed | OtherRefusal => Verdict::Unclear,
            SignIn | NotSent | Unknown => Verdict::Retry,
        },
        Resolution::Resend | Resolution::Surface => Verdict::Retry,
    }
}

#[test]
fn every_infno_has_its_resolution() {
    for spec in CATALOGUE {
        assert_eq!(
            resolution_of(spec.infno),
            expected_resolution(spec.infno),
            "{}",
            spec.infno
        );
    }
    assert_eq!(resolution_of("2207A"), Resolution::Reverse);
    assert_eq!(resolution_of("7777"), Resolution::Surface);
}

#[test]
fn every_infno_against_every_answer() {
    for spec in CATALOGUE {
        let r = resolution_of(spec.infno);
        for c in CLASSES {
            for grace in [false, true] {
                let out = outcome(c);
                let held = if matches!(r, Resolution::Query(_)) {
                    State::Unknown
                } else {
                    State::Reversing
                };
                let rec = record(spec.infno, held);
                let v = verdict(r, &out, &rec, grace);
                let want = expected_verdict(r, c, grace);
                assert_eq!(v, want, "{} {r:?} {c:?} grace {grace}", spec.infno);
                if matches!(r, Resolution::Resend | Resolution::Surface) {
                    // Never resolved by a request: resent under a new msgid, or surfaced.
                    let action = next(State::Unknown, r, None);
                    let expected = if r == Resolution::Resend {
                        Action::Renew
                    } else {
                        Action::Stop
                    };
                    assert_eq!(action, expected, "{}", spec.infno);
                    assert!(resolution_request(&rec, r).is_none());
                    continue;
                }
                let mut after = rec.clone();
                resolved(&mut after, v, &out, 10).unwrap();
                let want_state = match (r, v) {
                    (Resolution::Query(_), Verdict::Found) => State::Succeeded,
                    (Resolution::Query(_), Verdict::NotFound { grace_passed: true }) => {
                        State::Failed
                    }
                    (Resolution::Query(_), Verdict::Refused) => State::ReversalFailed,
                    (Resolution::Query(_), _) => State::Unknown,
                    (_, Verdict::Undone | Verdict::NotFound { grace_passed: true }) => {
                        State::Reversed
                    }
                    (_, Verdict::Refused) => State::ReversalFailed,
                    _ => State::Reversing,
                };
                assert_eq!(
                    after.state, want_state,
                    "{} {r:?} {c:?} grace {grace}",
                    spec.infno
                );
                assert_eq!(
                    after.reversal.as_ref().unwrap().state,
                    attempt_state(v, &out),
                    "{}",
                    spec.infno
                );
                match after.state {
                    State::ReversalFailed => {
                        // A person sees the platform's refusal, or why no
                        // answer was definitive.
                        if let Outcome::Rejected { err_msg, .. } = &out {
                            assert_eq!(
                                after.error,
                                Some(Problem::ReversalRefused {
                                    infcode: -1,
                                    err_msg: err_msg.clone()
                                })
                            );
                        } else {
                            assert_eq!(after.error.as_ref().unwrap().kind(), "needs_person");
                        }
                    }
                    State::Succeeded => {
                        assert!(after.output.is_some(), "{}", spec.infno);
                        assert_eq!(after.error, None);
                    }
                    _ => assert_eq!(after.output, None),
                }
                let again = again(
                    after.state,
                    v,
                    Duration::from_millis(100),
                    Duration::from_secs(2),
                );
                if after.state.is_final() {
                    assert_eq!(again, Again::No);
                }
            }
        }
    }
}

#[test]
fn found_originals_keep_what_the_query_found() {
    let out = outcome(Class::OkListing);
    let reg = record("2201", State::Unknown);
    assert_eq!(
        found_output(Resolution::Query("5201"), &out, &reg),
        Some(
            json!({"data": {"mdtrt_id": "V9", "psn_no": "P1", "ipt_otp_no": "MZ-1"}, "found_by": "5201"})
        )
    );
    let fees = record("2301", State::Unknown);
    assert_eq!(
        found_output(Resolution::Query("5204"), &out, &fees),
        Some(
            json!({"result": [{"feedetl_sn": "L2", "det_item_fee_sumamt": "1.00"}, {"feedetl_sn": "L1", "det_item_fee_sumamt": "2.00"}], "found_by": "5204"})
        )
    );
    assert_eq!(
        found_output(Resolution::Query("5204"), &outcome(Class::OkEmpty), &fees),
        None
    );
    assert_eq!(found_output(Resolution::Reverse, &out, &fees), None);
}

#[test]
fn resolution_requests_name_the_original() {
    let rec = record("2102", State::Unknown);
    let (infno, body) = resolution_request(&rec, Resolution::Reverse).unwrap();
    assert_eq!(infno, "2601");
    assert_eq!(
        body,
        json!({"data": {"psn_no": "P1", "omsgid": rec.msgid, "oinfno": "2102"}})
    );
    let (infno, body) = resolution_request(&rec, Resolution::Undo("2205")).unwrap();
    assert_eq!(infno, "2205");
    assert_eq!(
        body,
        json!({"data": {"mdtrt_id": "V9", "chrg_bchno": "B1", "psn_no": "P1"}})
    );
    let (infno, body) = resolution_request(&rec, Resolution::Undo("2405")).unwrap();
    assert_eq!(infno, "2405");
    assert_eq!(body, json!({"data": {"mdtrt_id": "V9", "psn_no": "P1"}}));
    let (infno, body) = resolution_request(&rec, Resolution::Query("5201")).unwrap();
    assert_eq!(infno, "5201");
    assert_eq!(
        body,
        json!({"data": {"psn_no": "P1", "begntime": "2026-11-23 09:00:00", "med_type": "11"}})
    );
    let (infno, body) = resolution_request(&rec, Resolution::Query("5204")).unwrap();
    assert_eq!(infno, "5204");
    assert_eq!(body, json!({"data": {"psn_no": "P1", "mdtrt_id": "V9"}}));
    assert!(resolution_request(&rec, Resolution::Undo("9999")).is_none());
}

#[test]
fn answers_to_the_request_itself() {
    // A settlement (2102) and a registration (2201), every class of answer.
    for infno in ["2102", "2201"] {
        let settlement = infno == "2102";
        for c in CLASSES {
            let mut rec = record(infno, State::Sent);
            rec.reversal = None;
            let out = match c {
                Class::OkListing => Outcome::Ok(Response::success(
                    json!({"setlinfo": {"setl_id": "S9", "medfee_sumamt": "1.00"}}),
                )),
                other => outcome(other),
            };
            let sign_in = answered(&mut rec, &out);
            assert_eq!(sign_in, c == Class::SignIn, "{c:?}");
            match c {
                // A settlement without setl_id is nothing the HIS can use:
                // unknown, so it is resolved (defect 7a).
                Class::OkEmpty | Class::OkPartial | Class::OkOther if settlement => {
                    assert_eq!(rec.state, State::Unknown, "{c:?}");
                    assert_eq!(rec.error.as_ref().unwrap().kind(), "outcome_unknown");
                }
                Class::OkEmpty | Class::OkListing | Class::OkPartial | Class::OkOther => {
                    assert_eq!(rec.state, State::Succeeded);
                    assert_eq!(rec.error, None);
                    assert!(rec.output.is_some());
                    let want = (c == Class::OkListing).then(|| "S9".to_string());
                    assert_eq!(rec.setl_id, want);
                }
                Class::NotSent => {
                    assert_eq!(rec.state, State::Failed);
                    assert_eq!(rec.fail_kind, Some(FailKind::NotSent));
                    assert_eq!(rec.error.as_ref().unwrap().kind(), "gateway_unreachable");
                }
                Class::Unknown => {
                    assert_eq!(rec.state, State::Unknown);
                    assert_eq!(rec.fail_kind, None);
                    assert_eq!(rec.error.as_ref().unwrap().kind(), "outcome_unknown");
                }
                Class::SignIn => {
                    assert_eq!(rec.state, State::Failed);
                    assert_eq!(rec.fail_kind, Some(FailKind::SignInRejected));
                }
                _ => {
                    assert_eq!(rec.state, State::Failed);
                    // A refused settlement stays unconfirmed until a 2601
                    // probe says it is not in effect (defect 7d).
                    let want = if settlement {
                        FailKind::Unconfirmed
                    } else {
                        FailKind::Rejected
                    };
                    assert_eq!(rec.fail_kind, Some(want), "{infno} {c:?}");
                    assert_eq!(rec.error.as_ref().unwrap().kind(), "gateway_rejected");
                }
            }
        }
    }
}

#[test]
fn refusals_that_prove_nothing_or_everything() {
    // An HTTP 4xx after a reversible request left: unknown (defect 7c).
    let mut rec = record("2102", State::Sent);
    let http = Outcome::Rejected {
        infcode: -429,
        err_msg: "HTTP 429 Too Many Requests: <html>".into(),
    };
    answered(&mut rec, &http);
    assert_eq!(rec.state, State::Unknown);
    // Not for a side-effect-free request: believed.
    let mut q = record("2101", State::Sent);
    answered(&mut q, &http);
    assert_eq!(
        (q.state, q.fail_kind),
        (State::Failed, Some(FailKind::Rejected))
    );
    // A duplicate msgid: not executed, resent under a new msgid, never reversed.
    let mut dup = record("2102", State::Sent);
    answered(
        &mut dup,
        &Outcome::Rejected {
            infcode: -1,
            err_msg: "FSI-报文ID重复".into(),
        },
    );
    assert_eq!(dup.fail_kind, Some(FailKind::DuplicateMsgid));
    assert!(FailKind::DuplicateMsgid.retryable() && FailKind::DuplicateMsgid.needs_new_msgid());
    // A cancel resent after its answer was lost, refused as already done,
    // took effect (defect 6); its first attempt refused the same way did not.
    for (text, resent, want) in [
        ("FSI-就诊信息[V9]已撤销", true, State::Succeeded),
        ("FSI-未找到可撤销的费用明细", true, State::Succeeded),
        ("FSI-就诊信息[V9]已撤销", false, State::Failed),
        ("FSI-系统繁忙", true, State::Failed),
    ] {
        let mut c = record("2202", State::Sent);
        c.resent_after_unknown = resent;
        answered(
            &mut c,
            &Outcome::Rejected {
                infcode: -1,
                err_msg: text.into(),
            },
        );
        assert_eq!(c.state, want, "{text} resent={resent}");
    }
    // A resent query refused "not found" is a refusal, not a success.
    let mut q = record("1101", State::Sent);
    q.resent_after_unknown = true;
    answered(
        &mut q,
        &Outcome::Rejected {
            infcode: -1,
            err_msg: "FSI-人员编号[x]不存在".into(),
        },
    );
    assert_eq!(q.state, State::Failed);
}

#[test]
fn unclear_answers_end_with_a_person() {
    let out = outcome(Class::OtherRefusal);
    let mut rec = record("2102", State::Reversing);
    for i in 1..3 {
        let v = resolved(&mut rec, Verdict::Unclear, &out, 3).unwrap();
        assert_eq!(v, Verdict::Unclear);
        assert_eq!(rec.state, State::Reversing, "attempt {i}");
    }
    let v = resolved(&mut rec, Verdict::Unclear, &out, 3).unwrap();
    assert_eq!(v, Verdict::Refused);
    assert_eq!(rec.state, State::ReversalFailed);
    assert_eq!(rec.error.as_ref().unwrap().kind(), "reversal_refused");
}

#[test]
fn a_refused_settlement_is_probed() {
    let mut rec = record("2102", State::Failed);
    rec.fail_kind = Some(FailKind::Unconfirmed);
    assert_eq!(
        next(State::Failed, Resolution::Reverse, rec.fail_kind),
        Action::Probe
    );
    // Nothing to reverse: confirmed void at once (nothing in flight).
    let nothing = outcome(Class::OriginalMissing);
    let v = probed(&mut rec, probe_verdict(&nothing), &nothing, 10).unwrap();
    assert_eq!(v, Verdict::NotFound { grace_passed: true });
    assert_eq!(
        (rec.state, rec.fail_kind),
        (State::Failed, Some(FailKind::Rejected))
    );
    // It had committed after all: reversed now, still failed for the HIS.
    let mut rec = record("2102", State::Failed);
    rec.fail_kind = Some(FailKind::Unconfirmed);
    let ok = outcome(Class::OkEmpty);
    probed(&mut rec, probe_verdict(&ok), &ok, 10).unwrap();
    assert_eq!(
        (rec.state, rec.fail_kind),
        (State::Failed, Some(FailKind::Rejected))
    );
    assert_eq!(rec.reversal.as_ref().unwrap().state, "succeeded");
    // Not known: still unconfirmed (the sale stays blocked).
    let mut rec = record("2102", State::Failed);
    rec.fail_kind = Some(FailKind::Unconfirmed);
    let lost = outcome(Class::Unknown);
    probed(&mut rec, probe_verdict(&lost), &lost, 10).unwrap();
    assert_eq!(rec.fail_kind, Some(FailKind::Unconfirmed));
    assert_eq!(blocks(&rec, false), Some(Blocker::InDoubt));
}

#[test]
fn what_blocks_a_sale() {
    let with = |state: State, fail_kind: Option<FailKind>| {
        let mut r = record("2102", state);
        r.fail_kind = fail_kind;
        r
    };
    for s in [
        State::Sent,
        State::Unknown,
        State::Reversing,
        State::ReversalFailed,
    ] {
        assert_eq!(
            blocks(&with(s, None), false),
            Some(Blocker::InDoubt),
            "{s:?}"
        );
    }
    assert_eq!(
        blocks(&with(State::Succeeded, None), false),
        Some(Blocker::InEffect)
    );
    assert_eq!(
        blocks(&with(State::Succeeded, None), true),
        None,
        "cancelled"
    );
    assert_eq!(
        blocks(&with(State::Failed, Some(FailKind::Unconfirmed)), false),
        Some(Blocker::InDoubt)
    );
    for k in [
        FailKind::NotSent,
        FailKind::Rejected,
        FailKind::SignInRejected,
    ] {
        assert_eq!(blocks(&with(State::Failed, Some(k)), false), None, "{k:?}");
    }
    assert_eq!(blocks(&with(State::Reversed, None), false), None);
    assert_eq!(blocks(&with(State::Pending, None), false), None);
    // A succeeded cancel does not block another cancel of the same settlement.
    assert_eq!(blocks(&record("2103", State::Succeeded), false), None);
}

#[test]
fn a_person_closes_what_needs_one() {
    let closure = |outcome| Closure {
        outcome,
        operator: "王".into(),
        note: "checked".into(),
        at: Local::now(),
    };
    let mut rec = record("2403", State::ReversalFailed);
    close(&mut rec, closure(State::Succeeded)).unwrap();
    assert_eq!(rec.state, State::Succeeded);
    assert_eq!(rec.closed.as_ref().unwrap().operator, "王");
    let mut rec = record("2102", State::Reversing);
    close(&mut rec, closure(State::Reversed)).unwrap();
    assert_eq!(rec.state, State::Reversed);
    let mut rec = record("2102", State::Failed);
    rec.fail_kind = Some(FailKind::Unconfirmed);
    close(&mut rec, closure(State::Failed)).unwrap();
    assert_eq!(rec.fail_kind, Some(FailKind::Rejected));
    // Final records stay as the gateway left them.
    let mut done = record("2102", State::Succeeded);
    assert!(close(&mut done, closure(State::Reversed)).is_err());
    let mut failed = record("2102", State::Failed);
    failed.fail_kind = Some(FailKind::Rejected);
    assert!(close(&mut failed, closure(State::Succeeded)).is_err());
    // Only final outcomes.
    let mut open = record("2102", State::Unknown);
    assert!(close(&mut open, closure(State::Reversing)).is_err());
}

#[test]
fn recovery_fails_only_what_never_left() {
    let now = Local::now();
    let mut pending = record("2102", State::Pending);
    assert_eq!(recovered(&mut pending, now), Some(State::Pending));
    assert_eq!(pending.state, State::Failed);
    assert_eq!(pending.fail_kind, Some(FailKind::NotSent));
    assert_eq!(pending.error.as_ref().unwrap().kind(), "not_sent");
    let mut sent = record("2102", State::Sent);
    assert_eq!(recovered(&mut sent, now), Some(State::Sent));
    assert_eq!(sent.state, State::Unknown);
    for s in [
        State::Unknown,
        State::Reversing,
        State::Succeeded,
        State::Reversed,
    ] {
        let mut r = record("2102", s);
        assert_eq!(recovered(&mut r, now), None);
        assert_eq!(r.state, s);
    }
}

#[test]
fn grace_and_backoff() {
    let grace = Duration::from_secs(2);
    let ms = Duration::from_millis;
    assert!(!grace_passed(ms(1999), grace));
    assert!(grace_passed(ms(2000), grace));
    assert_eq!(grace_left(ms(1500), grace), Some(ms(520)));
    assert_eq!(grace_left(ms(2000), grace), None);
    let early = Verdict::NotFound {
        grace_passed: false,
    };
    assert_eq!(
        again(State::Reversing, early, Duration::from_millis(1500), grace),
        Again::After(Duration::from_millis(520))
    );
    assert_eq!(
        again(State::Reversing, Verdict::Retry, Duration::ZERO, grace),
        Again::Backoff
    );
    assert_eq!(
        again(State::Reversed, Verdict::Undone, Duration::ZERO, grace),
        Again::No
    );
    assert_eq!(next_backoff(None), Duration::from_secs(1));
    assert_eq!(
        next_backoff(Some(Duration::from_secs(8))),
        Duration::from_secs(16)
    );
    assert_eq!(
        next_backoff(Some(Duration::from_secs(50))),
        RESOLVE_BACKOFF_MAX
    );
}
